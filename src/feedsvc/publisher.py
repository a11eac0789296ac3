"""rebuild(): scan the folder, choose what to publish, render, and swap in one new Snapshot.

Also hands out feed pages: the subscription documents of all posts and of each category are
rendered in the rebuild; pages, `?limit=` variants and tag or author feeds on first request,
then kept in a small cache keyed by what they contain.

A channel that has served entries is never dropped: while it has no posts it is published as an
empty feed (readers unsubscribe from a URL after a few 404s). The record of such channels is the
stamps, which the cache keeps across restarts. Channels renamed or retired in the configuration
are not published at all; the web layer answers their URLs with 301 or 410.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta

from feedsvc.bodies import Bodies
from feedsvc.catalog import Catalog, build_catalog
from feedsvc.config import Settings
from feedsvc.model import EPOCH, Channel, ChannelSummary, FeedFormat, Listing, Page, Post, RenderedFeed, Snapshot
from feedsvc.opml import render_opml
from feedsvc.pages import PageCache
from feedsvc.paging import paginate, parse_cursor
from feedsvc.parsecache import CachedState, ParseCache
from feedsvc.render import render_feed, render_feeds
from feedsvc.scan import ContentFolder, ScanResult
from feedsvc.stamps import Stamp, fingerprints, restamp, whole_seconds
from feedsvc.urls import feed_url

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
OnChange = Callable[[list[str]], None]  # the self URLs of feeds whose bytes changed
PREBUILT_KINDS = ("all", "category")  # rendered in every rebuild; the rest on request (see pages)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Publisher:
    """Owns the current Snapshot; readers take `publisher.snapshot`, rebuilds replace it whole."""

    def __init__(self, settings: Settings, *, clock: Clock = utc_now, on_change: OnChange | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.on_change = on_change
        self.cache = ParseCache(settings)
        with _collector_paused():  # 100,000 unpickled posts
            cached = self.cache.load()
        self.folder = ContentFolder(settings, seed=cached.files)
        self.bodies = Bodies(settings)
        self.bodies.keep(cached.bodies)
        self.snapshot = Snapshot()
        self.next_due: datetime | None = None  # when a future post goes live or a changing file settles
        self._lock = threading.Lock()  # one rebuild at a time
        self._prebuilt: dict[tuple[Page, FeedFormat, datetime], RenderedFeed] = cached.feeds
        self._stamps: dict[str, Stamp] = {}  # channel path -> when its documents last changed
        self._cached_stamps = cached.stamps  # path -> (fingerprint, time): the stamps of the last run
        self._floors: dict[str, datetime] = {}  # path -> a time the next stamp must be after (see date_after)
        self._hidden = frozenset(settings.retired) | {old for old, _ in settings.redirects}  # 410 or 301
        self._republish = False  # channels were remembered since the last publish (see remember)
        self._dirty = False  # changed since the cache was written
        self.builds = (0, 0.0)  # rebuilds run and seconds spent, for /metrics
        self._future_due: datetime | None = None  # when the earliest future-dated post goes live
        self.pages = PageCache()

    def rebuild(self, paths: Iterable[str] | None = None) -> Snapshot:
        """Scan (everything, or just `paths` from file events), publish, swap in the new Snapshot."""
        with self._lock, _collector_paused():
            started = time.perf_counter()
            now = self.clock()
            scan = self.folder.scan(paths)
            old = self.snapshot
            if self._nothing_to_publish(old, scan, now):  # e.g. the periodic rescan, or a file not settled yet
                snapshot = dataclasses.replace(old, built_at=now, build_seconds=time.perf_counter() - started)
            else:
                catalog = build_catalog(scan.posts, now=now, keep=self._stamps.keys() | self._cached_stamps.keys(),
                                        hidden=self._hidden)
                self._future_due = catalog.next_due
                self._restamp(catalog, scan, now)
                snapshot = self._publish(scan, catalog, now, started)
                self._republish = False
            self.snapshot = snapshot
            self.builds = (self.builds[0] + 1, self.builds[1] + snapshot.build_seconds)
            retry = now + timedelta(seconds=self.settings.settle) if scan.unsettled else None
            self.next_due = min(filter(None, (self._future_due, retry)), default=None)
            self._log(old, snapshot, changed=scan.changed)
            self._dirty |= bool(scan.changed)  # a restart that read everything from the cache has nothing to write
            if (tell := self.on_change) is not None and old.built_at is not None and (
                    urls := self._changed_feeds(old, snapshot)):
                _tell(tell, urls)
            return snapshot

    def remember(self, channels: Mapping[str, datetime]) -> Snapshot:
        """Publish again with these channels kept answering, dated as given while they stay empty.

        For `build` without the last run's stamps (no cache): the feed files an earlier run wrote
        name channels readers may be subscribed to, and their mtimes say when they were last dated.
        Channels already known, renamed or retired, or not channel paths are left alone.
        """
        with self._lock:
            fresh = {path: at for path, at in channels.items() if Channel.at(path) is not None
                     and path not in self._stamps and path not in self._cached_stamps and path not in self._hidden}
            for path, at in fresh.items():
                self._stamps[path] = Stamp(posts=(), at=whole_seconds(at))
            self._republish |= bool(fresh)
            self._dirty |= bool(fresh)
        return self.rebuild(paths=()) if fresh else self.snapshot

    def date_after(self, floors: dict[str, datetime]) -> Snapshot:
        """Publish again with these channels dated after the given times.

        For `build`, whose earlier files may come from a run whose stamps were not cached: a
        document whose bytes differ from the file there must be dated after that file.
        """
        self._floors = dict(floors)
        return self.rebuild(paths=())

    def _nothing_to_publish(self, old: Snapshot, scan: ScanResult, now: datetime) -> bool:
        return (old.built_at is not None and not scan.changed and not self._floors and not self._republish
                and scan.problems == old.problems
                and scan.folder_ok == (old.status == "ok") and (self._future_due is None or self._future_due > now))

    def _restamp(self, catalog: Catalog, scan: ScanResult, now: datetime) -> None:
        """Date each channel anew whose posts changed (see stamps), one now empty too (its posts left);
        a channel no longer published (renamed or retired) keeps its time."""
        if self._cached_stamps:  # the first build after a restart: stamps as the last run left them
            posts = {li.channel.path: li.posts for li in catalog.listings if li.channel.path in self._cached_stamps}
            known = fingerprints(posts)
            self._stamps |= {path: Stamp(posts=posts[path] if known.get(path) == made_for else None, at=at)
                             for path, (made_for, at) in self._cached_stamps.items()}
            self._cached_stamps = {}
        stamps = {path: Stamp(posts=None, at=stamp.at) for path, stamp in self._stamps.items()}
        by_source: dict[str, Post] | None = None
        for listing in catalog.listings:
            path = listing.channel.path
            previous = self._stamps.get(path)
            removed_at = None
            if previous is not None and previous.posts is not None and previous.posts != listing.posts:
                by_source = by_source if by_source is not None else {p.source: p for p in scan.posts}
                removed_at = self._removed_at(previous.posts, listing.posts, by_source)
            stamps[path] = restamp(previous, listing.posts, removed_at=removed_at, now=now,
                                   after=self._floors.get(path))
        self._stamps, self._floors = stamps, {}

    def _removed_at(self, before: tuple[Post, ...], after: tuple[Post, ...], by_source: dict[str, Post]) -> datetime:
        """When posts left a channel: their file's new mtime if it is still a post, else when its folder changed."""
        staying = {p.source for p in after}
        times = [by_source[p.source].modified if p.source in by_source else self.folder.changed_near(p.source)
                 for p in before if p.source not in staying]
        return max(times, default=EPOCH)

    def _publish(self, scan: ScanResult, catalog: Catalog, now: datetime, started: float) -> Snapshot:
        # Served, but not advertised: a feed kept answering while it has no posts is not one to subscribe to.
        advertised = [listing for listing in catalog.listings if listing.posts or listing.channel.kind == "all"]
        opml = render_opml(self.settings, (listing.channel for listing in advertised))
        stamps = {listing.channel.path: self._stamps[listing.channel.path].at for listing in catalog.listings}
        return Snapshot(
            feeds=self._prebuild(catalog, stamps),
            listings={listing.channel.path: listing for listing in catalog.listings},
            stamps=stamps,
            channels=tuple(ChannelSummary(channel=listing.channel, post_count=len(listing.posts),
                                          updated=stamps[listing.channel.path]) for listing in advertised),
            opml=opml,
            opml_etag=f'"{hashlib.sha256(opml).hexdigest()[:32]}"',
            posts={p.slug: p for p in catalog.visible},
            problems=scan.problems,
            built_at=now,
            build_seconds=time.perf_counter() - started,
            post_count=len(catalog.visible),
            status="ok" if scan.folder_ok else "degraded",
        )

    def persist(self) -> None:
        """Write parsed posts and rendered feeds to the cache, if anything changed since the last time."""
        with self._lock:  # a consistent copy; the slow part, writing, happens outside
            if not self._dirty:
                return
            state = CachedState(files=self.folder.state(), feeds=dict(self._prebuilt))
            # Broken files' last good posts: their bodies are gone from disk, so keep their renderings.
            state.bodies = self.bodies.kept_for(post for _, post, problem in state.files.values()
                                                if post is not None and problem is not None)
            stamps = dict(self._stamps)
            self._dirty = False
        known = fingerprints({path: stamp.posts for path, stamp in stamps.items() if stamp.posts is not None})
        state.stamps = {path: (known.get(path, ""), stamp.at) for path, stamp in stamps.items()}
        self.cache.save(state)

    def page(self, path: str, fmt: FeedFormat, *, before: str | None = None, limit: int | None = None,
             snapshot: Snapshot | None = None) -> RenderedFeed | None:
        """The feed document at /feeds/<path>.<fmt>?before=&limit=, or None if there is none.

        Raises pages.Busy when it would have to wait for another request's render.
        """
        snapshot = snapshot or self.snapshot
        if before is None and limit is None and (feed := snapshot.feeds.get(f"{path}.{fmt.value}")):
            return feed
        listing = snapshot.listings.get(path)
        if listing is None:
            return None
        if before is not None and parse_cursor(before) is None:
            return None
        stamp = snapshot.stamps[path]

        def make() -> RenderedFeed:
            page = self._paginate(listing, fmt, before=before, limit=limit)
            assert page is not None  # the cursor is well-formed
            return self._render_one(page, fmt, stamp)

        return self.pages.get((path, fmt, before, limit, stamp), make)

    def _render_one(self, page: Page, fmt: FeedFormat, updated: datetime) -> RenderedFeed:
        return render_feed(self.settings, page, fmt, html=self.bodies.html, updated=updated)

    def link_header(self, channel: Channel, fmt: FeedFormat) -> str | None:
        """The `Link:` header of a feed: its WebSub hubs and itself, when hubs are configured."""
        hubs = self.settings.websub_hubs
        if not hubs:
            return None
        self_url = feed_url(self.settings, channel, fmt)
        return ", ".join([f'<{hub}>; rel="hub"' for hub in hubs] + [f'<{self_url}>; rel="self"'])

    def _paginate(self, listing: Listing, fmt: FeedFormat, *, before: str | None = None,
                  limit: int | None = None) -> Page | None:
        size = min(limit or self.settings.max_items, self.settings.max_limit)
        query_limit = size if limit is not None else None

        def url(cursor: str | None) -> str:
            return feed_url(self.settings, listing.channel, fmt, before=cursor, limit=query_limit)

        return paginate(listing.channel, listing.posts, before=before, limit=size, url=url,
                        hubs=self.settings.websub_hubs)

    def _prebuild(self, catalog: Catalog, stamps: dict[str, datetime]) -> dict[str, RenderedFeed]:
        """The subscription documents of all posts and each category, re-rendering only changed ones."""
        pages = {}
        for listing in catalog.listings:
            if listing.channel.kind in PREBUILT_KINDS:
                for fmt in FeedFormat:
                    page = self._paginate(listing, fmt)
                    assert page is not None  # the first page always exists
                    pages[f"{listing.channel.path}.{fmt.value}"] = (page, fmt, stamps[listing.channel.path])
        missing = [job for job in pages.values() if job not in self._prebuilt]
        fresh = dict(zip(missing, render_feeds(self.settings, missing, html=self.bodies.html), strict=True))
        self._prebuilt = {job: self._prebuilt.get(job) or fresh[job] for job in pages.values()}
        return {name: self._prebuilt[job] for name, job in pages.items()}

    def _changed_feeds(self, old: Snapshot, new: Snapshot) -> list[str]:
        """Self URLs of every feed whose documents changed: a new stamp is new bytes (it is in them)."""
        changed = [feed_url(self.settings, old.listings[path].channel, fmt)  # renamed or retired: of the 301 or 410
                   for path in old.listings.keys() - new.listings.keys() for fmt in FeedFormat]
        for path, listing in new.listings.items():
            if old.stamps.get(path) != new.stamps[path]:
                changed += [feed_url(self.settings, listing.channel, fmt) for fmt in FeedFormat]
        return changed

    def _log(self, old: Snapshot, new: Snapshot, *, changed: int) -> None:
        for problem in sorted(set(new.problems) - set(old.problems), key=str):
            logger.warning("problem in %s", problem)
        if changed or new.post_count != old.post_count:
            logger.info("built %d posts into %d channels in %.3fs (%d files changed, %d problems)",
                        new.post_count, len(new.listings), new.build_seconds, changed, len(new.problems))


def _tell(on_change: OnChange, urls: list[str]) -> None:
    """The change callback (WebSub), after the swap: its failure is logged here, never taken for the
    rebuild's, which has happened (the schedule would log "serving the previous feeds")."""
    try:
        on_change(urls)
    except Exception:
        logger.exception("telling the hubs of %d changed feeds failed (%s, ...); serving the new feeds",
                         len(urls), urls[0])


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A rebuild makes and drops 100,000s of objects, none in cycles: the cyclic collector only slows it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()

