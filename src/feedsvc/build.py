"""(the last build, a scan, the time) -> the next Snapshot: choose what to publish, date it, render it.

No locks, threads or clock of its own: the Publisher serialises builds, reads the clock and
swaps the result in. Reading bodies and the folder's times are the two ways it touches the
world, and both come in as functions.

A channel that has served entries is never dropped: while it has no posts it is published as an
empty feed (readers unsubscribe from a URL after a few 404s). The record of such channels is the
stamps, which the cache keeps across restarts. Channels renamed or retired in the configuration
are not published at all; the web layer answers their URLs with 301 or 410.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from feedsvc.catalog import Catalog, FeedRule, build_catalog, channels_of, sort_key
from feedsvc.config import CONTENT_POLICIES, Settings
from feedsvc.model import (
    EPOCH,
    ChannelKind,
    ChannelSummary,
    FeedFormat,
    FeedInfo,
    Listing,
    Page,
    Post,
    RenderedFeed,
    Snapshot,
)
from feedsvc.opml import render_opml
from feedsvc.paging import paginate
from feedsvc.render import Job, gzip_bytes, render_feed, render_feeds
from feedsvc.scan import ScanResult
from feedsvc.stamps import Stamp, fingerprints, restamp, whole_seconds
from feedsvc.urls import feed_info, feed_url

logger = logging.getLogger(__name__)
Html = Callable[[Post], str]  # a post's body as HTML (bodies.Bodies.html)
RemovedAt = Callable[[str], datetime]  # when a deleted post's file left (scan.ContentFolder.changed_near)
Prebuilt = Mapping[tuple[Page, FeedFormat, datetime], RenderedFeed]
Tombstones = tuple[tuple[str, datetime], ...]  # (entry id, when deleted), newest first


@dataclass(frozen=True, slots=True, kw_only=True)
class Built:
    """What one build leaves the next: each channel's stamp, and the documents it rendered."""

    stamps: Mapping[str, Stamp] = field(default_factory=dict)  # channel path -> when its documents last changed
    prebuilt: Prebuilt = field(default_factory=dict)
    next_due: datetime | None = None  # when the earliest future-dated post goes live
    deleted: Mapping[str, Tombstones] = field(default_factory=dict)  # channel path -> its posts deleted lately


@functools.lru_cache(maxsize=8)  # the same settings for every build of a run: each filter is parsed once
def feed_rules(settings: Settings) -> tuple[FeedRule, ...]:
    """The configured feeds (and `featured`) as the catalog applies them."""
    return tuple(FeedRule(spec.slug, spec.rule(), always=spec in settings.feeds, title=spec.title)
                 for spec in settings.feed_specs)


def hidden_paths(settings: Settings) -> frozenset[str]:
    """Channels renamed or retired in the configuration: never published (their URLs answer 301 or 410)."""
    return frozenset(settings.retired) | {old for old, _ in settings.redirects}


def build_snapshot(scan: ScanResult, previous: Built, *, settings: Settings, now: datetime, html: Html,
                   removed_at: RemovedAt, floors: Mapping[str, datetime] | None = None,
                   catalog: Catalog | None = None, excerpt: Html | None = None,
                   trusted: Collection[str] = ()) -> tuple[Snapshot, Built]:
    """The Snapshot for `scan` at `now`, and what the next build needs of this one.

    `floors`: channel path -> a time its stamp must be after (see Publisher.date_after).
    `catalog`: the scan's posts as catalog.CatalogIndex keeps them (made here when not given).
    `excerpt`: a post's body up to <!--more--> (bodies.Bodies.excerpt), for feeds whose content policy says so.
    `trusted`: channels whose cached stamp (made_for) is known to be for the posts they hold now
    (a restart that found every file as cached): taken as it is, without a fingerprint of their posts.
    """
    if catalog is None:
        catalog = build_catalog(scan.posts, now=now, keep=previous.stamps.keys(), hidden=hidden_paths(settings),
                                feeds=feed_rules(settings))
    removed_at = functools.cache(removed_at)  # a deleted post left every channel it was in: looked at once
    deleted = _tombstones(previous.deleted, scan, catalog, settings=settings, now=now, removed_at=removed_at)
    expired = {path: previous.stamps[path].at for path in previous.deleted.keys() - deleted.keys()
               if path in previous.stamps}  # their documents change: dated anew, though their posts did not
    stamps = _restamp(previous.stamps, catalog, scan, now=now, removed_at=removed_at,
                      floors={**expired, **(floors or {})}, trusted=trusted)
    times = {listing.channel.path: stamps[listing.channel.path].at for listing in catalog.listings}
    infos = {listing.channel.path: feed_info(settings, listing.channel) for listing in catalog.listings}
    prebuilt, feeds = _prebuild(catalog, times, infos, previous.prebuilt, settings=settings, html=html,
                                excerpt=excerpt, deleted=deleted)
    snapshot = dataclasses.replace(_snapshot(scan, catalog, times, infos, feeds, settings=settings, now=now),
                                   deleted=deleted)
    ends = [when + timedelta(days=settings.tombstone_days) for stones in deleted.values() for _, when in stones]
    next_due = min(filter(None, (catalog.next_due, *ends)), default=None)
    return snapshot, Built(stamps=stamps, prebuilt=prebuilt, next_due=next_due, deleted=deleted)


