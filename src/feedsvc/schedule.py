"""When rebuilds run: on an interval, soon after a nudge, and when a future post goes live.

The only user of APScheduler. A nudge that arrives while a rebuild runs is never lost: it
sets a pending flag that the running rebuild loops on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

logger = logging.getLogger(__name__)


Rebuild = Callable[[set[str] | None], datetime | None]  # (changed paths, or None for all) -> next due
Prepare = Callable[[], Future[Any] | None]  # begins what the next full rebuild needs; waited for outside it


class RebuildSchedule:
    """Runs `rebuild` on a background thread; `rebuild` returns when the next one is due, if ever.

    The interval job asks for a full rescan (None); nudges name the paths that changed, so a
    rebuild after one edit looks at one file, not 100,000.
    """

    def __init__(self, rebuild: Rebuild, *, interval: float, debounce: float, prepare: Prepare | None = None) -> None:
        self._rebuild = rebuild
        self._prepare = prepare
        self._interval = interval
        self._debounce = debounce
        self._pending = threading.Event()
        self._running = threading.Lock()
        self._asked = threading.Lock()  # guards the two fields below
        self._full = False
        self._paths: set[str] = set()
        self._first_ask: dict[str, datetime] = {}
        self._scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
            "coalesce": True, "max_instances": 3, "misfire_grace_time": None,
        })

    def start(self) -> None:
        self._scheduler.add_job(self.run, "interval", seconds=self._interval, id="rebuild", kwargs={"full": True})
        self._scheduler.start()

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=True)

    def nudge(self, paths: Iterable[str] | None = ()) -> None:
        """Rebuild `debounce` seconds from now (looking at `paths`, or at everything if None).

        Everything goes the interval's way (see run): at a million files the listing takes 10 s,
        and the file events' rebuilds must not wait for it (one did, for 12.7 s, after each start).
        """
        when = datetime.now().astimezone() + timedelta(seconds=self._debounce)
        if paths is None:
            self._at(when, job_id="full", full=True)
            return
        with self._asked:
            self._paths.update(paths)
        self._at(when, job_id="nudge")

    def run(self, *, full: bool = False) -> None:
        """Rebuild until nothing is pending; a concurrent caller leaves its work to the runner.

        The interval's full rebuild first waits for what `prepare` begins (a big folder's listing, in
        another process) without being the runner, so rebuilds for file events go on meanwhile.
        """
        if full and self._prepare is not None and (ready := self._prepare()) is not None:
            with contextlib.suppress(Exception):  # a failed listing is made again by the rebuild itself
                ready.result()
        with self._asked:
            self._full |= full
        self._pending.set()
        while self._pending.is_set():
            if not self._running.acquire(blocking=False):
                return  # the thread holding the lock re-checks _pending after releasing it
            try:
                while self._pending.is_set():
                    self._pending.clear()
                    self._run_once()
            finally:
                self._running.release()

    def _run_once(self) -> None:
        with self._asked:
            paths = None if self._full else self._paths
            self._full, self._paths = False, set()
        try:
            due = self._rebuild(paths)
        except Exception:  # APScheduler would swallow it; say it once with the traceback
            logger.exception("rebuild failed; serving the previous feeds")
            with self._asked:  # what it was asked to look at is looked at again next time
                if paths is None:
                    self._full = True
                else:
                    self._paths |= paths
            return
        if due is not None:
            self._at(due, job_id="due")

    def when_quiet(self, job: Callable[[], object], *, seconds: float, at_most: float, job_id: str) -> None:
        """Run `job` once things have been quiet for `seconds`, but no later than `at_most` after the first ask.

        For the cache write: it costs a second of CPU at 100,000 posts, so it should not run
        beside the rebuilds of a burst of edits, nor wait forever while edits keep coming.
        """
        if not self._scheduler.running:
            return
        now = datetime.now().astimezone()
        first = self._first_ask.setdefault(job_id, now)

        def run() -> None:
            self._first_ask.pop(job_id, None)
            job()

        when = min(now + timedelta(seconds=seconds), first + timedelta(seconds=at_most))
        self._scheduler.add_job(run, "date", run_date=when, id=job_id, replace_existing=True)

    def _at(self, when: datetime, *, job_id: str, full: bool = False) -> None:
        if self._scheduler.running:
            self._scheduler.add_job(self.run, "date", run_date=when, id=job_id, replace_existing=True,
                                    kwargs={"full": True} if full else None)
