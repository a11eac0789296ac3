"""Parsed posts and rendered feeds kept on disk, so a restart re-reads only the files that changed.

One pickle file per content folder, replaced atomically; it lives outside the content
folder, which stays read-only. Losing it costs one full build, nothing else: a missing,
damaged or outdated file is ignored and written again.

Unpickling runs whatever the file says, so a file is loaded only if nobody else could have
written it: owned by this user, in a folder that only this user (or root) owns and no group
or other user may write, as ssh treats its keys.
"""

from __future__ import annotations

import copyreg
import dataclasses
import hashlib
import logging
import os
import pickle
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from feedsvc import __version__
from feedsvc.config import Settings
from feedsvc.content import shared_term
from feedsvc.files import atomic_file, sweep_temp_files
from feedsvc.model import FeedFormat, Page, Post, Problem, RenderedFeed, Snapshot, Term
from feedsvc.stamps import Stamp, fingerprints
from feedsvc.walk import Digest

logger = logging.getLogger(__name__)

Version = int  # walk.packed: a file's stat signature as one int


@dataclass(slots=True)
class CachedState:
    # source -> (stat signature, packed; last good post; current problem)
    files: dict[str, tuple[Version, Post | None, Problem | None]] = field(default_factory=dict)
    feeds: dict[tuple[Page, FeedFormat, datetime], RenderedFeed] = field(default_factory=dict)
    # channel -> (fingerprint, time, bound): see stamps.Stamp (its posts' fingerprint in place of them)
    stamps: dict[str, tuple[str, datetime, datetime | None]] = field(default_factory=dict)
    bodies: dict[str, tuple[str, str]] = field(default_factory=dict)  # source -> (revision, HTML) of broken files
    id_changes: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # see scan.ContentFolder.id_changes
    deleted: dict[str, tuple[tuple[str, datetime], ...]] = field(default_factory=dict)  # see build.Built.deleted
    # The channels whose fingerprint was taken from the posts they held when saved, and when the
    # clock alone would next change what they hold (a future post going live; None: never). A
    # restart that finds every file as saved, before that time, can trust those stamps unchecked.
    exact: frozenset[str] = frozenset()
    next_due: datetime | None = None
    listing: Digest | None = None  # walk.digest of `files` and their versions: a listing with it changed nothing
    # What the web layer served when this was saved, without the posts (see Publisher.resume): read
    # on its own, first, so a restart serves the feeds before it reads a million posts.
    front: Snapshot | None = None


# Settings that change how the service runs, not a post or a feed: changing them keeps the cache.
_RUNTIME_ONLY = frozenset({"host", "port", "threads", "cache_dir", "cache_max_age", "log_format", "access_log",
                           "leader_lock", "rebuild_interval", "debounce", "settle", "admin_token", "min_poll_interval",
                           "redirects", "retired", "resume", "stop_timeout"})
_PRUNE_AFTER = 30 * 86400  # seconds: the cache of a content folder not served for a month is dropped


def cache_file(settings: Settings) -> Path | None:
    """One file per content folder (whatever the other settings); None when off."""
    if settings.cache_folder is None:
        return None
    folder = str(settings.content_dir.resolve())
    return settings.cache_folder / f"state-{hashlib.sha256(folder.encode()).hexdigest()[:16]}.pickle"


def _shape(settings: Settings) -> str:
    """What the cached posts and feeds were made with: a change starts cold, in the same file."""
    values = [(name, getattr(settings, name)) for name in sorted(settings.__dataclass_fields__)
              if name not in _RUNTIME_ONLY]
    return hashlib.sha256(repr((__version__, values)).encode()).hexdigest()[:32]


_LAYOUT = ("feedsvc-cache", 12)  # this file's layout: another number starts cold


