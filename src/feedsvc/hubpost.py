"""One request to a hub or a cache, with one deadline for the whole answer; redirects are returned, never followed.

urllib's timeout is per socket read, so a hub trickling a byte every few seconds held a sender
for minutes; and it followed redirects to any host, even ftp://. Here every read is allowed only
the time left, and only the status line and headers are read. Hubs are reached directly, so
HTTP(S)_PROXY is not read.
"""

from __future__ import annotations

import functools
import http.client
import io
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

from feedsvc import __version__

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_HEADERS = {"User-Agent": f"feedsvc/{__version__}", "Connection": "close"}
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What a sender reads of an answer: the status line and two headers, never the body."""

    status: int
    retry_after: str | None = None
    location: str | None = None


Post = Callable[[str, bytes, float], Answer]  # (hub, form, timeout for the whole attempt) -> the hub's answer


def post_form(hub: str, body: bytes, timeout: float) -> Answer:
    """POST the form to the hub's URL, as written, and read the answer's head within `timeout` seconds."""
    parts = urlsplit(hub)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return send(hub, "POST", target, body=body, timeout=timeout, headers=_FORM)


def send(endpoint: str, method: str, target: str, *, body: bytes | None = None, timeout: float,
         headers: dict[str, str] | None = None) -> Answer:
    """`method target` to the endpoint's host (its own path is not used), reading the answer's head,
    all within `timeout` seconds; a redirect is returned, never followed."""
    deadline = time.monotonic() + timeout
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {endpoint}")
    connection = (http.client.HTTPSConnection(parts.hostname, parts.port, context=_tls()) if parts.scheme == "https"
                  else http.client.HTTPConnection(parts.hostname, parts.port))  # it formats the request; we connect
    try:
        connection.sock = sock = _connect(parts, deadline)
        sock.settimeout(_remaining(deadline))  # sendall() keeps to it in total, not per send (Python 3.5+)
        connection.request(method, target, body, headers={**_HEADERS, **(headers or {})})
        reader = _DeadlineReader(sock, deadline)  # HTTPResponse only asks its "socket" for makefile()
        response = http.client.HTTPResponse(reader, method=method)  # type: ignore[arg-type]
        response.begin()
        return Answer(status=response.status, retry_after=response.getheader("Retry-After"),
                      location=response.getheader("Location"))
    finally:
        connection.close()


def _connect(parts: SplitResult, deadline: float) -> socket.socket:
    """A connected socket, TLS handshake included for https, within the time left."""
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    sock = socket.create_connection((host, port), timeout=_remaining(deadline))
    if parts.scheme == "http":
        return sock
    try:
        sock.settimeout(_remaining(deadline))
        return _tls().wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


@functools.cache
def _tls() -> ssl.SSLContext:
    """One context (certificate checks on) for every attempt: making one loads the CA bundle."""
    return ssl.create_default_context()


def _remaining(deadline: float) -> float:
    """Seconds left before `deadline`; a TimeoutError (an OSError, so a failed attempt) once there are none."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each allowed only the time left, so an answer trickled a byte at a time is cut off."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._sock.settimeout(_remaining(self._deadline))
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str) -> io.BufferedReader:
        """All that http.client.HTTPResponse asks of its socket."""
        return io.BufferedReader(self)
