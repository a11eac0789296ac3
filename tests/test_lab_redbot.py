"""Self-test of the REDbot wrapper on two toy servers: one careless about caching, one careful.

It shows the wrapper reports what REDbot finds, follow-up checks included, before anyone trusts it on feedsvc.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from email.utils import formatdate

import pytest

pytest.importorskip("redbot.resource", reason="REDbot is not installed")

from lab.redbot_lint import LintError, Note, lint, lint_report

pytestmark = pytest.mark.system

BODY = b'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">' + (
    b"<entry><title>An entry about caching</title></entry>" * 40) + b"</feed>\n"
ETAG = '"' + hashlib.sha256(BODY).hexdigest()[:16] + '"'
GZIP_ETAG = ETAG[:-1] + '-gzip"'  # each representation its own strong ETag, or REDbot says "bad"
LAST_MODIFIED = formatdate(1_767_225_600, usegmt=True)  # 2026-01-01
GZIPPED = gzip.compress(BODY, mtime=0)


class Handler(http.server.BaseHTTPRequestHandler):
    """/bare: a 200 with only Content-Type and Content-Length. /careful: validators, freshness, gzip, 304s."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/bare":
            self._send(200, [("Content-Type", "application/atom+xml")], BODY)
        elif self.path == "/careful":
            self._careful()
        else:
            self._send(404, [("Content-Type", "text/plain")], b"not found\n")

    def _careful(self) -> None:
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
        etag = GZIP_ETAG if gzipped else ETAG
        headers = [("Cache-Control", "public, max-age=300"), ("ETag", etag), ("Last-Modified", LAST_MODIFIED),
                   ("Vary", "Accept-Encoding")]
        inm = self.headers.get("If-None-Match")
        if inm == etag or (inm is None and self.headers.get("If-Modified-Since") == LAST_MODIFIED):
            self._send(304, headers, b"")
            return
        headers.append(("Content-Type", "application/atom+xml; charset=utf-8"))
        if gzipped:
            self._send(200, [*headers, ("Content-Encoding", "gzip")], GZIPPED)
        else:
            self._send(200, headers, BODY)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def summaries(notes: list[Note], *levels: str) -> set[str]:
    return {note.summary for note in notes if note.level in levels}


def test_bare_response_is_warned_about(base_url: str) -> None:
    report = lint_report(f"{base_url}/bare")
    assert report.status == 200
    assert "This response allows caches to assign their own freshness lifetimes to it." in summaries(
        report.notes, "warning")
    assert report.support == {"partial": False, "inm": False, "ims": False, "gzip": False}
    assert {note.level for note in report.notes} <= {"good", "info", "warning", "bad"}


def test_careful_response_has_no_bad_notes(base_url: str) -> None:
    report = lint_report(f"{base_url}/careful")
    assert report.at("bad") == []
    good = summaries(report.notes, "good")
    assert "If-None-Match conditional requests are supported." in good
    assert "If-Modified-Since conditional requests are supported." in good
    assert any(summary.startswith("Content negotiation for gzip compression is supported") for summary in good)
    assert report.support["inm"] and report.support["ims"] and report.support["gzip"]
    assert "This response allows caches to assign their own freshness lifetimes to it." not in summaries(
        report.notes, "warning")


def test_lint_is_repeatable_and_headers_reach_the_server(base_url: str) -> None:
    """Same server, same notes; a request header REDbot is given is sent (here it turns its checks off)."""
    assert lint(f"{base_url}/careful") == lint(f"{base_url}/careful")
    validated = lint_report(f"{base_url}/careful", headers=[("If-None-Match", ETAG)])
    assert validated.status == 304


def test_unreachable_url_raises() -> None:
    with pytest.raises(LintError, match="no response"):
        lint("http://127.0.0.1:9/", timeout=5)
