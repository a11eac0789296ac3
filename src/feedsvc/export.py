"""Writes a Snapshot's feeds to a folder that a static web server serves as `feedsvc serve` would.

Beside each document goes `<name>.gz`, the very bytes the server sends to gzip clients, so a static
server (nginx `gzip_static`, see deploy/nginx.conf) never compresses on the fly and sends the same
body. A feed's files carry its Last-Modified as their mtime, because a static server takes
Last-Modified (and nginx its ETag) from the mtime. Each file is replaced atomically: old or new,
never partial.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from feedsvc.files import write_atomically
from feedsvc.model import FeedFormat
from feedsvc.publisher import Publisher
from feedsvc.render import gzip_bytes

_FEED_SUFFIXES = tuple(f".{fmt.value}" for fmt in FeedFormat)


def export_feeds(publisher: Publisher, out: Path) -> list[Path]:
    """Every feed's subscription document at its path under /feeds/, and feeds.opml, each with a
    `.gz` beside it; returns the documents (not the `.gz` files).

    Feeds of earlier builds that the content no longer has are removed, as the server would 404.
    """
    snapshot = publisher.snapshot
    written = []
    for path in sorted(snapshot.listings):
        for fmt in FeedFormat:
            feed = publisher.page(path, fmt, snapshot=snapshot)
            assert feed is not None  # every listing has a first page
            target = out / "feeds" / f"{path}.{fmt.value}"
            mtime = feed.last_modified.timestamp()
            write_atomically(_gz(target), feed.gzip_body, mtime=mtime)
            write_atomically(target, feed.body, mtime=mtime)
            written.append(target)
    _remove_stale(out / "feeds", keep=set(written))
    opml = out / "feeds.opml"
    # The list has no date of its own (the server sends no Last-Modified for it): it keeps the
    # time of the build that last changed it, so a static server's validators change only then.
    opml_gz = gzip_bytes(snapshot.opml)
    if not (_holds(opml, snapshot.opml) and _holds(_gz(opml), opml_gz)):
        built = (snapshot.built_at or datetime.now(UTC)).timestamp()
        write_atomically(_gz(opml), opml_gz, mtime=built)
        write_atomically(opml, snapshot.opml, mtime=built)
    return [*written, opml]


def _gz(path: Path) -> Path:
    return path.with_name(f"{path.name}.gz")


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def _remove_stale(folder: Path, *, keep: set[Path]) -> None:
    """Documents and their `.gz` that this build did not write; the `.gz` first, so a static server
    never serves an old compressed copy of a feed that is gone."""
    keep = keep | {_gz(path) for path in keep}
    stale = [path for path in folder.rglob("*")
             if path.name.removesuffix(".gz").endswith(_FEED_SUFFIXES) and path.is_file() and path not in keep]
    for path in sorted(stale, key=lambda p: p.suffix != ".gz"):
        path.unlink()
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
