"""Tells WebSub hubs which feeds changed: one background thread, retries with backoff, never blocking.

W3C WebSub section 5 leaves publishing hub-specific; every public hub accepts the
PubSubHubbub form used here: POST hub.mode=publish&hub.url=<feed self URL>.
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
from urllib.parse import urlencode

from feedsvc import __version__

logger = logging.getLogger(__name__)

Post = Callable[[str, bytes, float], int]  # (hub, form body, timeout) -> HTTP status


def post_form(hub: str, body: bytes, timeout: float) -> int:
    request = urllib.request.Request(hub, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "User-Agent": f"feedsvc/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass(slots=True)
class Outcomes:
    """What /healthz says of the hubs."""

    sent: int = 0
    retried: int = 0
    failed: int = 0  # gave up after the last attempt
    last_error: str | None = None
    by_hub: dict[str, str] = field(default_factory=dict)  # hub -> "ok" or the last error


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
        try:
            status = self._post(hub, urlencode({"hub.mode": "publish", "hub.url": url}).encode(), self._timeout)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except (OSError, ValueError, http.client.HTTPException) as exc:  # HTTPException: not an HTTP answer
            error = str(getattr(exc, "reason", exc))
        if error is None:
            self.outcomes.sent += 1
            self.outcomes.by_hub[hub] = "ok"
            return
        self.outcomes.last_error = self.outcomes.by_hub[hub] = f"{url}: {error}"
        if attempt >= self._attempts:
            self.outcomes.failed += 1
            logger.error("websub: gave up telling %s about %s after %d attempts: %s", hub, url, attempt, error)
            return
        delay = min(self._backoff * 2 ** (attempt - 1), 600.0)
        self.outcomes.retried += 1
        logger.warning("websub: %s about %s failed (%s); retrying in %.0fs", hub, url, error, delay)
        with self._wake:
            if (hub, url) not in self._pending:  # a newer change already queued it
                self._pending.add((hub, url))
                heapq.heappush(self._queue, (time.monotonic() + delay, next(self._seq), hub, url, attempt + 1))
            self._wake.notify()