_MOST_TOMBSTONES = 100  # per channel


def _tombstones(previous: Mapping[str, Tombstones], scan: ScanResult, catalog: Catalog, *, settings: Settings,
                now: datetime, removed_at: RemovedAt) -> dict[str, Tombstones]:
    """RFC 6721: the entries each channel lost lately (the file deleted, made a draft, or its id changed),
    kept FEEDSVC_TOMBSTONE_DAYS. Known from the change (a first build after a start has none to add)."""
    if not settings.tombstone_days:
        return {}
    cutoff = now - timedelta(days=settings.tombstone_days)
    found = {path: list(stones) for path, stones in previous.items()}
    for post in scan.left or ():
        current = scan.by_source.get(post.source) if scan.by_source is not None else None
        if not post.in_feeds or post.draft or post.date > now or (
                current is not None and not current.draft and current.id == post.id):
            continue  # it was never in a feed, or it still is (an edit)
        when = whole_seconds(min(current.modified if current is not None else removed_at(post.source), now))
        for channel in channels_of(post, feed_rules(settings)):
            found.setdefault(channel.path, []).insert(0, (post.id, when))
    listed = {listing.channel.path: {p.id for p in listing.posts[:settings.max_items]}
              for listing in catalog.listings if listing.channel.path in found}
    kept = {}
    for path, stones in found.items():
        back = listed.get(path, set())  # an entry that is there again is not deleted
        fresh = [(ref, when) for ref, when in dict(reversed(stones)).items() if when > cutoff and ref not in back]
        if fresh:
            kept[path] = tuple(sorted(fresh, key=lambda stone: stone[1], reverse=True)[:_MOST_TOMBSTONES])
    return kept


def page_of(settings: Settings, listing: Listing, fmt: FeedFormat, *, before: str | None = None,
            limit: int | None = None, deleted: Tombstones = ()) -> Page | None:
    """The page of `listing` at /feeds/<path>.<fmt>?before=&limit=; None for a malformed cursor."""
    size = min(limit or settings.max_items, settings.max_limit)
    query_limit = size if limit is not None else None

    def url(cursor: str | None) -> str:
        return feed_url(settings, listing.channel, fmt, before=cursor, limit=query_limit)

    page = paginate(listing.channel, listing.posts, before=before, limit=size, url=url, hubs=settings.websub_hubs)
    if page is not None and deleted and fmt is FeedFormat.ATOM and before is None:
        page = dataclasses.replace(page, deleted=deleted)  # the newest page says what left (RFC 6721)
    return page


def made_bodies(pages: list[Page], html: Html) -> dict[str, str]:
    """The HTML of every post on these pages, made before rendering: the renderer reads nothing.

    A post whose body fails in a way nobody foresaw is left out (its entry is written without content).
    """
    bodies = {}
    for post in {post.source: post for page in pages for post in page.posts}.values():
        try:
            bodies[post.source] = html(post)
        except Exception:
            logger.exception("%s: body left out", post.source)
    return bodies


