"""Requests from anyone, sent raw to a real `feedsvc serve`: no 500, no traceback, nothing outside the folder."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from conftest import front_matter_post
from serving import Served, serve

pytestmark = pytest.mark.system

SECRET = "TOP-SECRET-OUTSIDE-THE-FOLDER"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("requests")
    content = root / "content"
    content.mkdir()
    (content / "post.md").write_text(front_matter_post(title="A post", categories="[news]"), "utf-8")
    (root / "secret.md").write_text(front_matter_post(title=SECRET), "utf-8")
    with serve(content, root, base_url="https://feeds.example.org") as served:
        yield served


def raw(server: Served, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (no client tidies them up); return the status and the whole response."""
    parts = urlsplit(server.url)
    chunks = []
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        try:
            sock.sendall(request)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:  # a server may hang up on a request it will not read
            pass
    response = b"".join(chunks)
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
    return status, response


def get(path: str, *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


@pytest.mark.parametrize("path", [
    "/feeds/category/..%2f..%2fsecret.md.atom", "/feeds/category/..%2F..%2F..%2Fetc%2Fpasswd.atom",
    "/feeds/../../secret.md", "/feeds/%2e%2e/%2e%2e/secret.md", "/posts/..%2fsecret", "/posts/%2e%2e%2fsecret",
    "/feeds/category/%00.atom", "/feeds/category/news.atom%00.html", "//etc/passwd", "/feeds/category/news.atom;x",
    "/feeds/all.atom?before=" + "9" * 5000, "/feeds/all.atom?limit=99999999999999999999", "/%ff%fe/feeds",
])
def test_traversal_and_odd_paths(server: Served, path: str) -> None:
    status, response = raw(server, get(path))
    assert 0 < status < 500, response[:300]
    assert SECRET.encode() not in response and b"root:" not in response and b"Traceback" not in response


@pytest.mark.parametrize("size", [20_000, 2_000_000])
def test_very_long_url_and_headers(server: Served, size: int) -> None:
    """Answered, refused (4xx) or the connection closed (status 0): never a 5xx or a traceback."""
    status, response = raw(server, get("/feeds/all.atom?x=" + "a" * size))
    assert status < 500 and b"Traceback" not in response
    status, response = raw(server, get("/feeds/all.atom", "X-Big: " + "b" * size))
    assert status < 500 and b"Traceback" not in response
    many = [f"X-H{i}: v" for i in range(300)]
    status, response = raw(server, get("/feeds/all.atom", *many))
    assert 0 < status < 500 and b"Traceback" not in response


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "BREW", "TRACE"])
def test_other_methods(server: Served, method: str) -> None:
    status, response = raw(server, get("/feeds/all.atom", "Content-Length: 0", method=method))
    assert status in (400, 405, 501), response[:200]
    assert b"Traceback" not in response


@pytest.mark.parametrize("header", [
    "Accept-Encoding: gzip;q=abc", "Accept-Encoding: " + ",".join(["gzip"] * 500), "Accept-Encoding: \x01\x02",
    "If-None-Match: \"unterminated", "If-None-Match: ,,,", "If-Modified-Since: yesterday",
    "If-Modified-Since: Mon, 32 Foo 99999 99:99:99 GMT", "Range: bytes=0-10", "Range: bytes=garbage",
    "Host: evil.example", "X-Forwarded-Host: evil.example",
])
def test_odd_headers(server: Served, header: str) -> None:
    status, response = raw(server, get("/feeds/all.atom", header))
    assert 0 < status < 500, response[:300]
    assert b"Traceback" not in response and b"evil.example" not in response


def test_html_pages_are_locked_down(server: Served) -> None:
    for path in ("/", "/feeds/all", "/posts/post"):
        status, response = raw(server, get(path))
        head = response.split(b"\r\n\r\n", 1)[0].lower()
        assert status == 200
        assert b"x-content-type-options: nosniff" in head
        assert b"content-security-policy: default-src 'none'" in head
