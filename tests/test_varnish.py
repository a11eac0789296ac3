"""The cache tier: feedsvc's purges (feedsvc.purge) and a real Varnish with deploy/varnish.vcl in front of it.

The system tests start `varnishd` on 127.0.0.1 with the shipped VCL, only its backend's port
changed, in front of a real `feedsvc serve` that sends it its purges; they skip where
varnishd is not installed (`.ci/run` installs Debian's `varnish`).
"""

from __future__ import annotations

import gzip
import http.client
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import BASE_URL, WritePost, front_matter_post
from serving import Served, free_port, http_get, serve, stop_group, wait_listening, wait_until

from feedsvc.app import create_app, start_background
from feedsvc.config import ConfigError, Settings
from feedsvc.hubpost import Answer
from feedsvc.leader import LeaderLock
from feedsvc.purge import CachePurger, purges_for, send_purge

VCL = Path(__file__).resolve().parents[1] / "deploy" / "varnish.vcl"
VARNISHD = shutil.which("varnishd") or ("/usr/sbin/varnishd" if os.access("/usr/sbin/varnishd", os.X_OK) else None)
needs_varnish = pytest.mark.skipif(VARNISHD is None,
                                   reason="varnishd is not installed (Debian: apt-get install varnish)")
TOKEN = "operator-token-for-tests"


# --- which purges a change makes ------------------------------------------------------------------

def feed_urls(*paths: str) -> list[str]:
    return [f"{BASE_URL}/feeds/{path}.{ext}" for path in paths for ext in ("atom", "rss", "json")]


@pytest.mark.parametrize(("changed", "opml_changed", "expected"), [
    ([], True, []),
    (feed_urls("all"), False, ["BAN /feeds/all", "PURGE /"]),
    (feed_urls("all", "category/news", "tag/harbour-ferry"), True,
     ["BAN /feeds/all", "BAN /feeds/category/news", "BAN /feeds/tag/harbour-ferry", "PURGE /", "PURGE /feeds.opml"]),
    (["https://elsewhere.example/feeds/all.atom", f"{BASE_URL}/feeds.opml"], True, []),
], ids=["nothing", "one-channel", "channels-and-the-list", "not-our-feeds"])
def test_purges_name_each_changed_channel_once(changed: list[str], opml_changed: bool, expected: list[str]) -> None:
    assert purges_for(BASE_URL, changed, opml_changed=opml_changed) == expected


def test_the_setting_takes_http_urls_only(make_settings: Callable[..., Settings]) -> None:
    assert make_settings(purge_urls=" http://127.0.0.1:6081 , https://cache.example:6081").purge_urls == (
        "http://127.0.0.1:6081", "https://cache.example:6081")
    with pytest.raises(ConfigError, match="FEEDSVC_PURGE_URLS"):
        make_settings(purge_urls="127.0.0.1:6081")


# --- sending: retries, final answers, what /healthz and /metrics show --------------------------------

class FakeCache:
    """Answers each attempt at a path from its script of statuses (an exception is raised), then 200s."""

    def __init__(self, script: dict[str, list[int | Exception]]) -> None:
        self.script = script
        self.sent: list[tuple[str, str, str]] = []

    def __call__(self, endpoint: str, method: str, path: str, timeout: float) -> Answer:
        self.sent.append((endpoint, method, path))
        outcome = self.script[path].pop(0) if self.script.get(path) else 200
        if isinstance(outcome, Exception):
            raise outcome
        return Answer(status=outcome)


@contextmanager
def running(purger: CachePurger) -> Iterator[CachePurger]:
    purger.start()
    try:
        yield purger
    finally:
        purger.stop()


def test_failures_are_retried_and_a_refusal_is_final(caplog: pytest.LogCaptureFixture) -> None:
    cache = FakeCache({"/feeds/all": [ConnectionRefusedError("refused"), 503], "/": [403]})
    purger = CachePurger(["http://cache:6081"], base_url=BASE_URL, opml_etag=lambda: '"a"', backoff=0.01,
                         send=cache)
    with running(purger):
        purger.notify(feed_urls("all"))  # BAN /feeds/all (refused, 503, ok), then PURGE / (403: final)
        wait_until(lambda: purger.outcomes.sent + purger.outcomes.failed == 2, 5.0, "both purges to be done")
    assert sorted(path for _, _, path in cache.sent) == ["/", "/feeds/all", "/feeds/all", "/feeds/all"]
    assert (purger.outcomes.sent, purger.outcomes.retried, purger.outcomes.failed) == (1, 2, 1)
    assert "gave up sending PURGE / to http://cache:6081 (a final answer): HTTP 403" in caplog.text