def _restamp(previous: Mapping[str, Stamp], catalog: Catalog, scan: ScanResult, *, now: datetime,
             removed_at: RemovedAt, floors: Mapping[str, datetime], trusted: Collection[str] = ()
             ) -> dict[str, Stamp]:
    """Date each channel anew whose posts changed (see stamps), one now empty too (its posts left);
    a channel no longer published (renamed or retired) keeps its time."""
    stamps = {path: Stamp(posts=None, at=stamp.at) for path, stamp in previous.items()}
    cached = {li.channel.path: li.posts for li in catalog.listings if li.channel.path not in trusted
              and (stamp := previous.get(li.channel.path)) is not None and stamp.made_for is not None}
    known = fingerprints(cached)  # the first build after a restart: are these the posts the stamp was made for?
    by_source = scan.by_source
    for listing in catalog.listings:
        path = listing.channel.path
        last = previous.get(path)
        if last is not None and last.made_for is not None and (path in trusted or known.get(path) == last.made_for):
            # The same posts, so the same bound (the cache keeps it: a first change after a restart
            # went through each million-post channel it touched, 0.4 s)
            last = Stamp(posts=listing.posts, at=last.at, bound=last.bound)
        left = None
        if last is not None and last.posts is not None and last.posts != listing.posts:
            by_source = by_source if by_source is not None else {p.source: p for p in scan.posts}
            left = _removed_at(last.posts, listing.posts, by_source, removed_at, candidates=scan.left)
        added = None if catalog.added is None else [p for p in catalog.added if _holds(listing.posts, p)]
        stamps[path] = restamp(last, listing.posts, removed_at=left, now=now, after=floors.get(path), added=added)
    return stamps


def _removed_at(before: tuple[Post, ...], after: tuple[Post, ...], by_source: Mapping[str, Post],
                removed_at: RemovedAt, *, candidates: Iterable[Post] | None = None) -> datetime:
    """When posts left a channel: their file's new mtime if it is still a post, else when its folder changed.

    `candidates`: the posts that left the folder's published set since the last build, if known;
    only they can have left a channel, so a channel of a million posts is not gone through.
    """
    if candidates is None:
        staying = {p.source for p in after}
        leaving = [p for p in before if p.source not in staying]
    else:
        leaving = [p for p in candidates if _holds(before, p)
                   and ((now := by_source.get(p.source)) is None or not _holds(after, now))]
    times = [by_source[p.source].modified if p.source in by_source else removed_at(p.source) for p in leaving]
    return max(times, default=EPOCH)


def _holds(posts: tuple[Post, ...], post: Post) -> bool:
    """Whether a channel's posts (newest first, as the catalog sorts them) hold this post. By value: a
    stamp keeps the posts it was made for, which later builds may hold as equal copies (a rename anew)."""
    at = bisect.bisect_left(posts, sort_key(post), key=sort_key)
    return at < len(posts) and posts[at] == post


def bodies_for(policy: str, pages: list[Page], *, html: Html, excerpt: Html | None) -> dict[str, str]:
    """The entries' HTML for feeds of a content policy: none for `summary`, cut at <!--more--> for `excerpt`."""
    if policy == "summary":
        return {}
    return made_bodies(pages, excerpt if policy == "excerpt" and excerpt is not None else html)


