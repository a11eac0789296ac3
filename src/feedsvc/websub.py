"""Tells WebSub hubs which feeds changed: one background thread, retries with backoff, never blocking.

W3C WebSub section 5 leaves publishing hub-specific. Hubs read the feed's URL from different
fields (Google's and Superfeedr's `hub.url`, flask-websub and WebSub.rocks `hub.topic`), so
both are sent. A 4xx answer is final (the hub will not change its mind), except 408 and 429;
a `Retry-After` is honoured.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from werkzeug.http import parse_date

from feedsvc import __version__

logger = logging.getLogger(__name__)

Post = Callable[[str, bytes, float], tuple[int, str | None]]  # (hub, form, timeout) -> (status, Retry-After)
_RETRYABLE_4XX = (408, 429)
_LONGEST_WAIT = 3600.0


def post_form(hub: str, body: bytes, timeout: float) -> tuple[int, str | None]:
    request = urllib.request.Request(hub, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "User-Agent": f"feedsvc/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.headers.get("Retry-After")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.headers.get("Retry-After")


def publish_form(url: str) -> bytes:
    return urlencode({"hub.mode": "publish", "hub.topic": url, "hub.url": url}).encode()


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date), if it says any."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    when = parse_date(value)  # as the conditional-GET dates are read (httpcache)
    return None if when is None else max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(slots=True)
class Outcomes:
    """What /healthz says of the hubs: counters, and each hub's state now (not a past error)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0  # gave up: after the last attempt, or on a final answer
    last_error: str | None = None  # the latest error of a hub that is failing now; None once all are ok
    by_hub: dict[str, str] = field(default_factory=dict)  # hub -> "ok" or its latest error

    def record(self, hub: str, error: str | None) -> None:
        self.by_hub[hub] = error or "ok"
        if error is not None:
            self.last_error = error
        elif all(state == "ok" for state in self.by_hub.values()):
            self.last_error = None


class WebSubNotifier:
    def __init__(self, hubs: Iterable[str], *, attempts: int = 6, backoff: float = 2.0, timeout: float = 10.0,
                 post: Post = post_form) -> None:
        self.hubs = tuple(hubs)
        self.outcomes = Outcomes()
        self._attempts, self._backoff, self._timeout, self._post = attempts, backoff, timeout, post
        self._queue: list[tuple[float, int, str, str, int]] = []  # (due, seq, hub, url, attempt)
        self._pending: set[tuple[str, str]] = set()
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="feedsvc-websub", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout)

    def notify(self, urls: Iterable[str]) -> None:
        """Queue one publish per hub and feed; a feed already waiting for a hub is not queued twice."""
        urls = list(urls)
        with self._wake:
            for hub in self.hubs:
                for url in urls:
                    if (hub, url) not in self._pending:
                        self._pending.add((hub, url))
                        heapq.heappush(self._queue, (time.monotonic(), next(self._seq), hub, url, 1))
            self._wake.notify()

    @property
    def pending(self) -> int:
        with self._wake:
            return len(self._queue)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                    self._wake.wait(timeout=self._queue[0][0] - time.monotonic() if self._queue else None)
                if self._stopping:
                    return
                _, _, hub, url, attempt = heapq.heappop(self._queue)
                self._pending.discard((hub, url))
            self._send(hub, url, attempt)

    def _send(self, hub: str, url: str, attempt: int) -> None:
        status, wait = 0, None
        try:
            status, retry_header = self._post(hub, publish_form(url), self._timeout)
            wait = retry_after(retry_header)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except (OSError, ValueError, http.client.HTTPException) as exc:  # HTTPException: not an HTTP answer
            error = str(getattr(exc, "reason", exc))
        self.outcomes.record(hub, None if error is None else f"{url}: {error}")
        if error is None:
            self.outcomes.sent += 1
            return
        final = 400 <= status < 500 and status not in _RETRYABLE_4XX
        if final or attempt >= self._attempts:
            self.outcomes.failed += 1
            why = "the hub refused it" if final else f"{attempt} attempts"
            logger.error("websub: gave up telling %s about %s (%s): %s", hub, url, why, error)
            return
        delay = min(max(min(self._backoff * 2 ** (attempt - 1), 600.0), wait or 0.0), _LONGEST_WAIT)
        self.outcomes.retried += 1
        logger.warning("websub: %s about %s failed (%s); retrying in %.0fs", hub, url, error, delay)
        with self._wake:
            if (hub, url) not in self._pending:  # a newer change already queued it
                self._pending.add((hub, url))
                heapq.heappush(self._queue, (time.monotonic() + delay, next(self._seq), hub, url, attempt + 1))
            self._wake.notify()
