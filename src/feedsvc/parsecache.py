"""Parsed posts and rendered feeds kept on disk, so a restart re-reads only the files that changed.

One pickle file per content folder, replaced atomically; it lives outside the content
folder, which stays read-only. Losing it costs one full build, nothing else: a missing,
damaged or outdated file is ignored and written again.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from feedsvc import __version__
from feedsvc.config import Settings
from feedsvc.content import shared_term
from feedsvc.files import atomic_file
from feedsvc.model import FeedFormat, Page, Post, Problem, RenderedFeed, Term

logger = logging.getLogger(__name__)

Signature = tuple[int, int, int, int]


@dataclass(slots=True)
class CachedState:
    # source -> (stat signature, last good post, current problem)
    files: dict[str, tuple[Signature, Post | None, Problem | None]] = field(default_factory=dict)
    feeds: dict[tuple[Page, FeedFormat, datetime], RenderedFeed] = field(default_factory=dict)
    stamps: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # channel -> (fingerprint, time)


def cache_file(settings: Settings) -> Path | None:
    """One file per content folder and the settings that shape a post or a feed; None when off."""
    if settings.cache_folder is None:
        return None
    shape = repr((__version__, str(settings.content_dir.resolve()), settings))
    return settings.cache_folder / f"state-{hashlib.sha256(shape.encode()).hexdigest()[:16]}.pickle"


_HEADER = ("feedsvc-cache", __version__, 2)  # the last number: this file's layout
_END = None
_CHUNK = 5000  # posts per pickle: each pickler remembers every object it wrote, so keep them small


class _Pickler(pickle.Pickler):
    """Terms (categories, tags) are written as references and shared again on load, as content shares them."""

    def persistent_id(self, obj: object) -> tuple[str, str] | None:
        return (obj.slug, obj.name) if type(obj) is Term else None


class _Unpickler(pickle.Unpickler):
    def persistent_load(self, pid: tuple[str, str]) -> Term:
        return shared_term(*pid)


def _write(f: BinaryIO, state: CachedState) -> None:
    protocol = pickle.HIGHEST_PROTOCOL
    _Pickler(f, protocol).dump(_HEADER)
    files = [(source, *rest) for source, rest in state.files.items()]
    for start in range(0, len(files), _CHUNK):
        _Pickler(f, protocol).dump(files[start:start + _CHUNK])
    _Pickler(f, protocol).dump(state.feeds)
    _Pickler(f, protocol).dump(state.stamps)
    _Pickler(f, protocol).dump(_END)


class ParseCache:
    def __init__(self, settings: Settings) -> None:
        self.path = cache_file(settings)

    def load(self) -> CachedState:
        if self.path is None or not self.path.exists():
            return CachedState()
        state = CachedState()
        try:
            with open(self.path, "rb") as f:
                if _Unpickler(f).load() != _HEADER:
                    raise ValueError("not a feedsvc cache of this version")
                while isinstance(part := _Unpickler(f).load(), list):
                    state.files.update((source, rest) for source, *rest in part)
                state.feeds = part
                state.stamps = _Unpickler(f).load()
                if _Unpickler(f).load() is not _END:
                    raise ValueError("cache file does not end where it should")
            return state
        except Exception as exc:  # any damage at all means: build from the files, as without a cache
            logger.warning("cache %s unreadable (%s); rebuilding it", self.path, exc)
            return CachedState()

    def save(self, state: CachedState) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds pickles: keep it private
            with atomic_file(self.path, mode=0o600) as f:
                _write(f, state)
        except (OSError, pickle.PicklingError) as exc:  # a full or read-only disk: serve on, uncached
            logger.warning("cache %s not written: %s", self.path, exc)