def test_the_list_is_purged_only_when_it_changed() -> None:
    etag = ['"a"']
    cache = FakeCache({})
    purger = CachePurger(["http://cache:6081"], base_url=BASE_URL, opml_etag=lambda: etag[0], send=cache)
    with running(purger):
        purger.notify(feed_urls("all"))
        wait_until(lambda: purger.outcomes.sent == 2, 5.0, "two purges")
        etag[0] = '"b"'
        purger.notify(feed_urls("tag/new"))
        wait_until(lambda: purger.outcomes.sent == 5, 5.0, "five purges")
    assert [path for _, _, path in cache.sent] == ["/feeds/all", "/", "/feeds/tag/new", "/", "/feeds.opml"]


def test_healthz_counts_purges_for_anyone_and_names_endpoints_only_to_the_operator(
        write_post: WritePost, make_settings: Callable[..., Settings]) -> None:
    write_post("one.md")
    app = create_app(make_settings(purge_urls="http://cache.internal:6081,http://cache2.internal:6081",
                                   admin_token=TOKEN))
    purger = app.extensions["feedsvc.purge"] = CachePurger(
        app.extensions["feedsvc"].settings.purge_urls, base_url=BASE_URL, opml_etag=lambda: None)
    purger.outcomes.record("http://cache.internal:6081", "BAN /feeds/all: HTTP 503", "retried")
    client = app.test_client()
    public = client.get("/healthz").json["cache_purge"]
    assert public == {"endpoints_ok": 0, "endpoints_failing": 1, "endpoints_idle": 1,
                      "sent": 0, "retried": 1, "failed": 0, "pending": 0}
    assert "cache.internal" not in client.get("/healthz").get_data(as_text=True)
    operator = client.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).json["cache_purge"]
    assert operator["endpoints"] == {"http://cache.internal:6081": "BAN /feeds/all: HTTP 503",
                                     "http://cache2.internal:6081": "idle"}
    assert operator["last_error"] == "BAN /feeds/all: HTTP 503"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'feedsvc_cache_purges_total{outcome="retried"} 1.0' in metrics
    assert "feedsvc_cache_purges_pending 0.0" in metrics


def test_without_endpoints_there_is_no_purge_section(write_post: WritePost,
                                                     make_settings: Callable[..., Settings]) -> None:
    write_post("one.md")
    client = create_app(make_settings()).test_client()
    assert "cache_purge" not in client.get("/healthz").json
    assert "feedsvc_cache_purges" not in client.get("/metrics").get_data(as_text=True)


# --- the wiring: a rebuild's changes reach a cache, from the leader only -------------------------------

class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str]]

    def _record(self) -> None:
        self.seen.append((self.command, self.path))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PURGE = do_BAN = _record

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def recording_cache() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A tiny HTTP server on 127.0.0.1 that takes PURGE and BAN and lists them."""
    seen: list[tuple[str, str]] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Recorder", (_Recorder,), {"seen": seen}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("leader", [True, False], ids=["leader", "follower"])
def test_a_rebuild_purges_what_changed_from_the_leader_only(
        leader: bool, write_post: WritePost, make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    write_post("one.md", categories="[news]")
    lock = tmp_path / "leader.lock"
    other = LeaderLock(lock)
    if not leader:
        assert other.is_leader()  # another replica holds the lock
    with recording_cache() as (url, seen):
        app = create_app(make_settings(purge_urls=url, leader_lock=str(lock), rebuild_interval=3600))
        background = start_background(app)
        try:
            publisher, purger = app.extensions["feedsvc"], app.extensions["feedsvc.purge"]
            wait_until(lambda: publisher.builds[0] >= 2, 5.0, "start_background()'s first rebuild")
            write_post("two.md", title="Two", categories="[sport]")
            publisher.rebuild()
            if leader:
                wait_until(lambda: purger.outcomes.sent >= 4, 5.0, "the purges of the rebuild")
                assert set(seen) >= {("BAN", "/feeds/all"), ("BAN", "/feeds/category/sport"), ("PURGE", "/"),
                                     ("PURGE", "/feeds.opml")}
                assert ("BAN", "/feeds/category/news") not in seen  # its feeds did not change
            else:
                assert (purger.outcomes.sent, purger.pending, seen) == (0, 0, [])
        finally:
            background.stop()
            other.release()


def test_a_purge_is_one_request_answered_by_its_head() -> None:
    with recording_cache() as (url, seen):
        assert send_purge(url, "BAN", "/feeds/all", 5.0).status == 200
    assert seen == [("BAN", "/feeds/all")]


# --- a real Varnish in front of a real feedsvc ----------------------------------------------------

def test_vcl_backend_is_where_the_tests_replace_it() -> None:
    assert len(re.findall(r'\.host = "127\.0\.0\.1";\s*\.port = "8000";', VCL.read_text("utf-8"))) == 1


def vcl_for(backend_port: int) -> str:
    """The shipped VCL with only its backend's port changed."""
    return VCL.read_text("utf-8").replace('.port = "8000";', f'.port = "{backend_port}";', 1)


