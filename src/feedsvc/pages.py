"""Feed documents made on request (pages, `?limit=` variants, tag and author feeds), cached by what they hold.

Anyone can ask for any page, so what they can cost is bounded: the cache counts bytes, not
documents, and one render runs at a time. A request that would have to wait for another
render is told to come back (`Busy`, a 503 with Retry-After) instead of holding a request
thread, so a client walking random cursors cannot slow the feeds everyone else reads, which
are made in the rebuild and served from memory.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Hashable

from feedsvc.lru import SizedLRU
from feedsvc.model import RenderedFeed

Key = Hashable  # what names a document: its address and its channel's stamp (the stamp moves with any change)
MAX_BYTES = 12 * 1024 * 1024  # both encodings of every cached document: a few of the largest pages
RETRY_AFTER = 1  # seconds: about what one render of the largest page takes


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()


class Busy(Exception):
    """Another document is being made (or the posts are still being read); ask again after `retry_after` seconds."""

    def __init__(self, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(f"busy; retry after {retry_after} s")
        self.retry_after = retry_after


class PageCache:
    def __init__(self, *, max_bytes: int = MAX_BYTES) -> None:
        self._cache: SizedLRU[Key, RenderedFeed] = SizedLRU(max_bytes, _cost)
        self._counting = threading.Lock()  # guards the counters
        self._rendering = threading.Lock()  # held while a document is made
        self.renders = 0  # for /metrics: documents made on request,
        self.refused = 0  # and requests told to come back

    def get(self, key: Key, make: Callable[[], RenderedFeed]) -> RenderedFeed:
        """The document named `key`, made now if it is not cached; raises Busy rather than wait.

        The key is cheap to hash on purpose: a refusal must cost far less than a render.
        """
        if (found := self._cache.get(key)) is not None:
            return found
        if not self._rendering.acquire(blocking=False):
            with self._counting:
                self.refused += 1
            raise Busy()
        try:
            feed = make()
        finally:
            _give_back_memory()
            self._rendering.release()
        with self._counting:
            self.renders += 1
        self._cache.put(key, feed)
        return feed


def _give_back_memory() -> None:
    """Return the heap a render freed to the system: the lxml tree of a 500-entry page is tens of
    megabytes, which glibc would otherwise keep for good, so memory would stay at its highest."""
    if _TRIM is not None:
        _TRIM(0)


def _cost(feed: RenderedFeed) -> int:
    return len(feed.body) + len(feed.gzip_body)
