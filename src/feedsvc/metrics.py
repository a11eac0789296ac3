"""Prometheus metrics at /metrics: what an operator graphs and alerts on. The only user of prometheus_client.

Request counts are kept where requests are answered (the fast path and Flask); everything
about builds, posts, WebSub and cache purges is read from the current snapshot and the notifier at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from feedsvc.model import Snapshot
from feedsvc.polling import PollWatch
from feedsvc.tally import PairTally

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, snapshot: Callable[[], Snapshot], builds: Callable[[], tuple[int, float]],
                 websub: Callable[[], Any | None], *, purger: Callable[[], Any | None] = lambda: None,
                 pages: Callable[[], Any | None] = lambda: None, polls: PollWatch | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._answered: PairTally[tuple[str, int]] = PairTally()  # (route, status) -> (requests, body bytes)
        self.registry.register(_RequestCollector(self._answered))
        self.registry.register(_SnapshotCollector(self, snapshot, builds, websub, purger, pages))
        if polls is not None:
            self.registry.register(_PollCollector(polls))

    def observe(self, route: str, status: int, sent: int) -> None:
        """Count one answered request from any thread, without a lock (see tally): the fast path calls it."""
        self._answered.add((route, status), 1, sent)

    def not_modified_ratio(self) -> float:
        """The share of feed requests answered 304, read from the request counts."""
        feed = {status: count for (route, status), (count, _) in self._answered.totals().items() if route == "feed"}
        answered = sum(feed.values())
        return sum(count for status, count in feed.items() if status == 304) / answered if answered else 0.0

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


class _RequestCollector:
    def __init__(self, answered: PairTally[tuple[str, int]]) -> None:
        self._answered = answered

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily("feedsvc_http_requests", "HTTP requests answered, by route and status.",
                                       labels=["route", "status"])
        sent = CounterMetricFamily("feedsvc_http_response_bytes", "Response body bytes sent, by route.",
                                   labels=["route"])
        by_route: dict[str, int] = {}
        for (route, status), (count, body_bytes) in sorted(self._answered.totals().items()):
            requests.add_metric([route, str(status)], count)
            by_route[route] = by_route.get(route, 0) + body_bytes
        for route, body_bytes in by_route.items():
            sent.add_metric([route], body_bytes)
        yield from (requests, sent)


class _SnapshotCollector:
    def __init__(self, metrics: Metrics, snapshot: Callable[[], Snapshot], builds: Callable[[], tuple[int, float]],
                 websub: Callable[[], Any | None], purger: Callable[[], Any | None],
                 pages: Callable[[], Any | None]) -> None:
        self._metrics, self._snapshot, self._builds, self._websub = metrics, snapshot, builds, websub
        self._purger, self._pages = purger, pages

    def collect(self) -> Iterator[Any]:
        snapshot = self._snapshot()
        count, seconds = self._builds()
        yield CounterMetricFamily("feedsvc_builds", "Rebuilds run since start.", value=count)
        yield CounterMetricFamily("feedsvc_build_seconds", "Time spent rebuilding since start.", value=seconds)
        yield GaugeMetricFamily("feedsvc_last_build_seconds", "Duration of the last rebuild.",
                                value=snapshot.build_seconds)
        yield GaugeMetricFamily("feedsvc_last_build_timestamp_seconds", "When the last rebuild ran (Unix time).",
                                value=snapshot.built_at.timestamp() if snapshot.built_at else 0)
        yield GaugeMetricFamily("feedsvc_posts", "Published posts.", value=snapshot.post_count)
        yield GaugeMetricFamily("feedsvc_problems", "Files that could not be used.", value=len(snapshot.problems))
        yield GaugeMetricFamily("feedsvc_feeds", "Feeds served (channels times formats).",
                                value=snapshot.feed_count)
        yield GaugeMetricFamily("feedsvc_http_not_modified_ratio", "Share of feed requests answered 304.",
                                value=self._metrics.not_modified_ratio())
        if (pages := self._pages()) is not None:  # pages.PageCache: documents made on request
            yield CounterMetricFamily("feedsvc_pages_rendered", "Feed documents made on request (pages, ?limit=, "
                                      "tag and author feeds).", value=pages.renders)
            yield CounterMetricFamily("feedsvc_pages_refused", "Requests answered 503 because another document "
                                      "was being made.", value=pages.refused)
        if (notifier := self._websub()) is not None:
            yield _outcomes("feedsvc_websub_notifications", "WebSub publish requests, by outcome.", notifier)
        if (purger := self._purger()) is not None:
            yield _outcomes("feedsvc_cache_purges", "PURGE and BAN requests to the cache tier, by outcome.", purger)
            yield GaugeMetricFamily("feedsvc_cache_purges_pending", "PURGE and BAN requests waiting to be sent.",
                                    value=purger.pending)


class _PollCollector:
    """Per reader family (polling.family_of): which readers poll politely and which waste bandwidth."""

    def __init__(self, polls: PollWatch) -> None:
        self._polls = polls

    def collect(self) -> Iterator[Any]:
        reports = self._polls.report()
        polls = CounterMetricFamily("feedsvc_feed_polls", "Feed requests, by reader family (from the User-Agent) "
                                    "and whether they were conditional (If-None-Match or If-Modified-Since).",
                                    labels=["family", "conditional"])
        share = GaugeMetricFamily("feedsvc_feed_polls_conditional_ratio", "Share of a reader family's feed "
                                  "requests that were conditional.", labels=["family"])
        gap = GaugeMetricFamily("feedsvc_feed_poll_gap_median_seconds", "Median time between two requests for "
                                "one feed by one client of the family (its last 512 gaps).", labels=["family"])
        refused = CounterMetricFamily("feedsvc_feed_polls_refused", "Full fetches answered 429 for coming sooner "
                                      "than FEEDSVC_MIN_POLL_INTERVAL.", labels=["family"])
        for report in reports:
            conditional = round(report.polls * report.conditional_share)
            polls.add_metric([report.family, "yes"], conditional)
            polls.add_metric([report.family, "no"], report.polls - conditional)
            share.add_metric([report.family], report.conditional_share)
            if report.median_gap is not None:
                gap.add_metric([report.family], report.median_gap)
            refused.add_metric([report.family], report.refused)
        yield from (polls, share, gap, refused)


def _outcomes(name: str, documentation: str, sender: Any) -> CounterMetricFamily:
    """A sender's attempts (websub.Outcomes) by outcome: sent, retried, failed."""
    family = CounterMetricFamily(name, documentation, labels=["outcome"])
    for outcome in ("sent", "retried", "failed"):
        family.add_metric([outcome], getattr(sender.outcomes, outcome))
    return family