def untrusted_folder(folder: Path) -> str | None:
    """Why a cache folder others could write to must not be used, if so."""
    try:
        st = os.stat(folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    if st.st_uid not in (os.geteuid(), 0) or st.st_mode & 0o022:
        return f"its folder {folder} is writable by other users (chmod 700 it)"
    return None


def untrusted_file(st: os.stat_result) -> str | None:
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return "the file is not a private file of this user"
    return None


_END = None
_CHUNK = 5000  # posts per pickle: each pickler remembers every object it wrote, so keep them small


def _shared_term(term: Term) -> tuple[Callable[[str, str], Term], tuple[str, str]]:
    return shared_term, (term.slug, term.name)


def _pickler(f: BinaryIO, protocol: int) -> pickle.Pickler:
    """Terms (categories, tags) are shared again on load, as content shares them.

    Through a dispatch table, which the pickler looks up by type in C: a `persistent_id` method
    was a Python call for every object written, a third of a million-post write.
    """
    pickler = pickle.Pickler(f, protocol)
    pickler.dispatch_table = {**copyreg.dispatch_table, Term: _shared_term}
    return pickler


def _nothing() -> None:
    pass


def _write(f: BinaryIO, state: CachedState, header: tuple[str, int, str], give_way: Callable[[], None]) -> None:
    protocol = pickle.HIGHEST_PROTOCOL

    def dump(part: object) -> None:  # each part its own pickle, read back one by one (see _read)
        _pickler(f, protocol).dump(part)

    dump(header)
    front = None if state.front is None else dataclasses.replace(state.front, listings={}, posts={})
    # As bytes in bytes: load() steps over it with one copy instead of unpickling it again.
    dump(None if front is None else pickle.dumps(front, protocol))
    files = list(state.files.items())
    for start in range(0, len(files), _CHUNK):
        give_way()
        dump(files[start:start + _CHUNK])
    for part in (state.feeds, state.stamps, state.bodies, state.id_changes, state.deleted,
                 (state.exact, state.next_due, state.listing), _END):
        dump(part)


class ParseCache:
    def __init__(self, settings: Settings) -> None:
        self.path = cache_file(settings)
        self.header = (*_LAYOUT, _shape(settings))

    def stored_bytes(self) -> int:
        """The size of the cache file (0 if there is none): how big a folder the last run saw."""
        try:
            return 0 if self.path is None else self.path.stat().st_size
        except OSError:
            return 0

    def load_front(self) -> Snapshot | None:
        """What the web layer served when the cache was saved (without the posts), if it was made
        with these settings by this version; None otherwise. Quick: it is at the start of the file."""
        if (f := self._open()) is None:
            return None
        with f:
            try:
                header = pickle.load(f)
                blob = pickle.load(f) if header == self.header else None
                front = None if blob is None else pickle.loads(blob)
            except Exception as exc:  # any damage: start as without a cache (load() says why)
                logger.debug("cache %s: no saved feeds to serve first (%s)", self.path, exc)
                return None
        return front if isinstance(front, Snapshot) else None

    def load(self) -> CachedState:
        if (f := self._open()) is None:
            return CachedState()
        with f:
            return self._read(f)

    def _open(self) -> BinaryIO | None:
        """The cache file, if there is one that nobody else could have written."""
        if self.path is None:
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("cache %s unreadable (%s); rebuilding it", self.path, exc.strerror or exc)
            return None
        f = open(fd, "rb")  # noqa: SIM115 (the caller closes it)
        if why := untrusted_folder(self.path.parent) or untrusted_file(os.fstat(fd)):
            f.close()
            logger.error("cache %s not loaded: %s; building from the files", self.path, why)
            return None
        return f

    def _read(self, f: BinaryIO) -> CachedState:
        state = CachedState()
        try:
            header = pickle.load(f)
            if header[:2] != _LAYOUT:
                raise ValueError("not a feedsvc cache of this layout")
            pickle.load(f)  # the front snapshot (see load_front)
            while isinstance(part := pickle.load(f), list):
                state.files.update(part)
            state.feeds = part
            state.stamps = pickle.load(f)
            state.bodies = pickle.load(f)
            state.id_changes = pickle.load(f)
            state.deleted = pickle.load(f)
            state.exact, state.next_due, state.listing = pickle.load(f)
            if pickle.load(f) is not _END:
                raise ValueError("cache file does not end where it should")
            if header[2] != self.header[2]:  # posts and feeds were made otherwise; when channels changed still holds
                logger.info("cache %s was made by another version or other settings; rebuilding it", self.path)
                # Its posts' dates may read otherwise now (another time zone): their bound is not known.
                stamps: dict[str, tuple[str, datetime, datetime | None]] = {
                    path: (made_for, at, None) for path, (made_for, at, _) in state.stamps.items()}
                return CachedState(stamps=stamps, id_changes=state.id_changes)
            return state
        except Exception as exc:  # any damage at all means: build from the files, as without a cache
            logger.warning("cache %s unreadable (%s); rebuilding it", self.path, exc)
            return CachedState()

    def save_state(self, *, files: dict[str, tuple[Version, Post | None, Problem | None]],
                   feeds: Mapping[tuple[Page, FeedFormat, datetime], RenderedFeed], stamps: Mapping[str, Stamp],
                   bodies: dict[str, tuple[str, str]],
                   id_changes: dict[str, tuple[str, str, float]] | None = None,
                   deleted: dict[str, tuple[tuple[str, datetime], ...]] | None = None,
                   next_due: datetime | None = None, front: Snapshot | None = None,
                   listing: Digest | None = None, give_way: Callable[[], None] = _nothing) -> None:
        """Save a run's state; a stamp is kept with the fingerprint of its posts (not the posts).

        `next_due`: when the clock alone next changes which posts the channels hold (see CachedState);
        `listing`: walk.digest of `files` (scan.ContentFolder.digest); without it a restart compares every file;
        `give_way`: called between parts of the write (every _CHUNK posts), to let other work go first.
        """
        known = fingerprints({path: stamp.posts for path, stamp in stamps.items() if stamp.posts is not None})
        self.save(CachedState(files=files, feeds=dict(feeds), bodies=bodies, id_changes=dict(id_changes or {}),
                              deleted=dict(deleted or {}), exact=frozenset(known), next_due=next_due,
                              listing=listing, front=front, stamps={
            path: (known.get(path) or stamp.made_for or "", stamp.at, stamp.bound) for path, stamp in stamps.items()}),
                  give_way=give_way)

    def save(self, state: CachedState, *, give_way: Callable[[], None] = _nothing) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds pickles: keep it private
            if why := untrusted_folder(self.path.parent):
                logger.error("cache %s not written: %s", self.path, why)
                return
            with atomic_file(self.path, mode=0o600) as f:
                _write(f, state, self.header, give_way)
            self._prune()
        except (OSError, pickle.PicklingError) as exc:  # a full or read-only disk: serve on, uncached
            logger.warning("cache %s not written: %s", self.path, exc)

    def _prune(self) -> None:
        """Drop the caches of folders no longer served, and temp files a killed writer left."""
        assert self.path is not None
        sweep_temp_files(self.path.parent)
        now = time.time()
        for path in self.path.parent.glob("state-*.pickle"):
            try:
                if path != self.path and now - path.lstat().st_mtime > _PRUNE_AFTER:
                    path.unlink()
            except OSError:
                continue
