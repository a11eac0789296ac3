"""Tells WebSub hubs which feeds changed: a sender thread per hub, retries with backoff, never blocking.

W3C WebSub section 5 leaves publishing hub-specific. Hubs read the feed's URL from different
fields (Google's and Superfeedr's `hub.url`, flask-websub and WebSub.rocks `hub.topic`), so
both are sent. A 4xx answer is final (the hub will not change its mind), except 408 and 429;
a `Retry-After` is honoured.

Hubs are independent: each has its own queue and thread, so a slow or hanging hub delays only
its own publishes. Each attempt has one deadline (`timeout`) for connecting, sending and reading
the answer's status line and headers (the body is never read): urllib's timeout is per socket
read, so a hub trickling a byte every few seconds held the one sender for minutes. An attempt
that misses the deadline is a failure like any other, retried with backoff.

Redirects are not followed (urllib followed them to any host, even ftp://): a 3xx is a failure
that names its Location. It is final for 301 and 308, which say the configured URL itself must
change; 302, 303, 307 and other 3xx say the move is temporary, so they are retried like a 5xx.
Hubs are reached directly, so HTTP(S)_PROXY is not read.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlencode

from werkzeug.http import parse_date

from feedsvc.hubpost import Answer, Post, post_form

logger = logging.getLogger(__name__)

Attempt = Callable[[str, str, int], float | None]  # (hub, feed, attempt) -> seconds until a retry, or None
_RETRYABLE_4XX = (408, 429)
_PERMANENT_REDIRECTS = (301, 308)
_LONGEST_WAIT = 3600.0
_SHOWN = 200  # characters of a hub's Location kept for the log and /healthz


def publish_form(url: str) -> bytes:
    return urlencode({"hub.mode": "publish", "hub.topic": url, "hub.url": url}).encode()


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date), if it says any."""
    if not value:
        return None
    if value.strip().isascii() and value.strip().isdigit():  # isdigit() alone accepts "²", which float() refuses
        return float(value.strip())
    when = parse_date(value)  # as the conditional-GET dates are read (httpcache)
    return None if when is None else max(0.0, (when - datetime.now(UTC)).total_seconds())


def judge(answer: Answer) -> tuple[str | None, bool]:
    """What is wrong with a hub's answer (None for a 2xx), and whether that is final rather than worth a retry."""
    status = answer.status
    if 200 <= status < 300:
        return None, False
    if 300 <= status < 400:
        where = ascii(answer.location or "nowhere")[1:-1][:_SHOWN]  # a hub's text, kept to one printable line
        return f"HTTP {status}: hub redirected to {where}; not followed", status in _PERMANENT_REDIRECTS
    return f"HTTP {status}", 400 <= status < 500 and status not in _RETRYABLE_4XX


@dataclass(slots=True)
class Outcomes:
    """What /healthz says of the hubs: counters, and each hub's state now (not a past error)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0  # gave up: after the last attempt, or on a final answer
    last_error: str | None = None  # the latest error of a hub that is failing now; None once all are ok
    by_hub: dict[str, str] = field(default_factory=dict)  # hub -> "ok" or its latest error; replaced, never changed
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def record(self, hub: str, error: str | None, outcome: Literal["sent", "retried", "failed"]) -> None:
        """Count one attempt; a lock, since every hub's sender thread records into the same counters."""
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
            self.by_hub = {**self.by_hub, hub: error or "ok"}  # a new dict: /healthz copies it without the lock
            if error is not None:
                self.last_error = error
            elif all(state == "ok" for state in self.by_hub.values()):
                self.last_error = None


