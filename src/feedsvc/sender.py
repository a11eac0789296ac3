"""Tells endpoints (WebSub hubs, cache tiers) about changes: a queue and thread per endpoint, retries, never blocking.

A slow or hanging endpoint delays only its own jobs. Each attempt has one deadline (see hubpost);
a 2xx is done, a 4xx final (the endpoint will not change its mind) except 408 and 429, a 301 or
308 final (the configured URL itself must change), anything else retried with backoff, for as
long as a `Retry-After` asks. Redirects are never followed.
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

from werkzeug.http import parse_date

from feedsvc.hubpost import Answer

logger = logging.getLogger(__name__)

Attempt = Callable[[str, str, int], float | None]  # (endpoint, job, attempt) -> seconds until a retry, or None
Send = Callable[[str, str, float], Answer]  # (endpoint, job, timeout for the whole attempt) -> its answer
_RETRYABLE_4XX = (408, 429)
_PERMANENT_REDIRECTS = (301, 308)
_LONGEST_WAIT = 3600.0
_SHOWN = 200  # characters of an endpoint's Location kept for the log and /healthz


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date), if it says any."""
    if not value:
        return None
    if value.strip().isascii() and value.strip().isdigit():  # isdigit() alone accepts "²", which float() refuses
        return float(value.strip())
    when = parse_date(value)  # as the conditional-GET dates are read (httpcache)
    return None if when is None else max(0.0, (when - datetime.now(UTC)).total_seconds())


def judge(answer: Answer) -> tuple[str | None, bool]:
    """What is wrong with an answer (None for a 2xx), and whether that is final rather than worth a retry."""
    status = answer.status
    if 200 <= status < 300:
        return None, False
    if 300 <= status < 400:
        where = ascii(answer.location or "nowhere")[1:-1][:_SHOWN]  # the endpoint's text, kept to one printable line
        return f"HTTP {status}: redirected to {where}; not followed", status in _PERMANENT_REDIRECTS
    return f"HTTP {status}", 400 <= status < 500 and status not in _RETRYABLE_4XX


@dataclass(slots=True)
class Outcomes:
    """What /healthz says of the endpoints: counters, and each one's state now (not a past error)."""

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


class Lane:
    """One endpoint's queue and thread, so that endpoint's slowness holds up only its own jobs."""

    def __init__(self, endpoint: str, attempt: Attempt, name: str) -> None:
        self.endpoint, self._attempt, self._name = endpoint, attempt, name
        self._queue: list[tuple[float, int, str, int]] = []  # (due, seq, job, attempt)
        self._pending: set[str] = set()  # queued, not yet taken: a job is never queued twice
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self.thread = threading.Thread(target=self._run, name=f"feedsvc-{name}", daemon=True)

    def __len__(self) -> int:
        with self._wake:
            return len(self._queue)

    def put(self, jobs: Iterable[str], *, attempt: int = 1, delay: float = 0.0) -> None:
        due = time.monotonic() + delay
        with self._wake:
            for job in jobs:
                if job not in self._pending:  # for a retry: a newer change may have queued it already
                    self._pending.add(job)
                    heapq.heappush(self._queue, (due, next(self._seq), job, attempt))
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()

    def _take(self) -> tuple[str, int] | None:
        """Wait for the next job that is due; None once stopping."""
        with self._wake:
            while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                self._wake.wait(timeout=self._queue[0][0] - time.monotonic() if self._queue else None)
            if self._stopping:
                return None
            _, _, job, attempt = heapq.heappop(self._queue)
            self._pending.discard(job)
            return job, attempt

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            job, attempt = taken
            try:
                delay = self._attempt(self.endpoint, job, attempt)
            except Exception:  # a bug must not silence this endpoint for good
                logger.exception("%s: %s to %s failed unexpectedly", self._name, job, self.endpoint)
                continue
            if delay is not None:
                self.put([job], attempt=attempt + 1, delay=delay)


class Sender:
    """Sends every job to every endpoint, each endpoint on its own thread; `timeout` bounds one attempt.

    `name` says what is sent, in log lines and thread names ("websub", "purge").
    """

    def __init__(self, endpoints: Iterable[str], send: Send, *, name: str, attempts: int = 6,
                 backoff: float = 2.0, timeout: float = 10.0) -> None:
        self.endpoints = tuple(endpoints)
        self.outcomes = Outcomes()
        self.name = name
        self._send, self._attempts, self._backoff, self._timeout = send, attempts, backoff, timeout
        self._lanes = tuple(Lane(endpoint, self._attempt, f"{name}-{number}")
                            for number, endpoint in enumerate(dict.fromkeys(self.endpoints), 1))

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

    def put(self, jobs: Iterable[str]) -> None:
        """Queue each job once per endpoint; a job already waiting for an endpoint is not queued twice."""
        jobs = list(jobs)
        for lane in self._lanes:
            lane.put(jobs)

    @property
    def pending(self) -> int:
        return sum(len(lane) for lane in self._lanes)

    def _attempt(self, endpoint: str, job: str, attempt: int) -> float | None:
        """One attempt; the seconds to wait before the next, or None when done (sent, refused or given up)."""
        try:
            answer = self._send(endpoint, job, self._timeout)
            (error, final), wait = judge(answer), retry_after(answer.retry_after)
        except TimeoutError:
            error, final, wait = f"no complete answer within {self._timeout:g}s", False, None
        except (OSError, ValueError, http.client.HTTPException) as exc:  # HTTPException: not an HTTP answer
            error, final, wait = str(exc) or type(exc).__name__, False, None
        if error is None:
            self.outcomes.record(endpoint, None, "sent")
            return None
        if final or attempt >= self._attempts:
            self.outcomes.record(endpoint, f"{job}: {error}", "failed")
            why = "a final answer" if final else f"{attempt} attempts"
            logger.error("%s: gave up sending %s to %s (%s): %s", self.name, job, endpoint, why, error)
            return None
        delay = min(max(min(self._backoff * 2.0 ** (attempt - 1), 600.0), wait or 0.0), _LONGEST_WAIT)
        self.outcomes.record(endpoint, f"{job}: {error}", "retried")
        logger.warning("%s: %s to %s failed (%s); retrying in %.0fs", self.name, job, endpoint, error, delay)
        return delay
