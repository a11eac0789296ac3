"""A persistent record of parsed posts (SQLite), so a restart re-reads only the files that changed.

Lives outside the content folder, which stays read-only. Losing it costs one full parse,
nothing else: a missing, unreadable or outdated cache is simply started again.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from feedsvc import __version__
from feedsvc.config import Settings
from feedsvc.model import Post, Problem

logger = logging.getLogger(__name__)

Signature = tuple[int, int, int]
Cached = tuple[Signature, Post | Problem]
_SCHEMA = "CREATE TABLE IF NOT EXISTS posts (source TEXT PRIMARY KEY, mtime_ns INT, size INT, inode INT, result BLOB)"


def cache_file(settings: Settings) -> Path | None:
    """One file per content folder and the settings that shape a Post; None when the cache is off."""
    if settings.cache_folder is None:
        return None
    shape = repr((__version__, str(settings.content_dir.resolve()), settings.base_url, settings.post_url,
                  settings.id_authority, settings.timezone, settings.max_post_bytes))
    return settings.cache_folder / f"posts-{hashlib.sha256(shape.encode()).hexdigest()[:16]}.sqlite"


class ParseCache:
    def __init__(self, settings: Settings) -> None:
        self.path = cache_file(settings)
        self._db: sqlite3.Connection | None = None

    def load(self) -> dict[str, Cached]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            rows = self._connect().execute("SELECT source, mtime_ns, size, inode, result FROM posts").fetchall()
            return {source: ((mtime, size, inode), pickle.loads(blob)) for source, mtime, size, inode, blob in rows}
        except (sqlite3.Error, pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as exc:
            logger.warning("parse cache %s unreadable (%s); starting a new one", self.path, exc)
            self._reset()
            return {}

    def save(self, changed: Iterable[tuple[str, Signature, Post | Problem]], removed: Iterable[str]) -> None:
        if self.path is None:
            return
        rows = [(source, *signature, pickle.dumps(result, pickle.HIGHEST_PROTOCOL))
                for source, signature, result in changed]
        gone = [(source,) for source in removed]
        if not rows and not gone:
            return
        try:
            with self._connect() as db:
                db.executemany("INSERT OR REPLACE INTO posts VALUES (?, ?, ?, ?, ?)", rows)
                db.executemany("DELETE FROM posts WHERE source = ?", gone)
        except (sqlite3.Error, OSError) as exc:  # a full or read-only disk: serve on, uncached
            logger.warning("parse cache %s not written: %s", self.path, exc)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            assert self.path is not None
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # pickles: keep it private
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.isolation_level = ""  # transactions for `with db:` from here on
        return self._db

    def _reset(self) -> None:
        self.close()
        if self.path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
