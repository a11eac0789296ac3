"""Parsed posts and rendered feeds kept on disk, so a restart re-reads only the files that changed.

One pickle file per content folder, replaced atomically; it lives outside the content
folder, which stays read-only. Losing it costs one full build, nothing else: a missing,
damaged or outdated file is ignored and written again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from feedsvc import __version__
from feedsvc.config import Settings
from feedsvc.model import FeedFormat, Page, Post, Problem, RenderedFeed

logger = logging.getLogger(__name__)

Signature = tuple[int, int, int]


@dataclass(slots=True)
class CachedState:
    # source -> (stat signature, last good post, current problem)
    files: dict[str, tuple[Signature, Post | None, Problem | None]] = field(default_factory=dict)
    feeds: dict[tuple[Page, FeedFormat], RenderedFeed] = field(default_factory=dict)


def cache_file(settings: Settings) -> Path | None:
    """One file per content folder and the settings that shape a post or a feed; None when off."""
    if settings.cache_folder is None:
        return None
    shape = repr((__version__, str(settings.content_dir.resolve()), settings))
    return settings.cache_folder / f"state-{hashlib.sha256(shape.encode()).hexdigest()[:16]}.pickle"


class ParseCache:
    def __init__(self, settings: Settings) -> None:
        self.path = cache_file(settings)

    def load(self) -> CachedState:
        if self.path is None or not self.path.exists():
            return CachedState()
        try:
            with open(self.path, "rb") as f:
                state = pickle.load(f)
            if not isinstance(state, CachedState):
                raise TypeError(f"holds {type(state).__name__}")
            return state
        except Exception as exc:  # any damage at all means: build from the files, as without a cache
            logger.warning("cache %s unreadable (%s); rebuilding it", self.path, exc)
            return CachedState()

    def save(self, state: CachedState) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds pickles: keep it private
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)  # streamed: no second copy in memory
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except (OSError, pickle.PicklingError) as exc:  # a full or read-only disk: serve on, uncached
            logger.warning("cache %s not written: %s", self.path, exc)
