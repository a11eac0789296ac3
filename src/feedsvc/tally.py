"""Counters that request threads add to without a lock: each thread adds to its own rows, a reader sums them.

A feed poll's Python is so short that what it costs is mostly two request threads handing the
interpreter lock to each other; a counter lock per poll (prometheus_client's, PollWatch's)
lengthened the hold and made the handoffs more frequent (bench/vs_nginx.py). A thread's rows
are read by summing, so a count is never lost, and outlive the thread (granian ends idle ones).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class _Owner:
    """Lives in one thread's local storage only, so it is collected when that thread ends."""

    __slots__ = ("__weakref__",)


class PairTally(Generic[K]):
    """Pairs of counts by key (a request count and its bytes, polls and conditional polls)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()  # for joining, leaving and reading; never taken by `add`
        self._live: dict[int, dict[K, list[int]]] = {}  # one thread's rows by the id of that thread's _Owner
        self._ended: dict[K, tuple[int, int]] = {}  # the sums of ended threads; tuples, replaced whole

    def add(self, key: K, first: int, second: int) -> None:
        """Add to this thread's row for `key`; no other thread ever writes it."""
        try:
            rows: dict[K, list[int]] = self._local.rows
        except AttributeError:
            rows = self._join()
        row = rows.get(key)
        if row is None:
            row = rows[key] = [0, 0]
        row[0] += first
        row[1] += second

    def totals(self) -> dict[K, tuple[int, int]]:
        """Every key's sums over all threads, the ended ones included."""
        with self._lock:
            # dict.copy() runs without giving up the interpreter lock: a writer's new key is in it or not.
            found = dict(self._ended)
            every = [rows.copy() for rows in self._live.values()]
        for rows in every:
            _fold(rows, into=found)
        return found

    def _join(self) -> dict[K, list[int]]:
        rows: dict[K, list[int]] = {}
        owner = self._local.owner = _Owner()
        self._local.rows = rows
        with self._lock:
            self._live[id(owner)] = rows
        weakref.finalize(owner, self._leave, id(owner))
        return rows

    def _leave(self, owner_id: int) -> None:
        with self._lock:
            _fold(self._live.pop(owner_id), into=self._ended)


def _fold(rows: dict[K, list[int]], *, into: dict[K, tuple[int, int]]) -> None:
    for key, (first, second) in rows.items():
        before = into.get(key, (0, 0))
        into[key] = (before[0] + first, before[1] + second)
