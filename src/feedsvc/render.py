"""(page, format, time) -> feed bytes, gzipped once, with ETags and Last-Modified. The only user of feedgen.

Pure: no clock, no I/O. A feed's `updated` (and RSS `lastBuildDate`) is the time it is given,
its channel's stamp (see stamps), and also its Last-Modified: never feedgen's now(), so the
same posts always give the same bytes (and the same ETag on every replica).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from feedgen.ext.base import BaseExtension
from feedgen.feed import FeedEntry, FeedGenerator

from feedsvc import __version__
from feedsvc.config import Settings
from feedsvc.jsonfeed import render_json_feed
from feedsvc.model import FeedFormat, Page, Post, RenderedFeed
from feedsvc.urls import feed_title, feed_url

logger = logging.getLogger(__name__)
ATOM_NS = "http://www.w3.org/2005/Atom"
# feedgen's RSS dates switch the process locale while formatting; one render at a time.
_FEEDGEN = threading.Lock()

Html = Callable[[Post], str]


def render_feed(settings: Settings, page: Page, fmt: FeedFormat, *, html: Html, updated: datetime) -> RenderedFeed:
    """Serialise one feed page dated `updated`; `html` turns a post into sanitised HTML with absolute URLs."""
    body = _serialise(settings, page, fmt, updated, html)
    return _finish(page, fmt, updated, body, gzip_bytes(body))


def render_feeds(settings: Settings, jobs: Sequence[tuple[Page, FeedFormat, datetime]], *,
                 html: Html) -> list[RenderedFeed]:
    """Many feeds: serialised in turn, then compressed on every core (zlib lets go of the GIL)."""
    bodies = [_serialise(settings, page, fmt, updated, html) for page, fmt, updated in jobs]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        zipped = list(pool.map(gzip_bytes, bodies))
    return [_finish(page, fmt, updated, body, gz)
            for (page, fmt, updated), body, gz in zip(jobs, bodies, zipped, strict=True)]


def _serialise(settings: Settings, page: Page, fmt: FeedFormat, updated: datetime, html: Html) -> bytes:
    if fmt is FeedFormat.JSON:
        return render_json_feed(settings, page, html=html)
    with _FEEDGEN:
        return _render_xml(settings, page, fmt, updated, html)


def gzip_bytes(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=6, mtime=0)  # mtime=0: the same bytes every time


def _finish(page: Page, fmt: FeedFormat, updated: datetime, body: bytes, gzip_body: bytes) -> RenderedFeed:
    digest = hashlib.sha256(body).hexdigest()[:32]
    return RenderedFeed(
        channel=page.channel,
        format=fmt,
        body=body,
        etag=f'"{digest}"',
        gzip_body=gzip_body,
        gzip_etag=f'"{digest}-gzip"',
        last_modified=updated,
    )


def _render_xml(settings: Settings, page: Page, fmt: FeedFormat, updated: datetime, html: Html) -> bytes:
    fg = _feed(settings, page, fmt, updated)
    for post in page.posts:
        entry = fg.add_entry(order="append")  # feedgen prepends by default
        try:
            _add_entry(entry, post, html(post), fmt)
        except Exception:  # one post a check missed costs its entry, never the feed
            logger.exception("%s: left out of %s: it cannot be written as an entry", post.source, page.links.self)
            fg.remove_entry(entry)
    try:
        return _xml_bytes(fg, fmt)
    except (ValueError, TypeError):  # lxml refused a value; only now, on writing, do we learn of it
        for entry in [e for e in fg.entry() if not _writable(e, fmt)]:
            logger.exception("%s: left out of %s: lxml cannot write it", entry.id(), page.links.self)
            fg.remove_entry(entry)
        return _xml_bytes(fg, fmt)


def _xml_bytes(fg: FeedGenerator, fmt: FeedFormat) -> bytes:
    return bytes(fg.atom_str(pretty=False) if fmt is FeedFormat.ATOM else fg.rss_str(pretty=False))


def _writable(entry: FeedEntry, fmt: FeedFormat) -> bool:
    try:
        entry.atom_entry() if fmt is FeedFormat.ATOM else entry.rss_entry()
    except (ValueError, TypeError):
        return False
    return True


def related_links(page: Page) -> list[tuple[str, str]]:
    """(rel, href) for hubs and RFC 5005 neighbours; `self` is added separately."""
    links = [("hub", hub) for hub in page.hubs]
    for rel in ("first", "next", "previous", "last"):
        if href := getattr(page.links, rel):
            links.append((rel, href))
    return links


class _RssAtomLinks(BaseExtension):  # type: ignore[misc]
    """feedgen writes only rel="self" into RSS; hub and paging links go in as atom:link too."""

    def __init__(self) -> None:
        self.links: list[tuple[str, str]] = []

    def extend_ns(self) -> dict[str, str]:
        return {"atom": ATOM_NS}

    def extend_rss(self, rss: Any) -> Any:
        channel = rss.find("channel")
        for rel, href in self.links:
            channel.append(channel.makeelement(f"{{{ATOM_NS}}}link", {"rel": rel, "href": href}))
        return rss


def _feed(settings: Settings, page: Page, fmt: FeedFormat, updated: datetime) -> FeedGenerator:
    fg = FeedGenerator()
    fg.load_extension("media")
    fg.load_extension("dc")
    fg.id(feed_url(settings, page.channel, fmt))  # every page of a feed is the same feed
    fg.title(feed_title(settings, page.channel))
    fg.subtitle(settings.site_description)  # also the RSS <description>, which RSS requires
    fg.author({"name": settings.author})  # an Atom feed with no author anywhere is invalid
    fg.language(settings.language)
    fg.generator("feedsvc", version=__version__)
    fg.link(href=page.links.self, rel="self", type=fmt.media_type)
    if fmt is FeedFormat.ATOM:
        for rel, href in related_links(page):
            fg.link(href=href, rel=rel)
    else:
        fg.register_extension("atomlinks", _RssAtomLinks, None, atom=False, rss=True)
        fg.atomlinks.links = related_links(page)
    fg.link(href=settings.site_url, rel="alternate")  # last: it becomes the RSS channel <link>
    fg.updated(updated)
    fg.lastBuildDate(updated)  # feedgen would stamp now()
    return fg


def _add_entry(entry: FeedEntry, post: Post, content: str, fmt: FeedFormat) -> None:
    entry.id(post.id)
    entry.guid(post.id, permalink=post.id == post.url)
    entry.title(post.title)
    entry.link(href=post.url, rel="alternate")
    entry.published(post.date)
    entry.updated(post.updated)
    if post.summary:
        entry.summary(post.summary)
    if content:
        entry.content(content, type="html")  # without type="html" readers show the markup
    for author in post.authors:
        # One author element per format: Atom <author>, RSS <dc:creator> (RSS <author> must be an
        # e-mail address, and both together make readers such as feedparser list the author twice).
        if fmt is FeedFormat.ATOM:
            entry.author({k: v for k, v in (("name", author.name), ("email", author.email), ("uri", author.uri)) if v})
        else:
            entry.dc.dc_creator(author.name, replace=False)
    for term in dict.fromkeys(t.name for t in post.categories + post.tags):
        entry.category(term=term)
    if post.image:
        # The image itself is in the content (every reader shows that); the thumbnail is for list views.
        # Outside a media:group: feedgen's default group of one is a W3C validator error.
        entry.media.thumbnail({"url": post.image}, group=None)
