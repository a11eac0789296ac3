"""Hostile and broken hubs (a security review's findings), with real sockets on 127.0.0.1.

A hub that trickles its answer must hold up neither the other hubs nor its own sender past one
deadline per attempt; a hub's redirect is never followed; and the request counters /metrics reads
stay exact when many request threads update them at once (here because it is the same review).
"""

from __future__ import annotations

import itertools
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import BASE_URL, run_together
from prometheus_client.parser import text_string_to_metric_families
from serving import wait_until

from feedsvc.metrics import Metrics
from feedsvc.model import Snapshot
from feedsvc.websub import WebSubNotifier, post_form, publish_form

URL = f"{BASE_URL}/feeds/all.atom"


# --- stand-ins -------------------------------------------------------------------------------

class Hub:
    """A real HTTP server that records each request's arrival and answers `status` with `headers`."""

    def __init__(self, status: int = 204, headers: dict[str, str] | None = None) -> None:
        self.arrivals: list[float] = []  # time.monotonic() per request
        self.paths: list[str] = []  # the request-target of each
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.arrivals.append(time.monotonic())
                hub.paths.append(self.path)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hub"


@pytest.fixture
def hubs() -> Iterator[Callable[..., Hub]]:
    """Started hubs, all shut down at the end of the test."""
    started: list[tuple[Hub, threading.Thread]] = []

    def make(status: int = 204, headers: dict[str, str] | None = None) -> Hub:
        hub = Hub(status, headers)
        thread = threading.Thread(target=hub.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        started.append((hub, thread))
        return hub

    yield make
    for hub, thread in started:
        hub.server.shutdown()
        hub.server.server_close()
        thread.join(timeout=5)


def _read_request(conn: socket.socket) -> None:
    """Read one HTTP request (head, then Content-Length bytes), so what comes next is the client's hang-up."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while length and len(body) < int(length[1]) and (chunk := conn.recv(4096)):
        body += chunk


class Trickler:
    """Reads the request, then answers a never-ending head one byte per `pace` until the client hangs up."""

    HEAD = b"HTTP/1.1 200 OK\r\nX-Trickle: "

    def __init__(self, pace: float = 0.1) -> None:
        self.pace = pace
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.open = 0
        self.spans: list[float] = []  # seconds from request read to the client hanging up, per connection

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/hub"

    def accept(self) -> None:
        self.listener.settimeout(0.05)  # to see `stopping`: closing the listener would not wake accept()
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self.trickle, args=(conn,), daemon=True).start()

    def trickle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            _read_request(conn)
            started = time.monotonic()
            with self.lock:
                self.open += 1
            for byte in itertools.chain(self.HEAD, itertools.repeat(ord("a"))):
                if self.stopping.is_set() or self.hung_up(conn):
                    break
                conn.sendall(bytes([byte]))
            with self.lock:
                self.open -= 1
                self.spans.append(time.monotonic() - started)

    def hung_up(self, conn: socket.socket) -> bool:
        """Wait up to `pace` (the trickle's rhythm) for the client to close its end."""
        if not select.select([conn], [], [], self.pace)[0]:
            return False
        try:
            return conn.recv(1) == b""
        except ConnectionError:
            return True


@pytest.fixture
def trickler() -> Iterator[Trickler]:
    trickler = Trickler()
    thread = threading.Thread(target=trickler.accept, daemon=True)
    thread.start()
    yield trickler
    trickler.stopping.set()
    thread.join(timeout=5)
    trickler.listener.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port that listens but never accepts: a connection to it waits in the backlog, where it can be counted."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.setblocking(False)
        yield sock


def connections_waiting(listener: socket.socket) -> list[socket.socket]:
    """Accept every connection already made to `listener`, without waiting for more."""
    accepted = []
    while True:
        try:
            accepted.append(listener.accept()[0])
        except BlockingIOError:
            return accepted


# --- a slow hub --------------------------------------------------------------------------------

@pytest.mark.system
def test_one_deadline_covers_the_whole_answer(trickler: Trickler) -> None:
    """urllib's timeout is per read: a byte every 0.1 s never trips a 1 s timeout. Here the attempt ends at 1 s."""
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        post_form(trickler.url, publish_form(URL), 1.0)
    assert 0.9 <= time.monotonic() - started < 1.6
    wait_until(lambda: trickler.spans, 2.0, "the trickler to see the client hang up")


@pytest.mark.system
def test_a_trickling_hub_holds_up_no_other_hub(
        trickler: Trickler, hubs: Callable[..., Hub], notifiers: Callable[..., WebSubNotifier]) -> None:
    healthy = hubs()
    notifier = notifiers([trickler.url, healthy.url], timeout=1.0, attempts=2, backoff=0.05)
    notify_at = time.monotonic()
    notifier.notify([URL])

    wait_until(lambda: healthy.arrivals, 2.0, "the healthy hub's publish, while the other hub trickles")
    assert healthy.arrivals[0] - notify_at < 0.9
    assert trickler.open == 1, "the trickling attempt should still be going"

    wait_until(lambda: notifier.outcomes.failed == 1, 5.0, "both attempts at the trickler to end at the deadline")
    wait_until(lambda: len(trickler.spans) == 2, 2.0, "the trickler to see both hang-ups")
    assert all(0.8 <= span < 1.6 for span in trickler.spans), trickler.spans
    outcomes = notifier.outcomes
    assert (outcomes.sent, outcomes.retried, outcomes.failed) == (1, 1, 1)
    assert outcomes.by_hub == {healthy.url: "ok", trickler.url: f"{URL}: no complete answer within 1s"}
    assert len(healthy.arrivals) == 1


@pytest.mark.system
def test_stop_is_bounded_while_hubs_hang(notifiers: Callable[..., WebSubNotifier]) -> None:
    """Three hubs that accept and never answer; stop() still returns within its own timeout, not one per hub."""
    with socket.create_server(("127.0.0.1", 0)) as a, socket.create_server(("127.0.0.1", 0)) as b, \
            socket.create_server(("127.0.0.1", 0)) as c:
        listeners = (a, b, c)
        for sock in listeners:
            sock.setblocking(False)
        notifier = WebSubNotifier([f"http://127.0.0.1:{sock.getsockname()[1]}/hub" for sock in listeners],
                                  timeout=30.0)
        notifier.start()
        notifier.notify([URL])
        held: list[socket.socket] = []

        def every_hub_connected() -> bool:
            for sock in listeners:
                held.extend(connections_waiting(sock))
            return len(held) == 3

        wait_until(every_hub_connected, 5.0, "every hub to be connected to")
        started = time.monotonic()
        notifier.stop(timeout=0.5)
        assert time.monotonic() - started < 1.2
        for conn in held:  # the senders now see the hubs hang up and end
            conn.close()


def test_the_hub_url_is_posted_to_as_written(hubs: Callable[..., Hub]) -> None:
    """The path and query of the configured URL are the request-target (some hubs take a key in the query)."""
    hub = hubs()
    assert post_form(f"{hub.url}?key=a%2Fb&x", publish_form(URL), 5.0).status == 204
    assert post_form(hub.url.removesuffix("/hub"), publish_form(URL), 5.0).status == 204
    assert hub.paths == ["/hub?key=a%2Fb&x", "/"]


# --- redirects ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "final"), [(301, True), (302, False), (303, False), (307, False),
                                               (308, True)])
