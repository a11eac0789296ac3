"""Self-test of the client lab: each real-client adapter against a toy server whose HTTP is known to be right.

If one of these fails, a failure of the story test that uses the adapters says nothing about the
feed service; so the toy is deliberately plain: strong ETag = hash of the bytes, Last-Modified = the
wall-clock second of the change, 304 for a matching If-None-Match (else a not-older If-Modified-Since).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import threading
import time
from collections.abc import Iterator, Sequence
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from lab.clients import ADAPTERS, Client, Entry, expected_view, make_client, missing
from lab.proxy import Exchange, RecordingProxy

pytestmark = pytest.mark.system


class ToyFeedServer:
    """Atom documents held in memory, one per path, with validators a cache can trust."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[str, tuple[bytes, str, int]] = {}
        self._entries: dict[str, dict[str, tuple[str, int]]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def publish(self, path: str, entries: Sequence[Entry], *, last_modified: int | None = None) -> None:
        """Serve ``entries`` at ``path`` from now on, dated ``last_modified`` (Unix seconds).

        By default a change is dated by the next wall-clock second, waited for, so it is later than
        anything a client did before this call (curl time conditions compare whole seconds). Tests pass
        an explicit date to play a server that dates changes wrongly (not forward, or in the past).
        """
        with self._lock:
            old = self._docs.get(path)
        if last_modified is not None:
            stamp = last_modified
        elif old is None:
            stamp = int(time.time())
        else:
            time.sleep(1 - time.time() % 1)
            stamp = max(int(time.time()), old[2] + 1)
        known = self._entries.setdefault(path, {})
        for entry in entries:
            if known.get(entry.id, ("", 0))[0] != entry.title:
                known[entry.id] = (entry.title, stamp)
        items = "".join(
            f"<entry><id>{escape(e.id)}</id><title>{escape(e.title)}</title>"
            f"<link href={quoteattr('https://example.org/posts/' + hashlib.sha1(e.id.encode()).hexdigest())}/>"
            f"<updated>{_iso(known[e.id][1])}</updated><summary>{escape(e.title)}</summary></entry>"
            for e in entries
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<id>https://example.org{escape(path)}</id><title>Toy {escape(path)}</title>"
            f"<updated>{_iso(stamp)}</updated><author><name>Toy</name></author>{items}</feed>\n"
        ).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        with self._lock:
            self._docs[path] = (body, etag, stamp)

    def last_modified(self, path: str) -> int:
        with self._lock:
            return self._docs[path][2]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        toy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet; the recording proxy keeps the log."""

            def do_GET(self) -> None:
                with toy._lock:
                    doc = toy._docs.get(self.path)
                if doc is None:
                    self.send_error(404)
                    return
                body, etag, stamp = doc
                unchanged = _not_modified(self.headers, etag, stamp)
                self.send_response(304 if unchanged else 200)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", formatdate(stamp, usegmt=True))
                if unchanged:
                    self.end_headers()
                    return
                self.send_header("Content-Type", "application/atom+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _iso(stamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def _not_modified(headers: object, etag: str, stamp: int) -> bool:
    """RFC 9110 13.2.2: If-None-Match (weak comparison) wins; If-Modified-Since only without it."""
    if_none_match = headers.get("If-None-Match")  # type: ignore[attr-defined]
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or etag in tags
    if_modified_since = headers.get("If-Modified-Since")  # type: ignore[attr-defined]
    if not if_modified_since:
        return False
    try:
        return stamp <= parsedate_to_datetime(if_modified_since).timestamp()
    except (TypeError, ValueError):
        return False


@pytest.fixture
def toy() -> Iterator[ToyFeedServer]:
    server = ToyFeedServer()
    yield server
    server.close()


@pytest.fixture(params=sorted(ADAPTERS))
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    absent = missing(request.param)
    if absent:
        pytest.skip(f"{request.param} needs {', '.join(absent)}, not installed")
    adapter = make_client(request.param, tmp_path / request.param)
    yield adapter
    adapter.close()


def _by_path(exchanges: list[Exchange]) -> dict[str, list[Exchange]]:
    out: dict[str, list[Exchange]] = {}
    for exchange in exchanges:
        out.setdefault(exchange.path, []).append(exchange)
    return out


def _conditional(exchange: Exchange) -> bool:
    return "if-none-match" in exchange.request_headers or "if-modified-since" in exchange.request_headers


A1, A2, A3 = "tag:example.org,2026:a/1", "tag:example.org,2026:a/2", "tag:example.org,2026:a/3"
B1 = "tag:example.org,2026:b/1"


def test_client_view_follows_the_served_feed(client: Client, toy: ToyFeedServer) -> None:
    """Subscribe to two feeds, poll, poll unchanged (304), then edit a title and add an entry to one."""
    first_a = [Entry(A1, "First post"), Entry(A2, "Second & <last> post")]
    only_b = [Entry(B1, "Other feed")]
    toy.publish("/a.atom", first_a)
    toy.publish("/b.atom", only_b)
    with RecordingProxy(toy.url) as proxy:
        url_a, url_b = proxy.url + "/a.atom", proxy.url + "/b.atom"
        client.subscribe(url_a)
        client.subscribe(url_b)

        client.poll()
        assert client.errors == []
        view = client.view()
        assert sorted(view[url_a]) == sorted(first_a)
        assert view[url_b] == only_b

        for _ in range(client.unconditional_polls - 1):
            client.poll()
        proxy.clear()
        client.poll()
        repeat = _by_path(proxy.exchanges)
        assert sorted(repeat) == ["/a.atom", "/b.atom"], "one request per feed and poll"
        if client.sends_validators:
            for path, exchanges in repeat.items():
                assert [(e.status, _conditional(e)) for e in exchanges] == [(304, True)], path
        assert client.view() == view

        edited_a = [Entry(A1, "First post, edited"), first_a[1], Entry(A3, "Third post")]
        toy.publish("/a.atom", edited_a)
        proxy.clear()
        client.poll()
        assert client.errors == []
        statuses = {path: [e.status for e in ex] for path, ex in _by_path(proxy.exchanges).items()}
        assert statuses == {"/a.atom": [200], "/b.atom": [304 if client.sends_validators else 200]}

    view = client.view()
    assert sorted(view[url_a]) == expected_view(client, [first_a, edited_a])
    assert view[url_b] == only_b
    assert Entry(A3, "Third post") in view[url_a]
    ids = [e.id for e in view[url_a]]
    if client.edits == "append":
        assert sorted(ids) == sorted([A1, A1, A2, A3]), "old and new version of the edited entry"
    else:
        assert len(ids) == len(set(ids)), f"duplicate ids in {view[url_a]}"
    if client.edits == "ignore":
        assert Entry(A1, "First post") in view[url_a], "delivered once, edit not re-delivered"
    else:
        assert Entry(A1, "First post, edited") in view[url_a]


# Whether the client shows a new entry whose document came with a new ETag but the old Last-Modified.
# newsboat and sfeed send If-Modified-Since through a libcurl time condition, which turns the 200 into
# "not modified" and yet stores the new ETag; curl -z sends only If-Modified-Since, so the toy says 304.
SEES_CHANGE_WITH_OLD_LAST_MODIFIED = {
    "feedparser": True,
    "reader": True,
    "feed2exec": True,
    "newsboat": False,
    "sfeed": False,
    "curl": False,
}


def test_a_change_needs_a_newer_last_modified(client: Client, toy: ToyFeedServer) -> None:
    """Records which clients miss a change when the server forgets to move Last-Modified forward."""
    before = [Entry(A1, "First post")]
    toy.publish("/a.atom", before)
    with RecordingProxy(toy.url) as proxy:
        url = proxy.url + "/a.atom"
        client.subscribe(url)
        for _ in range(client.unconditional_polls):
            client.poll()
        after = [*before, Entry(A2, "Second post")]
        toy.publish("/a.atom", after, last_modified=toy.last_modified("/a.atom"))
        proxy.clear()
        client.poll()
        client.poll()
        statuses = [e.status for e in proxy.exchanges]

    sees = SEES_CHANGE_WITH_OLD_LAST_MODIFIED[client.name]
    assert sorted(client.view()[url]) == sorted(after if sees else before)
    if client.name in ("newsboat", "sfeed"):
        assert statuses == [200, 304], "the 200 was dropped, and its ETag kept, so the change is never fetched"
    elif client.name == "curl":
        assert statuses == [304, 304]
    else:
        assert statuses == [200, 304]


def test_proxy_passes_the_response_through_untouched() -> None:
    """Raw (still gzipped, de-chunked) body, status, end-to-end headers; the exchange is recorded."""
    payload = gzip.compress(b"<feed/>" * 100)

    class Gzipped(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            if self.headers.get("If-None-Match") == '"x"':
                self.send_response(304)
                self.send_header("ETag", '"x"')
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("ETag", '"x"')
            self.send_header("X-Host-Seen", self.headers.get("Host", ""))
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(payload), 100):
                chunk = payload[start : start + 100]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Gzipped)
    threading.Thread(target=upstream.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    upstream_url = f"http://127.0.0.1:{upstream.server_address[1]}"
    try:
        with RecordingProxy(upstream_url + "/base") as proxy:
            conn = http.client.HTTPConnection(proxy.url.removeprefix("http://"), timeout=10)
            conn.request("GET", "/f?x=1", headers={"Accept-Encoding": "gzip", "Connection": "keep-alive"})
            first = conn.getresponse()
            body = first.read()
            conn.request("GET", "/f?x=1", headers={"If-None-Match": '"x"'})  # same connection: keep-alive works
            second = conn.getresponse()
            second.read()
            conn.close()
            exchanges = proxy.exchanges
            proxy.clear()
            assert proxy.exchanges == []
    finally:
        upstream.shutdown()
        upstream.server_close()

    assert (first.status, first.getheader("Content-Encoding"), body) == (200, "gzip", payload)
    assert first.getheader("X-Host-Seen") == upstream_url.removeprefix("http://")
    assert second.status == 304
    assert [(e.method, e.path, e.status) for e in exchanges] == [("GET", "/f?x=1", 200), ("GET", "/f?x=1", 304)]
    assert exchanges[0].request_headers["accept-encoding"] == "gzip"
    assert "connection" not in exchanges[0].request_headers
    assert exchanges[1].request_headers["if-none-match"] == '"x"'
    assert exchanges[0].response_headers["content-encoding"] == "gzip"
    assert "transfer-encoding" not in exchanges[0].response_headers


# Whether the client shows a change dated one second after the previous Last-Modified but before the
# client's previous poll (as when a server dates a feed by its newest post's file time). sfeed's
# README fetch() sends the ETag file's mtime, i.e. the local time of its previous poll, as the time
# condition, so libcurl drops that 200 (and keeps its ETag); the others compare with the old date.
SEES_BACKDATED_CHANGE = {
    "feedparser": True,
    "reader": True,
    "feed2exec": True,
    "newsboat": True,
    "sfeed": False,
    "curl": True,
}


def test_a_change_dated_before_the_previous_poll(client: Client, toy: ToyFeedServer) -> None:
    """Last-Modified moves forward by one second, yet stays in the past of the client's clock."""
    long_ago = int(time.time()) - 3600
    before = [Entry(A1, "First post")]
    toy.publish("/a.atom", before, last_modified=long_ago)
    with RecordingProxy(toy.url) as proxy:
        url = proxy.url + "/a.atom"
        client.subscribe(url)
        for _ in range(client.unconditional_polls):
            client.poll()
        after = [Entry(A1, "First post, edited"), Entry(A2, "Second post")]
        toy.publish("/a.atom", after, last_modified=long_ago + 1)
        proxy.clear()
        client.poll()
        assert [e.status for e in proxy.exchanges] == [200]

    shown = sorted(client.view()[url])
    if not SEES_BACKDATED_CHANGE[client.name]:
        assert shown == sorted(before)
    else:
        assert shown == expected_view(client, [before, after])