class _Lane:
    """One hub's queue and sender thread, so that hub's slowness holds up only its own publishes."""

    def __init__(self, hub: str, attempt: Attempt, number: int) -> None:
        self.hub, self._attempt = hub, attempt
        self._queue: list[tuple[float, int, str, int]] = []  # (due, seq, feed url, attempt)
        self._pending: set[str] = set()  # queued, not yet taken: a feed is never queued twice
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self.thread = threading.Thread(target=self._run, name=f"feedsvc-websub-{number}", daemon=True)

    def __len__(self) -> int:
        with self._wake:
            return len(self._queue)

    def put(self, urls: Iterable[str], *, attempt: int = 1, delay: float = 0.0) -> None:
        due = time.monotonic() + delay
        with self._wake:
            for url in urls:
                if url not in self._pending:  # for a retry: a newer change may have queued it already
                    self._pending.add(url)
                    heapq.heappush(self._queue, (due, next(self._seq), url, attempt))
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()

    def _take(self) -> tuple[str, int] | None:
        """Wait for the next publish that is due; None once stopping."""
        with self._wake:
            while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                self._wake.wait(timeout=self._queue[0][0] - time.monotonic() if self._queue else None)
            if self._stopping:
                return None
            _, _, url, attempt = heapq.heappop(self._queue)
            self._pending.discard(url)
            return url, attempt

    def _run(self) -> None:
        while (job := self._take()) is not None:
            url, attempt = job
            try:
                delay = self._attempt(self.hub, url, attempt)
            except Exception:  # a bug must not silence this hub for good
                logger.exception("websub: telling %s about %s failed unexpectedly", self.hub, url)
                continue
            if delay is not None:
                self.put([url], attempt=attempt + 1, delay=delay)


class WebSubNotifier:
    """Publishes every changed feed to every hub; `timeout` is the deadline of one whole attempt."""

    def __init__(self, hubs: Iterable[str], *, attempts: int = 6, backoff: float = 2.0, timeout: float = 10.0,
                 post: Post = post_form) -> None:
        self.hubs = tuple(hubs)
        self.outcomes = Outcomes()
        self._attempts, self._backoff, self._timeout, self._post = attempts, backoff, timeout, post
        self._lanes = tuple(_Lane(hub, self._send, number) for number, hub in enumerate(dict.fromkeys(self.hubs), 1))

    def start(self) -> None:
        for lane in self._lanes:
            lane.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every sender, waiting `timeout` at most in all: one inside an attempt ends at its deadline."""
        for lane in self._lanes:
            lane.stop()
        deadline = time.monotonic() + timeout
        for lane in self._lanes:
            if lane.thread.is_alive():
                lane.thread.join(max(0.0, deadline - time.monotonic()))

    def notify(self, urls: Iterable[str]) -> None:
        """Queue one publish per hub and feed; a feed already waiting for a hub is not queued twice."""
        urls = list(urls)
        for lane in self._lanes:
            lane.put(urls)

    @property
    def pending(self) -> int:
        return sum(len(lane) for lane in self._lanes)

    def _send(self, hub: str, url: str, attempt: int) -> float | None:
        """One attempt; the seconds to wait before the next, or None when done (sent, refused or given up)."""
        try:
            answer = self._post(hub, publish_form(url), self._timeout)
            (error, final), wait = judge(answer), retry_after(answer.retry_after)
        except TimeoutError:
            error, final, wait = f"no complete answer within {self._timeout:g}s", False, None
        except (OSError, ValueError, http.client.HTTPException) as exc:  # HTTPException: not an HTTP answer
            error, final, wait = str(exc) or type(exc).__name__, False, None
        if error is None:
            self.outcomes.record(hub, None, "sent")
            return None
        if final or attempt >= self._attempts:
            self.outcomes.record(hub, f"{url}: {error}", "failed")
            why = "a final answer" if final else f"{attempt} attempts"
            logger.error("websub: gave up telling %s about %s (%s): %s", hub, url, why, error)
            return None
        delay = min(max(min(self._backoff * 2.0 ** (attempt - 1), 600.0), wait or 0.0), _LONGEST_WAIT)
        self.outcomes.record(hub, f"{url}: {error}", "retried")
        logger.warning("websub: %s about %s failed (%s); retrying in %.0fs", hub, url, error, delay)
        return delay
