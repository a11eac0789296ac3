"""Which of several replicas tells hubs and caches of changes: the one holding an exclusive lock on a shared file.

Every replica rebuilds and serves (their feeds are byte-identical); only the lock holder tells
the hubs, so a change is announced once per deployment, not once per replica. If it stops,
the lock is released by the kernel and the next replica to ask takes over.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


class LeaderLock:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None

    def is_leader(self) -> bool:
        """True while this process holds the lock (always, when no lock file is configured)."""
        if self.path is None or self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        logger.info("this replica now sends WebSub notifications and cache purges (holds %s)", self.path)
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