@contextmanager
def run_varnish(workdir: Path, port: int, backend_port: int) -> Iterator[str]:
    """varnishd in the foreground on 127.0.0.1:`port`, with deploy/varnish.vcl pointed at `backend_port`."""
    assert VARNISHD is not None
    workdir.mkdir()
    (workdir / "feedsvc.vcl").write_text(vcl_for(backend_port), "utf-8")
    log = workdir / "varnishd.txt"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [VARNISHD, "-F", "-j", "none", "-n", str(workdir / "state"), "-a", f"127.0.0.1:{port}",
             "-f", str(workdir / "feedsvc.vcl"), "-s", "malloc,64m", "-T", "none"],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)

    try:
        wait_listening(process, port, "varnishd", lambda: ":\n" + log.read_text(), 30.0)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(process)


@contextmanager
def feedsvc_behind_varnish(content: Path, workdir: Path, **env: str) -> Iterator[tuple[Served, str]]:
    """`feedsvc serve` telling a Varnish in front of it what changed; (the server, Varnish's URL)."""
    port = free_port()
    workdir.mkdir()
    env = {"FEEDSVC_PURGE_URLS": f"http://127.0.0.1:{port}", "FEEDSVC_ADMIN_TOKEN": TOKEN, **env}
    with serve(content, workdir, **env) as served, \
            run_varnish(workdir / "varnish", port, int(served.url.rsplit(":", 1)[1])) as varnish:
        yield served, varnish


def fetch(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, Mapping[str, str], bytes]:
    """http_get, with a gzip body unpacked: (status, headers, what a reader reads)."""
    status, head, body = http_get(url, headers)
    return status, head, gzip.decompress(body) if head.get("Content-Encoding") == "gzip" else body


def is_hit(head: Mapping[str, str]) -> bool:
    """Varnish's X-Varnish names two transactions for an answer from the cache, one for a fetch."""
    return len(head.get("X-Varnish", "").split()) == 2


GZIP = {"Accept-Encoding": "gzip, deflate, br"}
IDENTITY: dict[str, str] = {}


@pytest.mark.system
@needs_varnish
def test_the_shipped_vcl_compiles(tmp_path: Path) -> None:
    assert VARNISHD is not None
    compiled = subprocess.run([VARNISHD, "-C", "-n", str(tmp_path / "state"), "-f", str(VCL)],
                              capture_output=True, text=True, timeout=60)
    assert compiled.returncode == 0, compiled.stderr


@pytest.mark.system
@needs_varnish
def test_an_edit_is_served_through_varnish_within_a_second(write_post: WritePost, content_dir: Path,
                                                           tmp_path: Path) -> None:
    write_post("ferry.md", title="Ferry returns", categories="[news]", featured="true")
    write_post("older.md", title="Older post", date="2024-05-05", categories="[news]")
    write_post("archive.md", title="Archived post", date="2024-01-01", categories="[archive]")
    with feedsvc_behind_varnish(content_dir, tmp_path / "work") as (served, varnish):
        urls = [f"{varnish}/feeds/all.atom", f"{varnish}/feeds/category/news.rss",
                f"{varnish}/feeds/all.json?limit=1", f"{varnish}/feeds/category/news",
                f"{varnish}/feeds/featured.atom"]  # a feed at the top of /feeds/ (featured, [[feeds]])
        unchanged = f"{varnish}/feeds/category/archive.atom"
        for url in [*urls, unchanged]:
            for encoding in (GZIP, IDENTITY):
                fetch(url, encoding)
                status, head, body = fetch(url, encoding)
                assert status == 200 and is_hit(head), (url, encoding, head)
                assert b"Ferry returns" in body or url == unchanged

        path = content_dir / "ferry.md"
        text = front_matter_post(title="Ferry returns after refit", categories="[news]", featured="true")
        path.with_suffix(".tmp").write_text(text, "utf-8")
        changed = time.monotonic()
        path.with_suffix(".tmp").replace(path)  # whole, as editors save

        def served_new(url: str, encoding: Mapping[str, str]) -> bool:
            return b"Ferry returns after refit" in fetch(url, encoding)[2]

        took = wait_until(lambda: served_new(urls[0], GZIP), 1.0, "the edit through Varnish (gzip)")
        assert served_new(urls[0], IDENTITY)
        for url in urls[1:]:  # the other formats, a ?limit= page and the preview, in both encodings
            for encoding in (GZIP, IDENTITY):
                assert served_new(url, encoding), (url, encoding)
        assert time.monotonic() - changed < 5.0
        print(f"edit served through Varnish after {took:.2f}s")
        assert is_hit(fetch(unchanged)[1]) and is_hit(fetch(unchanged, GZIP)[1])  # its feeds did not change

        def purged() -> dict[str, Any]:
            health = json.loads(fetch(f"{served.url}/healthz", {"Authorization": f"Bearer {TOKEN}"})[2])
            section: dict[str, Any] = health["cache_purge"]
            return section

        wait_until(lambda: purged()["sent"] >= 3 and purged()["pending"] == 0, 5.0, "the purges to be counted")
        assert purged()["failed"] == 0 and purged()["endpoints"] == {varnish: "ok"}
        for _ in range(2):  # /healthz is never cached: a probe must see now
            status, head, _ = fetch(f"{varnish}/healthz")
            assert status == 200 and not is_hit(head) and head["Cache-Control"] == "no-store"


