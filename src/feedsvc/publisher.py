"""rebuild(): scan the folder, choose what to publish, render, and swap in one new Snapshot."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from feedsvc.catalog import Catalog, build_catalog
from feedsvc.config import Settings
from feedsvc.markup import render_markdown
from feedsvc.model import ChannelSummary, FeedFormat, Post, RenderedFeed, Snapshot
from feedsvc.render import render_feed
from feedsvc.scan import ContentFolder

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_FeedKey = tuple[object, ...]


def utc_now() -> datetime:
    return datetime.now(UTC)


def post_html(post: Post) -> str:
    return render_markdown(post.body)


class Publisher:
    """Owns the current Snapshot; readers take `publisher.snapshot`, rebuilds replace it whole."""

    def __init__(self, settings: Settings, *, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.folder = ContentFolder(settings)
        self.snapshot = Snapshot()
        self.next_due: datetime | None = None  # when a future-dated post goes live
        self._lock = threading.Lock()  # one rebuild at a time; feedgen's RSS dates are not thread-safe
        self._rendered: dict[_FeedKey, RenderedFeed] = {}

    def rebuild(self) -> Snapshot:
        with self._lock:
            started = time.perf_counter()
            now = self.clock()
            scan = self.folder.scan()
            catalog = build_catalog(scan.posts, now=now, max_items=self.settings.max_items)
            snapshot = Snapshot(
                feeds=self._render(catalog),
                channels=tuple(
                    ChannelSummary(channel=listing.channel, post_count=listing.total,
                                   updated=max((p.updated for p in listing.posts), default=None))
                    for listing in catalog.listings
                ),
                posts={p.slug: p for p in catalog.visible},
                problems=tuple(sorted(scan.problems + catalog.problems, key=lambda p: (p.path, p.line or 0))),
                built_at=now,
                build_seconds=time.perf_counter() - started,
                post_count=len(catalog.visible),
                status="ok" if scan.folder_ok else "degraded",
            )
            self._log(snapshot, changed=scan.changed)
            self.next_due = catalog.next_due
            self.snapshot = snapshot
            return snapshot

    def _render(self, catalog: Catalog) -> dict[str, RenderedFeed]:
        """Every feed, re-rendering only those whose posts changed since the last build."""
        feeds, rendered = {}, {}
        for listing in catalog.listings:
            for fmt in FeedFormat:
                key = (listing.channel, fmt, listing.posts)
                feed = self._rendered.get(key) or render_feed(
                    self.settings, listing.channel, listing.posts, fmt, html=post_html)
                rendered[key] = feeds[f"{listing.channel.path}.{fmt.value}"] = feed
        self._rendered = rendered
        return feeds

    def _log(self, snapshot: Snapshot, *, changed: int) -> None:
        for problem in sorted(set(snapshot.problems) - set(self.snapshot.problems), key=str):
            logger.warning("problem in %s", problem)
        if changed or snapshot.post_count != self.snapshot.post_count:
            logger.info("built %d posts into %d feeds in %.3fs (%d files changed, %d problems)",
                        snapshot.post_count, len(snapshot.feeds), snapshot.build_seconds,
                        changed, len(snapshot.problems))
