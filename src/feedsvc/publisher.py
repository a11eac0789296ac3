"""The one current Snapshot: rebuilds run one at a time and swap the next one in whole.

What a rebuild makes is `build.build_snapshot`'s job; this class reads the folder (scan) and the
clock, holds the lock, swaps, tells the WebSub notifier what changed (after the swap), and hands
out documents: the prebuilt ones from the snapshot, the others from `pages`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

from feedsvc.bodies import Bodies
from feedsvc.build import (
    Built,
    bodies_for,
    build_snapshot,
    changed_feeds,
    feed_rules,
    hidden_paths,
    page_of,
    within_budget,
)
from feedsvc.catalog import CatalogIndex
from feedsvc.config import Settings
from feedsvc.model import Channel, FeedFormat, Page, RenderedFeed, Snapshot
from feedsvc.pages import Busy, PageCache
from feedsvc.paging import parse_cursor
from feedsvc.parsecache import ParseCache
from feedsvc.render import render_feed
from feedsvc.scan import ContentFolder, ScanResult
from feedsvc.stamps import Stamp, whole_seconds
from feedsvc.urls import feed_info
from feedsvc.walk import Listing

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
WARMING_RETRY_AFTER = 5  # seconds: a restart reads a million posts in about 20
# Bytes of cache (some 50,000 posts) from which a restart lists the folder while the cache loads, and
# with FEEDSVC_RESUME=auto serves the saved feeds first: reading the cache takes seconds from there.
LIST_AHEAD_FROM = 32 << 20
OnChange = Callable[[list[str]], None]  # the self URLs of feeds whose bytes changed


def utc_now() -> datetime:
    return datetime.now(UTC)


class Publisher:
    """Owns the current Snapshot; readers take `publisher.snapshot`, rebuilds replace it whole."""

    def __init__(self, settings: Settings, *, clock: Clock = utc_now, on_change: OnChange | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.on_change = on_change
        self.cache = ParseCache(settings)
        self.folder = ContentFolder(settings)
        self.bodies = Bodies(self.folder.read)
        self.pages = PageCache()
        self.snapshot = Snapshot()
        # Serving the feeds the last run saved (resume) while the first build, in the background, reads
        # the cache and the folder: documents that need the posts answer 503 until it is done.
        self.warming = False
        self.next_due: datetime | None = None  # when a future post goes live or a changing file settles
        self.builds = (0, 0.0)  # rebuilds run and seconds spent, for /metrics
        self._lock = threading.Lock()  # one rebuild at a time
        self._index = CatalogIndex(feeds=feed_rules(settings))
        self._hidden = hidden_paths(settings)
        self._built = Built()
        self._loaded = False  # the cache is read by the first rebuild (see _load_cache)
        self._floors: dict[str, datetime] = {}  # path -> a time the next stamp must be after (see date_after)
        self._republish = False  # channels were remembered since the last publish (see remember)
        self._dirty = False  # changed since the cache was written
        # Channels whose cached stamps the first build may take as made for the posts it finds, if
        # the scan finds every file as cached before `_trusted_until` (see parsecache.CachedState).
        self._trusted: frozenset[str] = frozenset()
        self._trusted_until: datetime | None = None

    def resume(self) -> bool:
        """Serve the feeds the last run saved, if it saved them with these settings, until the first
        rebuild is done: a restart over a million posts answers its readers at once, not in 20 s.

        Everything that needs the posts (pages, tag and author feeds, post pages) answers 503 with
        Retry-After meanwhile; a change made while the service was stopped shows after that rebuild.
        FEEDSVC_RESUME says when: `auto` only for a cache big enough that reading it takes seconds.
        """
        wanted = self.settings.resume
        if wanted == "off" or (wanted == "auto" and self.cache.stored_bytes() < LIST_AHEAD_FROM):
            return False
        # The folder is not listed yet: a listing begun before the folder is watched would miss what
        # changes until then (the first rebuild lists it, after the watch has begun).
        front = self.cache.load_front()
        if front is None:
            return False
        self.snapshot, self.warming = front, True
        logger.info("serving the %d feeds saved %s while the posts are read", len(front.feeds),
                    front.built_at.isoformat() if front.built_at else "earlier")
        return True

    def check_posts_read(self) -> None:
        """Raise pages.Busy while a resumed restart still reads the posts (see resume): what needs
        them is not missing then, only not there yet."""
        if self.warming:
            raise Busy(WARMING_RETRY_AFTER)

    def _load_cache(self) -> None:
        """Take in what the last run saved, before the first scan (in rebuild, under the lock)."""
        self._loaded = True
        if self.cache.stored_bytes() >= LIST_AHEAD_FROM:
            self.folder.list_ahead()  # on the other core while the cache loads: the two take as long
        cached = self.cache.load()  # inside the rebuild's pause of the collector: a million posts, no cycles
        self.folder.seed(cached.files, digest=cached.listing)
        self.folder.id_changes = dict(cached.id_changes)
        self.bodies.keep(cached.bodies)
        self._built = Built(stamps={path: Stamp(posts=None, at=at, made_for=made_for, bound=bound)
                                    for path, (made_for, at, bound) in cached.stamps.items()}, prebuilt=cached.feeds,
                            deleted=cached.deleted)
        self._trusted, self._trusted_until = cached.exact, cached.next_due

    def rebuild(self, paths: Iterable[str] | None = None) -> Snapshot:
        """Scan (everything, or just `paths` from file events), build, swap in the new Snapshot."""
        with self._lock, _collector_paused(collect=paths is None and self.builds[0] > 0):
            started = time.perf_counter()
            if not self._loaded:
                self._load_cache()
            now = self.clock()
            scan = self.folder.scan(paths)
            # Every change goes into the index, published now or not, so it never misses one.
            catalog = self._index.update(posts=scan.posts, left=scan.left, came=scan.came, now=now,
                                         keep=self._built.stamps.keys(), hidden=self._hidden)
            trusted, self._trusted = self._trusted, frozenset()  # for the first build only
            if not scan.as_cached or (self._trusted_until is not None and now >= self._trusted_until):
                trusted = frozenset()
            old = self.snapshot
            if self.warming:  # the saved feeds were served meanwhile; this build has everything
                old = Snapshot()
            if self._nothing_to_publish(old, scan, now):  # e.g. the periodic rescan, or a file not settled yet
                snapshot = old
            else:
                try:
                    snapshot, self._built = build_snapshot(scan, self._built, settings=self.settings, now=now,
                                                           html=self.bodies.html, removed_at=self.folder.changed_near,
                                                           floors=self._floors, catalog=catalog,
                                                           excerpt=self.bodies.excerpt, trusted=trusted)
                except BaseException:
                    self._index = CatalogIndex(feeds=feed_rules(self.settings))  # starts again, in step
                    raise
                self._floors, self._republish = {}, False
            served, self.warming = self.snapshot, False
            self.snapshot = snapshot = dataclasses.replace(snapshot, built_at=now,
                                                           build_seconds=time.perf_counter() - started)
            self.builds = (self.builds[0] + 1, self.builds[1] + snapshot.build_seconds)
            retry = now + timedelta(seconds=self.settings.settle) if scan.unsettled else None
            self.next_due = min(filter(None, (self._built.next_due, retry)), default=None)
            self._log(old, snapshot, changed=scan.changed)
            self._dirty |= bool(scan.changed)  # a restart that read everything from the cache has nothing to write
        if (tell := self.on_change) is not None and served.built_at is not None and (
                urls := changed_feeds(self.settings, served, snapshot)):
            _tell(tell, urls)
        return snapshot

    def begin_rescan(self) -> Future[Listing] | None:
        """Begin the next full rescan's listing now, for a big folder (see ContentFolder.list_ahead):
        the schedule waits for it without holding up the rebuilds that file events ask for."""
        with self._lock:
            return self.folder.list_ahead() if self._loaded and self.folder.big else None

    def remember(self, channels: Mapping[str, datetime]) -> Snapshot:
        """Publish again with these channels kept answering, dated as given while they stay empty.

        For `build` without the last run's stamps (no cache): the feed files an earlier run wrote
        name channels readers may be subscribed to, and their mtimes say when they were last dated.
        Channels already known, renamed or retired, or not channel paths are left alone.
        """
        with self._lock:
            hidden, stamps = self._hidden, self._built.stamps
            fresh = {path: Stamp(posts=(), at=whole_seconds(at)) for path, at in channels.items()
                     if Channel.at(path) is not None and path not in stamps and path not in hidden}
            self._built = dataclasses.replace(self._built, stamps={**stamps, **fresh})
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
        due = self._built.next_due
        return (old.built_at is not None and not scan.changed and not self._floors and not self._republish
                and scan.problems == old.problems and scan.warnings == old.warnings
                and scan.folder_ok == (old.status == "ok") and (due is None or due > now))

    @property
    def unsaved(self) -> bool:
        """Whether the cache is behind: something changed since it was last written."""
        return self._dirty

    def persist(self) -> None:
        """Write parsed posts, rendered feeds and stamps to the cache, if anything changed since the last time."""
        with self._lock:  # a consistent copy; the slow part, writing, happens outside
            if not self._dirty:
                return
            files, built, id_changes = self.folder.state(), self._built, dict(self.folder.id_changes)
            listing = self.folder.digest
            front = self.snapshot
            self._dirty = False
        # Broken files' last good posts: their bodies are gone from disk, so keep their renderings.
        kept = self.bodies.kept_for(post for _, post, problem in files.values()
                                    if post is not None and problem is not None)
        self.cache.save_state(files=files, feeds=built.prebuilt, stamps=built.stamps, bodies=kept,
                              id_changes=id_changes, deleted=dict(built.deleted), next_due=built.next_due,
                              front=front, listing=listing, give_way=self._after_rebuild)

    def _after_rebuild(self) -> None:
        """Wait while a rebuild runs: the cache write gives way, so a change shows as soon during a write.

        At a million posts a write takes 20 s, and a rebuild beside it took half as long again.
        """
        with self._lock:
            pass

    def page(self, path: str, fmt: FeedFormat, *, before: str | None = None, limit: int | None = None,
             snapshot: Snapshot | None = None) -> RenderedFeed | None:
        """The feed document at /feeds/<path>.<fmt>?before=&limit=, or None if there is none.

        Raises pages.Busy when it would have to wait for another request's render.
        """
        snapshot = snapshot or self.snapshot
        if before is None and limit is None and (feed := snapshot.feeds.get(f"{path}.{fmt.value}")):
            return feed
        self.check_posts_read()
        listing = snapshot.listings.get(path)
        if listing is None or (before is not None and parse_cursor(before) is None):
            return None
        stamp = snapshot.stamps[path]

        def make() -> RenderedFeed:
            page = page_of(self.settings, listing, fmt, before=before, limit=limit,
                           deleted=snapshot.deleted.get(path, ()))
            assert page is not None  # the cursor is well-formed
            info = feed_info(self.settings, listing.channel)

            def bodies(pages: list[Page]) -> dict[str, str]:
                return bodies_for(info.content, pages, html=self.bodies.html, excerpt=self.bodies.excerpt)

            feed = render_feed(info, page, fmt, bodies=bodies([page]), updated=stamp)
            return within_budget(self.settings, listing, info, fmt, stamp, feed, page=page, bodies=bodies,
                                 before=before, limit=limit)

        return self.pages.get((path, fmt, before, limit, stamp), make)

    def _log(self, old: Snapshot, new: Snapshot, *, changed: int) -> None:
        for problem in sorted(set(new.problems) - set(old.problems), key=str):
            logger.warning("problem in %s", problem)
        for warning in sorted(set(new.warnings) - set(old.warnings), key=str):
            logger.warning("%s", warning)
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
def _collector_paused(*, collect: bool = True) -> Iterator[None]:
    """A rebuild makes and drops 100,000s of objects, none in cycles: the cyclic collector only slows it.

    After it, what survived is frozen (gc.freeze): posts live until a change, and a full collection
    over a million of them stalls every request for seconds; frozen, collections look only at what
    is younger. A full rescan collects first, so no garbage is frozen for good, but for a process's
    first build: what it made is what the process keeps (at a restart with a million posts, a
    collection found 5 unreachable objects among 3 million, in 3.5 s that every request waited for).
    A file event's rebuild freezes without collecting: going through its new million-entry tuples
    took 0.3 s, a pause every change waited for, and such a rebuild leaves no cycles to collect
    (measured: none unreachable after each of them).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
            if collect:
                gc.collect()
            gc.freeze()
