"""Feed responses as RFC 9110/9111 want them: the encoding chosen, validators set, 304 when fresh.

Pure: request header values in, (status, headers, body) out, so the Flask view and the fast
WSGI path give the same answer.
"""

from __future__ import annotations

from datetime import UTC, datetime

from werkzeug.datastructures import Accept
from werkzeug.http import http_date, parse_accept_header, parse_date, parse_etags

from feedsvc.model import RenderedFeed

Headers = list[tuple[str, str]]


def accepts_gzip(accept_encoding: str | None) -> bool:
    if not accept_encoding:
        return False
    if accept_encoding == "gzip" or accept_encoding.startswith("gzip, "):  # what most clients send
        return True
    return parse_accept_header(accept_encoding, Accept)["gzip"] > 0


def is_not_modified(etag: str, last_modified: datetime, *, if_none_match: str | None,
                    if_modified_since: str | None) -> bool:
    """If-None-Match decides when present (RFC 9110 section 13.2.2); else If-Modified-Since."""
    if if_none_match:
        if if_none_match == etag:  # the usual case, without parsing
            return True
        candidates = parse_etags(if_none_match)
        return candidates.star_tag or candidates.contains_weak(etag.strip('"'))
    since = parse_date(if_modified_since) if if_modified_since else None
    return since is not None and last_modified.replace(microsecond=0) <= since.astimezone(UTC)


def feed_response(feed: RenderedFeed, *, accept_encoding: str | None, if_none_match: str | None,
                  if_modified_since: str | None, max_age: int, links: str | None = None,
                  head: bool = False) -> tuple[int, Headers, bytes]:
    """The gzip or identity body (each with its own ETag), or 304 with the same validators and no body."""
    gzipped = accepts_gzip(accept_encoding)
    body, etag = (feed.gzip_body, feed.gzip_etag) if gzipped else (feed.body, feed.etag)
    headers: Headers = [
        ("ETag", etag),
        ("Last-Modified", http_date(feed.last_modified)),
        ("Cache-Control", f"max-age={max_age}"),  # `public` adds nothing without Authorization (RFC 9111 3.5)
        ("Vary", "Accept-Encoding"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    if links:
        headers.append(("Link", links))
    if is_not_modified(etag, feed.last_modified, if_none_match=if_none_match, if_modified_since=if_modified_since):
        return 304, headers, b""
    headers += [("Content-Type", f"{feed.format.media_type}; charset=utf-8"), ("Content-Length", str(len(body)))]
    if gzipped:
        headers.append(("Content-Encoding", "gzip"))
    return 200, headers, b"" if head else body
