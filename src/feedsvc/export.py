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
    """Every feed at the path it has under /feeds/ when served; returns the files written."""
    written = []
    for name, feed in sorted(snapshot.feeds.items()):
        target = out / "feeds" / name
        write_atomically(target, feed.body)
        written.append(target)
    return written
