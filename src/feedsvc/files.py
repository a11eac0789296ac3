"""Files that readers only ever see whole: the old version or the new one, never a part."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # what atomic_file's mkstemp makes


@contextlib.contextmanager
def atomic_file(path: Path, *, mode: int = 0o644, mtime: float | None = None) -> Iterator[BinaryIO]:
    """Write beside `path`, flush to disk, then rename over it; on any error `path` is untouched.

    `mtime` is set before the rename, so the file never shows new bytes with another date.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def sweep_temp_files(folder: Path, *, older_than: float, recursive: bool = False) -> int:
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
