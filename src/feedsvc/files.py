"""Files that readers only ever see whole: the old version or the new one, never a part."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # what _temp_beside's mkstemp makes
TEMP_AFTER = 3600.0  # seconds: a temp file this old was left by a killed writer
_BATCH = 256  # files written before they are flushed to disk together (each holds a descriptor open until then)

Write = Callable[[Path, bytes, float], None]  # (path, bytes, mtime)


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new hidden temp file in `path`'s folder (which the scanner skips and sweep_temp_files knows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def _ready(tmp: str, mode: int, mtime: float | None) -> None:
    """Mode and mtime set before the rename, so the file never shows new bytes with another date."""
    os.chmod(tmp, mode)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))


@contextlib.contextmanager
def atomic_file(path: Path, *, mode: int = 0o644, mtime: float | None = None) -> Iterator[BinaryIO]:
    """Write beside `path`, flush to disk, then rename over it; on any error `path` is untouched."""
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _ready(tmp, mode, mtime)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_files() -> Iterator[Write]:
    """Many files written as atomic_file writes one (old or new, never a part), flushed to disk together.

    One fsync per file is one journal commit per file: ~0.1 s for the 126 files of a build. One
    syncfs of their file system commits up to `_BATCH` at once; the fsync of each then finds nothing
    left to do (and is still what tells of a full disk). A file is renamed only after every one
    before it; on an error, what was not renamed is removed.
    """
    pending: list[tuple[int, str, Path]] = []

    def write(path: Path, data: bytes, mtime: float) -> None:
        fd, tmp = _temp_beside(path)
        pending.append((fd, tmp, path))
        with memoryview(data) as view:
            while view:
                view = view[os.write(fd, view):]
        _ready(tmp, 0o644, mtime)
        if len(pending) >= _BATCH:
            _flush(pending)

    try:
        yield write
        _flush(pending)
    finally:
        for fd, tmp, _ in pending:  # only after an error: what was not renamed goes
            os.close(fd)
            Path(tmp).unlink(missing_ok=True)


def _flush(pending: list[tuple[int, str, Path]]) -> None:
    if pending:
        _syncfs(pending[0][0])
    for fd, _, _ in pending:
        os.fsync(fd)
    while pending:  # what is renamed leaves the list: after an error, the rest is removed (see atomic_files)
        fd, tmp, path = pending[0]
        os.replace(tmp, path)
        del pending[0]
        os.close(fd)


def _syncfs(fd: int) -> None:
    """Commit every file on fd's file system to disk at once (Linux); elsewhere each file's fsync does it."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None, use_errno=True).syncfs(fd)


def write_atomically(path: Path, data: bytes, *, mtime: float | None = None) -> None:
    with atomic_file(path, mtime=mtime) as f:
        f.write(data)


def write_new(path: Path, data: bytes) -> bool:
    """Write a complete new file at `path`, or return False if one is there: never overwrite.

    The bytes are written under a hidden name (which the scanner skips) and then hard-linked to
    `path`, which fails if `path` exists, so a watching server never sees half a post and two
    editors making the same post at once get two files.
    """
    hidden = path.with_name(f".{path.name}.{secrets.token_hex(6)}.new")  # one per call: racing editors differ
    write_atomically(hidden, data)
    try:
        os.link(hidden, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: check, then rename (a narrow race)
        if path.exists():
            return False
        os.replace(hidden, path)
        return True
    finally:
        hidden.unlink(missing_ok=True)
    return True


def sweep_temp_files(folder: Path, *, older_than: float = TEMP_AFTER, recursive: bool = False) -> int:
    """Remove the temp files that writers killed mid-write left (atomic_file's names); how many went.

    Only files older than `older_than` seconds: a younger one may belong to a writer still running.
    """
    removed, now = 0, time.time()
    for path in folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"):
        try:
            if _TEMP_NAME.fullmatch(path.name) and path.is_file() and now - path.lstat().st_mtime > older_than:
                path.unlink()
                removed += 1
        except OSError:  # gone already, or not ours to remove
            continue
    return removed
