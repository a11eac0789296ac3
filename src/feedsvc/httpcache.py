"""Feed responses as RFC 9110/9111 want them: the encoding chosen, validators set, 304 when fresh.

Pure: request header values in, (status, headers, body) out, so the Flask view and the fast
WSGI path give the same answer. A feed's headers are made once per feed (`PreparedFeed`), not per poll.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from werkzeug.datastructures import Accept
from werkzeug.http import http_date, parse_accept_header, parse_date, parse_etags

from feedsvc.model import RenderedFeed

Headers = list[tuple[str, str]]
# A feed URL has two answers: the feed, or for a person who opened it in a browser, its HTML page.
VARY = "Accept-Encoding, Sec-Fetch-Dest"


def is_navigation(environ: Mapping[str, Any]) -> bool:
    """A browser's top-level navigation (RFC-less but universal: Fetch Metadata). Feed readers send no
    Sec-Fetch-Dest, and web readers fetching from a page send `empty`: both get the feed's bytes."""
    return environ.get("HTTP_SEC_FETCH_DEST") == "document"


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


class Representation:
    """One encoding of a feed: its body, its ETag and the header lists of a 304 and of a 200, made once."""

    __slots__ = ("body", "etag", "not_modified", "ok")

    def __init__(self, feed: RenderedFeed, *, gzipped: bool, max_age: int, links: str | None) -> None:
        self.body, self.etag = (feed.gzip_body, feed.gzip_etag) if gzipped else (feed.body, feed.etag)
        # A 304 carries what a cache updates its copy with (RFC 9110 15.4.5), no more: the header list is
        # most of what a poll costs the server. The rest stays with the stored 200.
        self.not_modified: Headers = [
            ("ETag", self.etag),
            ("Last-Modified", http_date(feed.last_modified)),
            ("Cache-Control", f"max-age={max_age}"),  # `public` adds nothing without Authorization (RFC 9111 3.5)
            ("Vary", VARY),
        ]
        if links:
            self.not_modified.append(("Link", links))
        self.ok: Headers = [
            *self.not_modified, ("Content-Type", f"{feed.format.media_type}; charset=utf-8"),
            ("Content-Length", str(len(self.body))), ("X-Content-Type-Options", "nosniff"),
            # Web-based readers fetch feeds from their own origin; they need the validators too.
            ("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", "ETag, Link"),
            ("X-Robots-Tag", "noindex"),  # the posts' pages are what search engines should list
        ]
        if gzipped:
            self.ok.append(("Content-Encoding", "gzip"))


class PreparedFeed:
    """A feed with both representations' headers made once, so a poll only picks one (the fast path keeps
    one per served feed for as long as the snapshot holds that feed)."""

    __slots__ = ("feed", "gzip", "identity", "last_modified")

    def __init__(self, feed: RenderedFeed, *, max_age: int, links: str | None = None) -> None:
        self.feed, self.last_modified = feed, feed.last_modified
        self.identity = Representation(feed, gzipped=False, max_age=max_age, links=links)
        self.gzip = Representation(feed, gzipped=True, max_age=max_age, links=links)

    def respond(self, *, accept_encoding: str | None, if_none_match: str | None, if_modified_since: str | None,
                head: bool = False) -> tuple[int, Headers, bytes]:
        """The gzip or identity body (each with its own ETag), or 304 with the same validators and no body.

        The header lists are shared between requests: callers must not change them."""
        chosen = self.gzip if accepts_gzip(accept_encoding) else self.identity
        if (if_none_match or if_modified_since) and is_not_modified(
                chosen.etag, self.last_modified, if_none_match=if_none_match, if_modified_since=if_modified_since):
            return 304, chosen.not_modified, b""
        return 200, chosen.ok, b"" if head else chosen.body
