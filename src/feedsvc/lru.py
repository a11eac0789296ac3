"""A least-recently-used cache bounded by what its values weigh (bytes), safe to share between threads.

Anyone can make the service render any page or body, so its caches are bounded by size, not by
count: a count of 64 was up to 64 four-megabyte pages.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SizedLRU(Generic[K, V]):
    def __init__(self, max_size: int, size: Callable[[V], int]) -> None:
        self._max_size, self._size_of = max_size, size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            if (found := self._items.get(key)) is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> None:
        """Keep `value`, dropping the least recently used until the rest fit (the newest always stays)."""
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._size += self._size_of(value)
            while self._size > self._max_size and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._size -= self._size_of(dropped)
