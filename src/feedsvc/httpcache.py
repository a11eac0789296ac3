"""Feed responses as RFC 9110/9111 want them: the encoding chosen, validators set, 304 when fresh."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Request, Response
from werkzeug.datastructures import Headers

from feedsvc.model import RenderedFeed


class _NotModified(Response):
    """A 304 that keeps Last-Modified: werkzeug drops it as an entity header; RFC 9110 section 15.4.5 allows it."""

    def get_wsgi_headers(self, environ: Any) -> Headers:
        headers = super().get_wsgi_headers(environ)
        if modified := self.headers.get("Last-Modified"):
            headers["Last-Modified"] = modified
        return headers


def accepts_gzip(request: Request) -> bool:
    return request.accept_encodings["gzip"] > 0


def is_not_modified(request: Request, etag: str, last_modified: datetime) -> bool:
    """If-None-Match decides when present (RFC 9110 section 13.2.2); else If-Modified-Since."""
    if request.headers.get("If-None-Match"):
        candidates = request.if_none_match
        return candidates.star_tag or candidates.contains_weak(etag.strip('"'))
    since = request.if_modified_since
    return since is not None and last_modified.replace(microsecond=0) <= since


def feed_response(request: Request, feed: RenderedFeed, *, max_age: int, links: str | None = None) -> Response:
    """The gzip or identity body (each with its own ETag), or 304 with the same headers and no body."""
    gzipped = accepts_gzip(request)
    body, etag = (feed.gzip_body, feed.gzip_etag) if gzipped else (feed.body, feed.etag)
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={max_age}",
        "Vary": "Accept-Encoding",
    }
    if links:
        headers["Link"] = links
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    if is_not_modified(request, etag, feed.last_modified):
        response = _NotModified(status=304, headers=headers)
    else:
        response = Response(body, headers=headers, content_type=f"{feed.format.media_type}; charset=utf-8")
    response.last_modified = feed.last_modified
    return response
