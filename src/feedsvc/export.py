"""Writes a Snapshot's feeds to a folder, each file replaced atomically (old or new, never partial)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from feedsvc.model import Snapshot


def write_atomically(path: Path, data: bytes) -> None:
    """Write beside the target, flush to disk, then rename over it: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_feeds(snapshot: Snapshot, out: Path) -> list[Path]:
    """Every feed at the path it has under /feeds/ when served; returns the files written.

    Feeds of earlier builds that the content no longer has are removed, as the server would 404.
    """
    written = []
    for name, feed in sorted(snapshot.feeds.items()):
        target = out / "feeds" / name
        write_atomically(target, feed.body)
        written.append(target)
    _remove_stale(out / "feeds", keep=set(written))
    return written


def _remove_stale(folder: Path, *, keep: set[Path]) -> None:
    for path in folder.rglob("*"):
        if path.suffix in (".atom", ".rss") and path.is_file() and path not in keep:
            path.unlink()
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
