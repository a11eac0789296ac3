"""(feed, page, format, time, bodies) -> feed bytes, gzipped once, with ETags and Last-Modified.

The only user of feedgen. Pure: no clock, no I/O, no settings; the entries' HTML comes in made
(see bodies), so nothing is read or rendered under feedgen's lock. A feed's `updated` (and RSS
`lastBuildDate`) is the time it is given, its channel's stamp (see stamps), and also its
Last-Modified: never feedgen's now(), so the same posts always give the same bytes (and the
same ETag on every replica).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from feedgen.ext.base import BaseExtension
from feedgen.feed import FeedEntry, FeedGenerator
from zlib_ng import gzip_ng

from feedsvc import __version__
from feedsvc.jsonfeed import render_json_feed
from feedsvc.model import FeedFormat, FeedInfo, Page, Post, RenderedFeed

logger = logging.getLogger(__name__)
ATOM_NS = "http://www.w3.org/2005/Atom"
SY_NS = "http://purl.org/rss/1.0/modules/syndication/"
TOMBSTONES_NS = "http://purl.org/atompub/tombstones/1.0"
# feedgen's RSS dates switch the process locale while formatting; one render at a time.
_FEEDGEN = threading.Lock()

Bodies = Mapping[str, str]  # post source -> its sanitised HTML with absolute URLs (see bodies.Bodies.html)
Job = tuple[FeedInfo, Page, FeedFormat, datetime]  # a feed, one of its pages, a format, the channel's stamp


def render_feed(info: FeedInfo, page: Page, fmt: FeedFormat, *, bodies: Bodies, updated: datetime) -> RenderedFeed:
    """Serialise one feed page dated `updated`."""
    body = _serialise(info, page, fmt, updated, bodies)
    return _finish(page, fmt, updated, body, gzip_bytes(body))


def render_feeds(jobs: Sequence[Job], *, bodies: Bodies) -> list[RenderedFeed]:
    """Many feeds: each compressed on another core (zlib-ng lets go of the GIL) while the next is serialised."""
    serialised, zipping = [], []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for info, page, fmt, updated in jobs:
            serialised.append(body := _serialise(info, page, fmt, updated, bodies))
            zipping.append(pool.submit(gzip_bytes, body))
        zipped = [future.result() for future in zipping]
    return [_finish(page, fmt, updated, body, gz)
            for (_, page, fmt, updated), body, gz in zip(jobs, serialised, zipped, strict=True)]


def _serialise(info: FeedInfo, page: Page, fmt: FeedFormat, updated: datetime, bodies: Bodies) -> bytes:
    if fmt is FeedFormat.JSON:
        return render_json_feed(info, page, bodies=bodies)
    with _FEEDGEN:
        return _render_xml(info, page, fmt, updated, bodies)


def gzip_bytes(body: bytes) -> bytes:
    """gzip at level 6, by zlib-ng: half of zlib's time for as few bytes (a cold build's biggest single cost)."""
    # mtime=0: the same bytes every time
    zipped: bytes = gzip_ng.compress(body, compresslevel=6, mtime=0)  # type: ignore[no-untyped-call]
    return zipped


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


def _render_xml(info: FeedInfo, page: Page, fmt: FeedFormat, updated: datetime, bodies: Bodies) -> bytes:
    fg = _feed(info, page, fmt, updated)
    for post in page.posts:
        entry = fg.add_entry(order="append")  # feedgen prepends by default
        try:
            _add_entry(entry, post, "" if info.content == "summary" else bodies.get(post.source, ""), fmt)
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


class _Tombstones(BaseExtension):  # type: ignore[misc]
    """RFC 6721: `<at:deleted-entry ref="id" when="..."/>` for entries deleted lately."""

    def __init__(self) -> None:
        self.deleted: tuple[tuple[str, datetime], ...] = ()

    def extend_ns(self) -> dict[str, str]:
        return {"at": TOMBSTONES_NS}

    def extend_atom(self, feed: Any) -> Any:
        first = next((i for i, child in enumerate(feed) if child.tag == f"{{{ATOM_NS}}}entry"), len(feed))
        for offset, (ref, when) in enumerate(self.deleted):
            element = feed.makeelement(f"{{{TOMBSTONES_NS}}}deleted-entry", {"ref": ref, "when": when.isoformat()})
            feed.insert(first + offset, element)
        return feed


class _UpdatePeriod(BaseExtension):  # type: ignore[misc]
    """sy:updatePeriod and sy:updateFrequency (RSS 1.0's Syndication module, read by RSS 2.0 readers too).
    feedgen's own extension writes `sy:UpdatePeriod`, which no reader knows."""

    def __init__(self) -> None:
        self.every: tuple[str, int] = ("daily", 1)

    def extend_ns(self) -> dict[str, str]:
        return {"sy": SY_NS}

    def extend_rss(self, rss: Any) -> Any:
        channel = rss.find("channel")
        period, frequency = self.every
        channel.append(channel.makeelement(f"{{{SY_NS}}}updatePeriod", {}))
        channel[-1].text = period
        channel.append(channel.makeelement(f"{{{SY_NS}}}updateFrequency", {}))
        channel[-1].text = str(frequency)
        return rss


def _feed(info: FeedInfo, page: Page, fmt: FeedFormat, updated: datetime) -> FeedGenerator:
    fg = FeedGenerator()
    fg.load_extension("media")
    fg.load_extension("dc")
    fg.id(info.url(fmt))  # every page of a feed is the same feed
    fg.title(info.title)
    fg.subtitle(info.description)  # also the RSS <description>, which RSS requires
    fg.author({"name": info.author})  # an Atom feed with no author anywhere is invalid
    fg.language(info.language)
    fg.generator("feedsvc", version=__version__)
    fg.link(href=page.links.self, rel="self", type=fmt.media_type)
    if fmt is FeedFormat.ATOM:
        for rel, href in related_links(page):
            fg.link(href=href, rel=rel)
        if page.deleted:
            fg.register_extension("tombstones", _Tombstones, None, atom=True, rss=False)
            fg.tombstones.deleted = page.deleted
    else:
        fg.register_extension("atomlinks", _RssAtomLinks, None, atom=False, rss=True)
        fg.atomlinks.links = related_links(page)
    fg.link(href=info.home_url, rel="alternate")  # last: it becomes the RSS channel <link>
    fg.updated(updated)
    fg.lastBuildDate(updated)  # feedgen would stamp now()
    if fmt is FeedFormat.ATOM:
        if info.icon:
            fg.icon(info.icon)
        if info.logo:
            fg.logo(info.logo)
    else:
        if info.logo or info.icon:
            fg.image(url=info.logo or info.icon)  # titled and linked as the channel, as validators want
        if info.max_age:  # how often to poll, as Cache-Control says it: in minutes, and as updates per period
            fg.ttl(max(1, -(-info.max_age // 60)))
            period, seconds = ("hourly", 3600) if info.max_age <= 3600 else ("daily", 86400)
            fg.register_extension("polling", _UpdatePeriod, None, atom=False, rss=True)
            fg.polling.every = (period, max(1, seconds // info.max_age))
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
