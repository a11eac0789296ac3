"""Writes a Snapshot's feeds to a folder, each file replaced atomically (old or new, never partial)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from feedsvc.model import FeedFormat
from feedsvc.publisher import Publisher


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


def export_feeds(publisher: Publisher, out: Path) -> list[Path]:
    """Every feed's subscription document at its path under /feeds/, and feeds.opml; returns the files.

    Feeds of earlier builds that the content no longer has are removed, as the server would 404.
    """
    snapshot = publisher.snapshot
    written = []
    for path in sorted(snapshot.listings):
        for fmt in FeedFormat:
            feed = publisher.page(path, fmt, snapshot=snapshot)
            assert feed is not None  # every listing has a first page
            target = out / "feeds" / f"{path}.{fmt.value}"
            write_atomically(target, feed.body)
            written.append(target)
    _remove_stale(out / "feeds", keep=set(written))
    write_atomically(out / "feeds.opml", snapshot.opml)
    return [*written, out / "feeds.opml"]


def _remove_stale(folder: Path, *, keep: set[Path]) -> None:
    for path in folder.rglob("*"):
        if path.suffix in {f".{fmt.value}" for fmt in FeedFormat} and path.is_file() and path not in keep:
            path.unlink()
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
