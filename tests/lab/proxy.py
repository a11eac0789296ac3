"""A recording HTTP proxy, so a test can attribute each request and response to one client.

Each client under test talks to its own ``RecordingProxy``; the proxy forwards requests to the real
server untouched (no decompression, no caching) and keeps a log of what the client sent and what it
got back, e.g. whether a repeat poll carried validators and was answered ``304``.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

# RFC 9110 section 7.6.1: these describe one connection, not the message, so a proxy must not forward them.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


@dataclass(frozen=True)
class Exchange:
    """One request/response pair as the client saw it (header names lower-cased, repeats joined by ', ')."""

    method: str
    path: str
    request_headers: dict[str, str]
    status: int
    response_headers: dict[str, str]


def _hop_by_hop(connection_header: str | None) -> set[str]:
    """Hop-by-hop names: the fixed set plus any the Connection header lists."""
    extra = {token.strip().lower() for token in (connection_header or "").split(",") if token.strip()}
    return set(HOP_BY_HOP) | extra


def _as_dict(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the exchange log is the record."""

    def _read_request_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # discard trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length")
        return self.rfile.read(int(length)) if length else None

    def _forward(self) -> None:
        proxy = self.server.proxy
        body = self._read_request_body()
        drop = _hop_by_hop(self.headers.get("Connection"))
        request_pairs = [(k, v) for k, v in self.headers.items() if k.lower() not in drop]
        upstream_headers = [(k, v) for k, v in request_pairs if k.lower() not in ("host", "content-length")]
        upstream_headers.insert(0, ("Host", proxy.upstream_netloc))
        if body is not None:
            upstream_headers.append(("Content-Length", str(len(body))))

        conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=proxy.timeout)
        try:
            conn.putrequest(self.command, proxy.upstream_prefix + self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in upstream_headers:
                conn.putheader(name, value)
            conn.endheaders(body)
            response = conn.getresponse()
            # http.client undoes chunked framing but never Content-Encoding, so these are the raw entity bytes.
            payload = response.read()
            status, reason = response.status, response.reason
            response_pairs = response.getheaders()
        except OSError as exc:
            status, reason = 502, "Bad Gateway"
            payload = f"upstream error: {exc}\n".encode()
            response_pairs = [("Content-Type", "text/plain")]
        finally:
            conn.close()

        drop = _hop_by_hop(dict(_as_dict(response_pairs)).get("connection"))
        kept = [(k, v) for k, v in response_pairs if k.lower() not in drop]
        bodiless = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        if not bodiless:
            # The body was de-chunked above, so frame it with an exact length.
            kept = [(k, v) for k, v in kept if k.lower() != "content-length"]
            kept.append(("Content-Length", str(len(payload))))

        proxy._record(
            Exchange(
                method=self.command,
                path=self.path,
                request_headers=_as_dict(request_pairs),
                status=status,
                response_headers=_as_dict(kept),
            )
        )
        self.send_response_only(status, reason)
        for name, value in kept:
            self.send_header(name, value)
        self.end_headers()
        if not bodiless and payload:
            self.wfile.write(payload)
        self.wfile.flush()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _forward


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: RecordingProxy


class RecordingProxy:
    """Forward every request to ``upstream_base_url`` and keep a thread-safe log of the exchanges.

    Use as a context manager; ``url`` is the proxy's own base URL (no trailing slash), so a client
    subscribes to ``proxy.url + "/feed.atom"`` instead of the upstream URL.
    """

    def __init__(self, upstream_base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(upstream_base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"need a plain http:// upstream, got {upstream_base_url!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.upstream_netloc = parts.netloc
        self.upstream_prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("proxy is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def clear(self) -> None:
        with self._lock:
            self._exchanges.clear()

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    def start(self) -> RecordingProxy:
        server = _ProxyServer(("127.0.0.1", 0), _Handler)
        server.proxy = self
        self._server = server
        # A short poll interval keeps stop() (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="recording-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> RecordingProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
