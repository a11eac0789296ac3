"""One GET as a feed reader makes it, for `feedsvc doctor`: redirects followed by hand (each hop
reported, other schemes refused), the body decoded from gzip, the time taken. Standard library
only; the proxy the environment names is used, as urllib does.
"""

from __future__ import annotations

import gzip
import http.client
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO
from urllib.parse import urljoin, urlsplit

_REDIRECTS = {301, 302, 303, 307, 308}
_MAX_HOPS = 5
_MAX_BODY = 32 * 1024 * 1024  # bytes read from one answer: a feed larger than this is a problem of its own


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetched:
    url: str  # after redirects
    status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes  # decoded from its Content-Encoding
    encoding: str  # the Content-Encoding it came with, "" for none
    size: int  # bytes on the wire
    seconds: float
    hops: tuple[tuple[int, str], ...]  # (status, Location) of each redirect followed

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()


class FetchError(Exception):
    """No answer to read: refused, timed out, an unfollowable redirect or a body that does not decode."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects come back as answers: `fetch` follows them itself, to report each hop and refuse other schemes
    (urllib's own handler follows ftp: too)."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: http.client.HTTPMessage, newurl: str) -> None:
        return None


def fetch(url: str, headers: Mapping[str, str], *, timeout: float) -> Fetched:
    """GET `url` as a reader would, following up to five http(s) redirects."""
    hops: list[tuple[int, str]] = []
    started = time.monotonic()
    while True:
        if urlsplit(url).scheme not in ("http", "https"):
            raise FetchError(f"{url}: not an http or https URL, not fetched")
        status, answer, raw = _exchange(url, headers, timeout)
        location = answer.get("location")
        if status not in _REDIRECTS or not location:
            encoding = answer.get("content-encoding", "").strip().lower()
            return Fetched(url=url, status=status, headers=answer, body=_decoded(raw, encoding), encoding=encoding,
                           size=len(raw), seconds=time.monotonic() - started, hops=tuple(hops))
        if len(hops) == _MAX_HOPS:
            raise FetchError(f"more than {_MAX_HOPS} redirects")
        url = urljoin(url, location)
        hops.append((status, url))


def _exchange(url: str, headers: Mapping[str, str], timeout: float) -> tuple[int, dict[str, str], bytes]:
    # build_opener adds a ProxyHandler that reads http_proxy, https_proxy and no_proxy, as urlopen does.
    opener = urllib.request.build_opener(_NoRedirects())
    try:
        try:
            with opener.open(urllib.request.Request(url, headers=dict(headers)), timeout=timeout) as response:
                return response.status, _lowered(response.headers.items()), response.read(_MAX_BODY)
        except urllib.error.HTTPError as error:  # 304, 4xx, 5xx and the redirects land here
            with error:
                return error.code, _lowered(error.headers.items()), error.read(_MAX_BODY)
    except urllib.error.URLError as exc:
        raise FetchError(str(exc.reason)) from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise FetchError(str(exc) or type(exc).__name__) from exc


def _lowered(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def _decoded(body: bytes, encoding: str) -> bytes:
    if encoding not in ("gzip", "x-gzip"):
        return body
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise FetchError(f"Content-Encoding: gzip, but the body does not decompress ({exc})") from exc