@pytest.mark.system
@needs_varnish
def test_conditional_requests_get_304_through_varnish_and_varnish_revalidates(
        write_post: WritePost, content_dir: Path, tmp_path: Path) -> None:
    write_post("ferry.md", title="Ferry returns")
    with feedsvc_behind_varnish(content_dir, tmp_path / "work", FEEDSVC_CACHE_MAX_AGE="1") as (served, varnish):
        for encoding in (GZIP, IDENTITY):
            direct = fetch(f"{served.url}/feeds/all.atom", encoding)[1]["ETag"]
            status, head, _ = fetch(f"{varnish}/feeds/all.atom", encoding)
            assert status == 200 and head["ETag"] == direct  # feedsvc's validator, per encoding
            status, head, body = fetch(f"{varnish}/feeds/all.atom", {**encoding, "If-None-Match": direct})
            assert (status, head["ETag"], body) == (304, direct, b"")

        def revalidated() -> bool:
            # Past max-age Varnish asks feedsvc with If-None-Match; no client here asks feedsvc itself.
            status, _, body = fetch(f"{varnish}/feeds/all.atom")
            assert status == 200 and b"Ferry returns" in body
            metrics = fetch(f"{served.url}/metrics")[2].decode()
            return re.search(r'feedsvc_http_requests_total\{route="feed",status="304"\} [1-9]', metrics) is not None

        wait_until(revalidated, 10.0, "Varnish to revalidate with feedsvc (a 304 from feedsvc)")


@pytest.mark.system
@needs_varnish
def test_varnish_keeps_serving_the_last_feeds_while_feedsvc_is_down(
        write_post: WritePost, content_dir: Path, tmp_path: Path) -> None:
    write_post("ferry.md", title="Ferry returns")
    with feedsvc_behind_varnish(content_dir, tmp_path / "work", FEEDSVC_CACHE_MAX_AGE="1") as (served, varnish):
        before = {str(encoding): fetch(f"{varnish}/feeds/all.atom", encoding) for encoding in (GZIP, IDENTITY)}
        assert served.terminate() == 0
        assert http_get(f"{served.url}/feeds/all.atom")[0] == 0  # nothing answers there now

        def stale_but_served() -> bool:
            ages = []
            for encoding in (GZIP, IDENTITY):
                status, head, body = fetch(f"{varnish}/feeds/all.atom", encoding)
                _, old_head, old_body = before[str(encoding)]
                assert (status, head["ETag"], body) == (200, old_head["ETag"], old_body), head
                ages.append(int(head["Age"]))
            # Past max-age=1 and the 10 s a healthy backend's objects are served stale while one
            # revalidates: the probe has found feedsvc down, and the whole grace applies.
            return min(ages) >= 12

        wait_until(stale_but_served, 20.0, "Varnish to serve the feed 12 s past its max-age")


@pytest.mark.system
@needs_varnish
def test_purges_from_other_addresses_are_refused(write_post: WritePost, content_dir: Path, tmp_path: Path) -> None:
    write_post("ferry.md", title="Ferry returns")
    with feedsvc_behind_varnish(content_dir, tmp_path / "work") as (_, varnish):
        port = int(varnish.rsplit(":", 1)[1])
        fetch(f"{varnish}/feeds/all.atom")
        for method, path in (("BAN", "/feeds/all"), ("PURGE", "/feeds/all.atom")):
            # 127.0.0.2 is this machine too (Linux routes 127/8 to lo), but not in the VCL's ACL.
            assert answer_from("127.0.0.2", port, method, path) == 403
            assert is_hit(fetch(f"{varnish}/feeds/all.atom")[1])
        assert answer_from("127.0.0.1", port, "BAN", "/feeds/all") == 200
        assert not is_hit(fetch(f"{varnish}/feeds/all.atom")[1])
        assert answer_from("127.0.0.1", port, "BAN", "/feeds/.*") == 400  # a channel path, never a pattern


def answer_from(source: str, port: int, method: str, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        connection.request(method, path)
        return connection.getresponse().status
    finally:
        connection.close()