@pytest.mark.parametrize("scheme", ["http", "ftp"])
def test_a_redirect_is_reported_not_followed(
        hubs: Callable[..., Hub], notifiers: Callable[..., WebSubNotifier], listener: socket.socket,
        status: int, final: bool, scheme: str) -> None:
    elsewhere = f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/elsewhere"
    hub = hubs(status, {"Location": elsewhere})
    notifier = notifiers([hub.url], attempts=2, backoff=0.01, timeout=2.0)
    notifier.notify([URL])
    wait_until(lambda: notifier.outcomes.failed == 1, 5.0, "the notifier to give up on the redirecting hub")

    assert connections_waiting(listener) == [], f"followed the redirect to {elsewhere}"
    assert len(hub.arrivals) == (1 if final else 2)
    assert notifier.outcomes.retried == (0 if final else 1)
    assert notifier.outcomes.by_hub == {
        hub.url: f"{URL}: HTTP {status}: redirected to {elsewhere}; not followed"}


def test_a_redirect_location_cannot_break_the_log_line(
        hubs: Callable[..., Hub], notifiers: Callable[..., WebSubNotifier]) -> None:
    hub = hubs(301, {"Location": "http://x.example/\u00e9" + "a" * 500})
    notifier = notifiers([hub.url], attempts=1)
    notifier.notify([URL])
    wait_until(lambda: notifier.outcomes.failed == 1, 5.0, "the notifier to give up")
    error = notifier.outcomes.by_hub[hub.url]
    assert error.isascii() and error.isprintable() and len(error) < 300, error


# --- /metrics from many request threads ----------------------------------------------------------

class EqualsInPython(int):
    """A status whose == is Python code: the interpreter may switch threads inside it, as a free-threaded
    build may anywhere, so a `+=` around the comparison is no longer one step."""

    def __eq__(self, other: object) -> bool:
        return int(self) == other

    __hash__ = int.__hash__


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.parametrize("status", [int, EqualsInPython], ids=["int", "int-with-python-eq"])
def test_observe_counts_exactly_from_many_threads(status: type[int]) -> None:
    metrics = Metrics(Snapshot, lambda: (0, 0.0), lambda: None)
    threads, rounds = 8, 4000
    ok, not_modified, missing = status(200), status(304), status(404)

    def hammer() -> None:
        for i in range(rounds):
            metrics.observe("feed", not_modified if i % 4 == 0 else ok, 0 if i % 4 == 0 else 10)
            metrics.observe("other", missing, 1)

    run_together(hammer, threads)

    found = samples(metrics.render().decode())
    total = threads * rounds
    assert found[("feedsvc_http_requests_total", (("route", "feed"), ("status", "200")))] == total * 3 // 4
    assert found[("feedsvc_http_requests_total", (("route", "feed"), ("status", "304")))] == total // 4
    assert found[("feedsvc_http_requests_total", (("route", "other"), ("status", "404")))] == total
    assert found[("feedsvc_http_response_bytes_total", (("route", "feed"),))] == total * 3 // 4 * 10
    assert found[("feedsvc_http_response_bytes_total", (("route", "other"),))] == total
    assert metrics.not_modified_ratio() == 0.25
    assert found[("feedsvc_http_not_modified_ratio", ())] == 0.25
