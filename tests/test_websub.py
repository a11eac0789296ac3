"""WebSub publishing (W3C WebSub, section 5) against a small hub stand-in on 127.0.0.1.

The stand-in is a real HTTP server: it records every POST (path, Content-Type, the parsed
form) and answers 204, or 500 for the first N requests, or 500 always, or slowly, or garbage.
"""

from __future__ import annotations

import functools
import itertools
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from conftest import BASE_URL, WritePost, parse
from flask import Flask
from flask.testing import FlaskClient
from serving import wait_until

from feedsvc import app as app_module
from feedsvc.app import Background, create_app, start_background
from feedsvc.config import Settings
from feedsvc.websub import WebSubNotifier

TOKEN = "operator-token-for-tests"  # FEEDSVC_ADMIN_TOKEN: /healthz names files and hubs only to the operator
FORMATS = ("atom", "rss", "json")
URL1, URL2, URL3 = (f"{BASE_URL}/feeds/{path}.atom" for path in ("all", "category/news", "category/sport"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def feed_urls(*paths: str) -> set[str]:
    return {f"{BASE_URL}/feeds/{path}.{fmt}" for path in paths for fmt in FORMATS}


# --- the hub stand-in ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Received:
    path: str
    content_type: str | None
    user_agent: str | None
    form: dict[str, list[str]]
    at: float  # time.monotonic() on arrival


class Hub:
    """Records every POST; answers `status`, or 500 for the first `fail_first` or for all (`always_fail`)."""

    def __init__(self) -> None:
        self.status = 204
        self.fail_first = 0
        self.always_fail = False
        self.delay = 0.0  # seconds to wait before answering, cut short by `release`
        self.garbage = False  # answer with something that is not HTTP at all
        self.script: list[tuple[int, str | None]] = []  # (status, Retry-After) for the next requests, in order
        self.release = threading.Event()
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hub"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def topics(self, start: int = 0) -> list[str]:
        """The hub.url of every request from the `start`-th on, in arrival order."""
        return [r.form.get("hub.url", ["<missing>"])[0] for r in self.received()[start:]]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received = Received(path=self.path, content_type=self.headers.get("Content-Type"),
                                    user_agent=self.headers.get("User-Agent"),
                                    form=parse_qs(body.decode("utf-8"), keep_blank_values=True),
                                    at=time.monotonic())
                with hub._lock:
                    hub._received.append(received)
                    number = len(hub._received)
                if hub.delay:
                    hub.release.wait(hub.delay)
                if hub.garbage:
                    self.wfile.write(b"GARBAGE\r\n\r\n")
                    self.close_connection = True
                    return
                status, retry_after = 500 if hub.always_fail or number <= hub.fail_first else hub.status, None
                if number <= len(hub.script):
                    status, retry_after = hub.script[number - 1]
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

        return Handler


@pytest.fixture
def hub() -> Iterator[Hub]:
    hub = Hub()
    thread = threading.Thread(target=hub.server.serve_forever, kwargs={"poll_interval": 0.01},
                              name="websub-hub-stand-in", daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        hub.release.set()
        hub.server.shutdown()
        hub.server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[threading.ExceptHookArgs]:
    """Exceptions that escaped any thread during the test."""
    errors: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    return errors


# --- the notifier on its own -----------------------------------------------------------------

def test_notify_posts_one_publish_form_per_feed(hub: Hub) -> None:
    notifier = WebSubNotifier([hub.url], backoff=0.05)
    notifier.start()
    try:
        notifier.notify([URL1, URL2])
        wait_until(lambda: notifier.outcomes.sent == 2, 5.0, "two publish requests to succeed")
        assert notifier.pending == 0
    finally:
        notifier.stop()

    received = hub.received()
    # hub.topic for hubs that read it (flask-websub, WebSub.rocks), hub.url for those that read that one.
    assert [r.form for r in received] == [{"hub.mode": ["publish"], "hub.topic": [URL1], "hub.url": [URL1]},
                                          {"hub.mode": ["publish"], "hub.topic": [URL2], "hub.url": [URL2]}]
    assert {r.path for r in received} == {"/hub"}
    assert {r.content_type for r in received} == {"application/x-www-form-urlencoded"}
    assert all((r.user_agent or "").startswith("feedsvc/") for r in received)
    outcomes = notifier.outcomes
    assert (outcomes.sent, outcomes.retried, outcomes.failed, outcomes.last_error) == (2, 0, 0, None)
    assert outcomes.by_hub == {hub.url: "ok"}


def test_every_hub_hears_of_every_feed(hub: Hub, notifiers: Callable[..., WebSubNotifier]) -> None:
    second_hub = hub.url.replace("/hub", "/other-hub")
    notifier = notifiers([hub.url, second_hub], backoff=0.05)
    notifier.notify([URL1, URL2])
    wait_until(lambda: notifier.outcomes.sent == 4, 5.0, "four publish requests (2 hubs x 2 feeds)")
    assert Counter((r.path, r.form["hub.url"][0]) for r in hub.received()) == {
        ("/hub", URL1): 1, ("/hub", URL2): 1, ("/other-hub", URL1): 1, ("/other-hub", URL2): 1}
    assert notifier.outcomes.by_hub == {hub.url: "ok", second_hub: "ok"}


@pytest.mark.parametrize("status", [400, 403, 404, 410, 422])
def test_a_refusal_is_final_not_retried(hub: Hub, notifiers: Callable[..., WebSubNotifier], status: int) -> None:
    hub.status = status
    notifier = notifiers([hub.url], attempts=4, backoff=0.01)
    notifier.notify([URL1])
    wait_until(lambda: notifier.outcomes.failed == 1, 5.0, "the notifier to give up at once")
    # Final: a given-up publish is never queued again, and the hub records a request before answering it.
    assert (notifier.outcomes.retried, notifier.pending) == (0, 0)
    assert len(hub.received()) == 1
    assert f"HTTP {status}" in (notifier.outcomes.last_error or "")


@pytest.mark.system
def test_too_many_requests_waits_as_the_hub_says(hub: Hub, notifiers: Callable[..., WebSubNotifier]) -> None:
    hub.script = [(429, "1"), (503, "1")]
    notifier = notifiers([hub.url], attempts=4, backoff=0.01)
    notifier.notify([URL1])
    wait_until(lambda: notifier.outcomes.sent == 1, 10.0, "the publish to go through after the waits")
    first, second, third = (r.at for r in hub.received())
    assert second - first >= 0.95 and third - second >= 0.95  # Retry-After: 1, not the 0.01 s backoff


def test_health_shows_the_state_now_not_a_past_error(hub: Hub, notifiers: Callable[..., WebSubNotifier]) -> None:
    hub.fail_first = 1
    notifier = notifiers([hub.url], attempts=3, backoff=0.01)
    notifier.notify([URL1])
    wait_until(lambda: notifier.outcomes.sent == 1, 5.0, "the retry to succeed")
    assert notifier.outcomes.retried == 1
    assert (notifier.outcomes.last_error, notifier.outcomes.by_hub) == (None, {hub.url: "ok"})


def test_failed_publish_is_retried_with_growing_backoff(hub: Hub, notifiers: Callable[..., WebSubNotifier]) -> None:
    hub.fail_first = 2
    notifier = notifiers([hub.url], backoff=0.05)
    notifier.notify([URL1])
    wait_until(lambda: notifier.outcomes.sent == 1, 5.0, "the publish to succeed on the third attempt")

    received = hub.received()
    assert [r.form["hub.url"] for r in received] == [[URL1]] * 3
    outcomes = notifier.outcomes
    assert outcomes.retried >= 2
    assert outcomes.failed == 0
    assert outcomes.by_hub == {hub.url: "ok"}
    assert notifier.pending == 0
    # The waits are at least backoff * 2 ** (attempt - 1): 0.05 s, then 0.1 s.
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(received)]
    assert gaps[0] >= 0.05 * 0.9 and gaps[1] >= 0.1 * 0.9, gaps


def test_always_failing_hub_gets_exactly_the_attempts(hub: Hub, notifiers: Callable[..., WebSubNotifier]) -> None:
    hub.always_fail = True
    notifier = notifiers([hub.url], attempts=3, backoff=0.05)
    notifier.notify([URL1])
    wait_until(lambda: notifier.outcomes.failed == 1, 5.0, "the notifier to give up")

    assert len(hub.received()) == 3
    assert notifier.pending == 0, "gave up, yet something is still queued"
    outcomes = notifier.outcomes
    assert (outcomes.sent, outcomes.retried, outcomes.failed) == (0, 2, 1)
    assert outcomes.last_error is not None
    assert "HTTP 500" in outcomes.last_error and URL1 in outcomes.last_error
    assert outcomes.by_hub == {hub.url: outcomes.last_error}


def test_hub_that_is_not_listening_is_recorded_not_raised(
        notifiers: Callable[..., WebSubNotifier], thread_errors: list[threading.ExceptHookArgs]) -> None:
    closed = f"http://127.0.0.1:{_free_port()}/hub"  # nothing listens there
    notifier = notifiers([closed], attempts=2, backoff=0.05)
    notifier.notify([URL1])
    wait_until(lambda: notifier.outcomes.failed == 1, 10.0, "the notifier to give up on a closed port")
    assert notifier.outcomes.sent == 0
    assert (notifier.outcomes.last_error or "").startswith(f"{URL1}: ")
    assert notifier.outcomes.by_hub[closed] == notifier.outcomes.last_error

    notifier.notify([URL2])  # the worker is still there for the next change
    wait_until(lambda: notifier.outcomes.failed == 2, 10.0, "the second feed to be given up too")
    assert thread_errors == []


def test_hub_answering_garbage_is_recorded_not_raised(
        hub: Hub, notifiers: Callable[..., WebSubNotifier], thread_errors: list[threading.ExceptHookArgs]) -> None:
    hub.garbage = True
    notifier = notifiers([hub.url], attempts=2, backoff=0.05)
    notifier.notify([URL1])
    wait_until(lambda: notifier.outcomes.failed == 1, 2.0, "the notifier to give up on a garbage answer")
    assert notifier.outcomes.last_error is not None
    notifier.notify([URL2])
    wait_until(lambda: notifier.outcomes.failed == 2, 5.0, "the worker to survive for the next change")
    assert thread_errors == []


def test_notify_never_blocks_on_a_slow_hub(hub: Hub, notifiers: Callable[..., WebSubNotifier]) -> None:
    hub.delay = 2.0
    notifier = notifiers([hub.url], backoff=0.05)

    started = time.perf_counter()
    notifier.notify([URL1])
    first = time.perf_counter() - started
    wait_until(lambda: len(hub.received()) == 1, 5.0, "the first publish to reach the (slow) hub")

    started = time.perf_counter()  # the worker is now inside a POST that takes 2 s
    notifier.notify([URL2, URL3])
    second = time.perf_counter() - started
    assert first < 0.5 and second < 0.5, f"notify() took {first:.3f}s and {second:.3f}s"
    assert notifier.pending == 2

    hub.release.set()  # let the slow answers through
    wait_until(lambda: notifier.outcomes.sent == 3, 5.0, "all three publishes once the hub answers")
    assert hub.topics() == [URL1, URL2, URL3]


# --- the running service ---------------------------------------------------------------------

@dataclass(slots=True)
class Service:
    app: Flask
    client: FlaskClient
    background: Background

    def health(self) -> dict[str, Any]:
        response = self.client.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"})  # hub URLs: operator only
        assert response.status_code == 200
        body: dict[str, Any] = response.json
        return body

    def websub(self) -> dict[str, Any]:
        found: dict[str, Any] = self.health()["websub"]
        return found


@pytest.fixture
def newsroom(write_post: WritePost) -> None:
    """Older posts in news (with a tag and an author) and in sport."""
    write_post("ferry.md", title="Ferry returns", date="2025-01-10T08:00:00Z", categories="[news]",
               tags="[harbour]", author="Sam Rivera")
    write_post("match.md", title="Cup final", date="2025-01-11T18:00:00Z", categories="[sport]")


@pytest.fixture
def start_service(hub: Hub, make_settings: Callable[..., Settings],
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Service]]:
    """create_app() + start_background() with the stand-in as the hub; stopped at the end."""
    backgrounds: list[Background] = []

    def start(**notifier_options: Any) -> Service:
        if notifier_options:  # start_background() has no settings for these; give it a preset class
            monkeypatch.setattr(app_module, "WebSubNotifier",
                                functools.partial(WebSubNotifier, **notifier_options))
        app = create_app(make_settings(websub_hubs=hub.url, rebuild_interval=3600, debounce=0.05, admin_token=TOKEN))
        client = app.test_client()
        first_build = client.get("/healthz").json["last_build"]
        background = start_background(app)
        backgrounds.append(background)
        service = Service(app, client, background)
        wait_until(lambda: service.health()["last_build"] != first_build, 5.0,
                   "the rebuild start_background() schedules")
        return service

    yield start
    for background in backgrounds:
        background.stop()


def everything_told(service: Service, hub: Hub, write_post: WritePost, marker: str) -> list[str]:
    """The hub's topics once every file written so far is rebuilt, told and sent: barriers, not a quiet period.

    The broken `marker`, written last, shows in /healthz only once the file events before it (watchdog keeps
    their order) are rebuilt; a rebuild in this thread waits out a running one and its change callback; a URL
    queued last reaches the hub after every publish queued before it (one sender per hub, in order).
    """
    write_post(marker, "---\ntitle: [unclosed\n---\n")
    wait_until(lambda: marker in [p["file"] for p in service.health()["problems"]], 5.0, f"{marker} in /healthz")
    service.app.extensions["feedsvc"].rebuild()
    last = f"{BASE_URL}/after/{marker}"
    service.background.websub.notify([last])
    wait_until(lambda: last in hub.topics(), 5.0, f"{last}, queued after every publish so far")
    return [topic for topic in hub.topics() if "/after/" not in topic]


def test_service_publishes_exactly_the_changed_feeds(
        newsroom: None, hub: Hub, start_service: Callable[..., Service], write_post: WritePost) -> None:
    service = start_service()
    websub = service.websub()
    assert websub["hubs"] == {hub.url: "idle"}
    assert (websub["sent"], websub["failed"], websub["pending"]) == (0, 0, 0)

    # Neither the first build nor the rebuild start_background() runs is a change.
    assert everything_told(service, hub, write_post, "marker-1.md") == [], "published for the initial build"

    write_post("tram.md", title="Tram line opens", date="2025-01-12T07:00:00Z", categories="[news]")
    told = everything_told(service, hub, write_post, "marker-2.md")
    assert Counter(told) == dict.fromkeys(feed_urls("all", "category/news"), 1), (
        "expected each all/news feed once, and nothing for sport, tag/harbour or author/sam-rivera")
    assert all(r.form["hub.mode"] == ["publish"] for r in hub.received())
    assert {r.content_type for r in hub.received()} == {"application/x-www-form-urlencoded"}

    write_post("match.md", title="Cup final after extra time", date="2025-01-11T18:00:00Z", categories="[sport]")
    told = everything_told(service, hub, write_post, "marker-3.md")
    assert Counter(told[6:]) == dict.fromkeys(feed_urls("all", "category/sport"), 1)

    # 12 publishes and the 3 markers; a marker is counted just after the hub has it.
    wait_until(lambda: service.websub()["sent"] == 15, 5.0, "/healthz to count 15 sent")
    websub = service.websub()
    assert websub["hubs"] == {hub.url: "ok"}
    assert (websub["sent"], websub["retried"], websub["failed"], websub["pending"]) == (15, 0, 0, 0)
    assert websub["last_error"] is None


def test_healthz_reports_a_failing_hub_and_feeds_keep_serving(
        newsroom: None, hub: Hub, start_service: Callable[..., Service], write_post: WritePost) -> None:
    hub.always_fail = True
    service = start_service(attempts=2, backoff=0.05)

    write_post("tram.md", title="Tram line opens", date="2025-01-12T07:00:00Z", categories="[news]")
    wait_until(lambda: service.websub()["failed"] == 6, 10.0, "/healthz to report 6 given-up publishes")

    health = service.health()
    assert health["status"] == "ok"
    websub = health["websub"]
    assert (websub["sent"], websub["retried"], websub["failed"], websub["pending"]) == (0, 6, 6, 0)
    assert "HTTP 500" in websub["last_error"]
    assert "HTTP 500" in websub["hubs"][hub.url]
    assert len(hub.received()) == 12  # 6 feeds x 2 attempts
    for path in ("all.atom", "category/news.rss", "category/news.json"):
        response = service.client.get(f"/feeds/{path}")
        assert response.status_code == 200, path
    assert parse(service.client.get("/feeds/all.atom")).entries[0].title == "Tram line opens"


# --- discovery -------------------------------------------------------------------------------

HUBS = ("https://hub.example.org/", "https://pubsubhubbub.example.net/publish")


def link_header(value: str) -> set[tuple[str, str]]:
    """(rel, url) pairs of an RFC 8288 Link header as web.py writes it."""
    return {(rel, url) for url, rel in re.findall(r'<([^>]*)>\s*;\s*rel="([^"]*)"', value)}


@pytest.mark.parametrize("path", ["all", "category/news"])
def test_feeds_advertise_the_hubs(newsroom: None, path: str, make_app: Callable[..., Flask]) -> None:
    client = make_app(websub_hubs=",".join(HUBS)).test_client()
    for fmt in FORMATS:
        self_url = f"{BASE_URL}/feeds/{path}.{fmt}"
        response = client.get(f"/feeds/{path}.{fmt}")
        assert response.status_code == 200
        assert link_header(response.headers.get("Link", "")) == {("hub", h) for h in HUBS} | {("self", self_url)}
        if fmt == "json":
            assert response.json["hubs"] == [{"type": "WebSub", "url": h} for h in HUBS]
            continue
        links = parse(response).feed.links
        assert [link.href for link in links if link.rel == "hub"] == list(HUBS), fmt
        assert [link.href for link in links if link.rel == "self"] == [self_url], fmt


def test_without_hubs_nothing_is_advertised(newsroom: None, client: FlaskClient) -> None:
    response = client.get("/feeds/all.atom")
    assert "Link" not in response.headers
    assert [link for link in parse(response).feed.links if link.rel == "hub"] == []
    assert "hubs" not in client.get("/feeds/all.json").json
    assert "websub" not in client.get("/healthz").json
