"""Who polls the feeds, and how politely: per reader family, how many polls were conditional and the
typical gap between two polls of one feed by one client; and, when the operator asks for it
(FEEDSVC_MIN_POLL_INTERVAL), a `429` for a client fetching the same feed in full more often.

Clients are told apart by address and User-Agent, feeds by path. Memory is bounded: the last
poll of at most `capacity` (client, feed) pairs is kept (the least recent go first), the last
`_GAPS` gaps per family, and User-Agents are sorted into a fixed list of families.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from feedsvc.tally import PairTally

# (substring of the lower-cased User-Agent, family), first match wins; readers before the libraries they use.
FAMILIES = (
    ("feedly", "Feedly"), ("inoreader", "Inoreader"), ("netnewswire", "NetNewsWire"), ("newsboat", "newsboat"),
    ("miniflux", "Miniflux"), ("freshrss", "FreshRSS"), ("feedbin", "Feedbin"), ("tiny tiny rss", "Tiny Tiny RSS"),
    ("newsblur", "NewsBlur"), ("thunderbird", "Thunderbird"), ("nextcloud", "Nextcloud News"),
    ("feedparser", "feedparser"), ("sfeed", "sfeed"), ("python-requests", "python-requests"),
    ("python-urllib", "Python urllib"), ("curl", "curl"), ("wget", "Wget"), ("go-http-client", "Go"),
    ("bot", "other bots"), ("mozilla", "browsers"),
)
_GAPS = 512  # gaps kept per family for the median
_FAMILY_CACHE = 4096


@dataclass(slots=True)
class FamilyStats:
    family: str
    refused: int = 0
    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=_GAPS))


@dataclass(frozen=True, slots=True)
class FamilyReport:
    family: str
    polls: int
    conditional_share: float
    median_gap: float | None  # seconds; None before a client of the family polled a feed twice
    refused: int


def family_of(user_agent: str) -> str:
    lowered = user_agent.lower()
    return next((name for needle, name in FAMILIES if needle in lowered), "other" if user_agent else "none")


class PollWatch:
    def __init__(self, *, min_interval: float = 0.0, capacity: int = 100_000, follow_one_in: int = 8,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self._unfollowed = follow_one_in - 1  # a mask: a power of two
        self._capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._last: OrderedDict[tuple[str, str, str], float] = OrderedDict()  # (address, UA, feed) -> last served
        self._families: dict[str, FamilyStats] = {}
        self._agents: dict[str, FamilyStats] = {}  # the same, by User-Agent (a bounded number of them)
        self._counts: PairTally[str] = PairTally()  # family -> (polls, conditional polls)

    def poll(self, address: str, user_agent: str, feed: str, *, conditional: bool) -> int | None:
        """Count one request for a feed; the seconds to send in Retry-After if it is to be refused (429).

        On every poll of every feed: without a limit, the gaps are followed for one client in eight
        (by a hash of address, User-Agent and feed), which gives the same medians for less work, and
        the other seven are counted without a lock (tally).
        """
        key = (address, user_agent, feed)
        stats = self._agents.get(user_agent)
        if stats is None:
            with self._lock:
                stats = self._family_stats(user_agent)
        if (self.min_interval or not hash(key) & self._unfollowed) and (
                retry := self._follow(key, stats, conditional=conditional)) is not None:
            return retry
        self._counts.add(stats.family, 1, conditional)
        return None

    def _follow(self, key: tuple[str, str, str], stats: FamilyStats, *, conditional: bool) -> int | None:
        """Note the gap since this client's last poll of this feed; Retry-After seconds if it came too soon."""
        with self._lock:
            now = self._clock()
            last = self._last.get(key)
            gap = None if last is None else now - last
            if self.min_interval and not conditional and gap is not None and gap < self.min_interval:
                stats.refused += 1
                return max(1, math.ceil(self.min_interval - gap))
            if gap is not None:
                stats.gaps.append(gap)
            self._last[key] = now
            self._last.move_to_end(key)
            if len(self._last) > self._capacity:
                self._last.popitem(last=False)
        return None

    def _family_stats(self, user_agent: str) -> FamilyStats:
        """The stats of the User-Agent's family, remembered under the User-Agent (a bounded number of them)."""
        family = family_of(user_agent)
        stats = self._families.get(family)
        if stats is None:
            stats = self._families[family] = FamilyStats(family=family)
        if len(self._agents) < _FAMILY_CACHE:
            self._agents[user_agent] = stats
        return stats

    def report(self) -> list[FamilyReport]:
        counts = self._counts.totals()
        with self._lock:
            found = [(stats.family, *counts.get(stats.family, (0, 0)), list(stats.gaps), stats.refused)
                     for stats in self._families.values()]
        return [FamilyReport(family=family, polls=polls, conditional_share=conditional / polls if polls else 0.0,
                             median_gap=statistics.median(gaps) if gaps else None, refused=refused)
                for family, polls, conditional, gaps, refused in sorted(found)]
