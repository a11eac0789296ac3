"""When rebuilds run: on an interval, soon after a nudge, and when a future post goes live.

The only user of APScheduler. A nudge that arrives while a rebuild runs is never lost: it
sets a pending flag that the running rebuild loops on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

logger = logging.getLogger(__name__)


class RebuildSchedule:
    """Runs `rebuild` on a background thread; `rebuild` returns when the next one is due, if ever."""

    def __init__(self, rebuild: Callable[[], datetime | None], *, interval: float, debounce: float) -> None:
        self._rebuild = rebuild
        self._interval = interval
        self._debounce = debounce
        self._pending = threading.Event()
        self._running = threading.Lock()
        self._scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
            "coalesce": True, "max_instances": 3, "misfire_grace_time": None,
        })

    def start(self) -> None:
        self._scheduler.add_job(self.run, "interval", seconds=self._interval, id="rebuild")
        self._scheduler.start()

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=True)

    def nudge(self) -> None:
        """Rebuild `debounce` seconds from now; nudges in between fold into that one run."""
        self._at(datetime.now().astimezone() + timedelta(seconds=self._debounce), job_id="nudge")

    def run(self) -> None:
        """Rebuild until nothing is pending; a concurrent caller leaves its work to the runner."""
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
        try:
            due = self._rebuild()
        except Exception:  # APScheduler would swallow it; say it once with the traceback
            logger.exception("rebuild failed; serving the previous feeds")
            return
        if due is not None:
            self._at(due, job_id="due")

    def _at(self, when: datetime, *, job_id: str) -> None:
        if self._scheduler.running:
            self._scheduler.add_job(self.run, "date", run_date=when, id=job_id, replace_existing=True)