def within_budget(settings: Settings, listing: Listing, info: FeedInfo, fmt: FeedFormat, at: datetime,
                  feed: RenderedFeed, *, page: Page, bodies: Callable[[list[Page]], Mapping[str, str]],
                  before: str | None = None, limit: int | None = None) -> RenderedFeed:
    """`feed`, or, over its feed's byte budget, the same page with fewer entries: those that do not fit
    go on to the next page (its `next` link starts after the last one kept), none is cut short."""
    count = len(page.posts)
    while info.max_bytes and len(feed.body) > info.max_bytes and count > 1:
        count = max(1, min(count - 1, count * info.max_bytes // len(feed.body)))
        smaller = paginate(listing.channel, listing.posts, before=before, limit=count, hubs=settings.websub_hubs,
                           url=lambda cursor: feed_url(settings, listing.channel, fmt, before=cursor, limit=limit))
        assert smaller is not None  # the cursor was good for the larger page
        smaller = dataclasses.replace(smaller, deleted=page.deleted)
        feed = render_feed(info, smaller, fmt, bodies=bodies([smaller]), updated=at)
    return feed


def _prebuild(catalog: Catalog, times: Mapping[str, datetime], infos: Mapping[str, FeedInfo], previous: Prebuilt, *,
              settings: Settings, html: Html, excerpt: Html | None,
              deleted: Mapping[str, Tombstones]) -> tuple[Prebuilt, dict[str, RenderedFeed]]:
    """The subscription documents of the kinds made in every rebuild, re-rendering only changed ones."""
    jobs: dict[str, Job] = {}
    for listing in catalog.listings:
        if listing.channel.kind.prebuilt:
            info = infos[listing.channel.path]
            for fmt in FeedFormat:
                page = page_of(settings, listing, fmt, deleted=deleted.get(listing.channel.path, ()))
                assert page is not None  # the first page always exists
                jobs[f"{listing.channel.path}.{fmt.value}"] = (info, page, fmt, times[listing.channel.path])
    keys = {name: (page, fmt, at) for name, (_, page, fmt, at) in jobs.items()}
    missing = [job for name, job in jobs.items() if keys[name] not in previous]
    listings = {listing.channel.path: listing for listing in catalog.listings}
    fresh = {}
    for policy in CONTENT_POLICIES:  # each its own bodies: an excerpt is not the whole post
        if group := [job for job in missing if job[0].content == policy]:
            bodies = bodies_for(policy, [page for _, page, _, _ in group], html=html, excerpt=excerpt)
            for (info, page, fmt, at), feed in zip(group, render_feeds(group, bodies=bodies), strict=True):
                fresh[(page, fmt, at)] = within_budget(
                    settings, listings[info.channel.path], info, fmt, at, feed, page=page,
                    bodies=functools.partial(bodies_for, policy, html=html, excerpt=excerpt))
    prebuilt = {key: previous.get(key) or fresh[key] for key in keys.values()}
    return prebuilt, {name: prebuilt[key] for name, key in keys.items()}


def _snapshot(scan: ScanResult, catalog: Catalog, times: Mapping[str, datetime], infos: Mapping[str, FeedInfo],
              feeds: dict[str, RenderedFeed], *, settings: Settings, now: datetime) -> Snapshot:
    # Served, but not advertised: a feed kept answering while it has no posts is not one to subscribe to.
    advertised = [li for li in catalog.listings if li.posts or li.channel.kind is ChannelKind.ALL]
    opml = render_opml(f"{settings.site_title} feeds", settings.author, (infos[li.channel.path] for li in advertised))
    return Snapshot(
        feeds=feeds,
        listings={listing.channel.path: listing for listing in catalog.listings},
        stamps=times,
        channels=tuple(ChannelSummary(channel=li.channel, info=infos[li.channel.path], post_count=len(li.posts),
                                      updated=times[li.channel.path]) for li in advertised),
        opml=opml,
        opml_gzip=gzip_bytes(opml),
        opml_etag=f'"{hashlib.sha256(opml).hexdigest()[:32]}"',
        posts=catalog.by_slug,
        problems=scan.problems,
        warnings=scan.warnings,
        built_at=now,
        post_count=len(catalog.visible),
        status="ok" if scan.folder_ok else "degraded",
    )


def changed_feeds(settings: Settings, old: Snapshot, new: Snapshot) -> list[str]:
    """Self URLs of every feed whose documents differ between two snapshots (for WebSub, after the swap):
    a new stamp is new bytes (it is in them); a channel gone (renamed or retired) changed to its 301 or 410."""
    changed = [feed_url(settings, old.listings[path].channel, fmt)
               for path in old.listings.keys() - new.listings.keys() for fmt in FeedFormat]
    for path, listing in new.listings.items():
        if old.stamps.get(path) != new.stamps[path]:
            changed += [feed_url(settings, listing.channel, fmt) for fmt in FeedFormat]
    return changed
