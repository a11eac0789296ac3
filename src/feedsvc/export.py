"""Writes a Snapshot's feeds to a folder that a static web server serves as `feedsvc serve` would.

Beside each document goes `<name>.gz`, the very bytes the server sends to gzip clients, so a static
server (nginx `gzip_static`, see deploy/nginx.conf) never compresses on the fly and sends the same
body. A feed's files carry its Last-Modified as their mtime, because a static server takes
Last-Modified (and nginx its ETag, "mtime-size") from the mtime: a document whose bytes change
gets a later mtime, always, so neither validator can hide the change. Each file is replaced
atomically: old or new, never partial.

A feed an earlier build wrote keeps being written (empty, while its channel has no posts):
readers subscribed to it. Renamed and retired channels (FEEDSVC_REDIRECTS, FEEDSVC_RETIRED) lose
their files and get rules in `nginx-redirects.conf`, which deploy/nginx.conf includes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from feedsvc.config import Settings
from feedsvc.files import atomic_files, sweep_temp_files, write_atomically
from feedsvc.model import Channel, FeedFormat, RenderedFeed
from feedsvc.publisher import Publisher
from feedsvc.urls import feed_url

_FEED_SUFFIXES = tuple(f".{fmt.value}" for fmt in FeedFormat)
NGINX_RULES = "nginx-redirects.conf"




def export_feeds(publisher: Publisher, out: Path) -> list[Path]:
    """Every feed's subscription document at its path under /feeds/, and feeds.opml, each with a
    `.gz` beside it, and the nginx rules for renamed and retired feeds; returns the documents (not
    the `.gz` files, not the rules).

    Only files whose bytes change are written. A feed an earlier build wrote stays (an empty feed
    while its channel has no posts), also when this build has lost the stamps that know it; the
    feeds of renamed and retired channels are removed.
    """
    if out.is_dir():  # what a build killed mid-write left; a younger one may be another build's
        sweep_temp_files(out, recursive=True)
    earlier = _written_documents(out / "feeds")
    publisher.remember(_channels_of(earlier))
    documents = [(path, fmt) for path in sorted(publisher.snapshot.listings) for fmt in FeedFormat]
    changed = [doc for doc in documents if not _holds_feed(_target(out, *doc), _feed(publisher, *doc))]
    floors: dict[str, datetime] = {}
    for path, fmt in changed:
        written_at = earlier.get(f"{path}.{fmt.value}")
        if written_at is not None and written_at >= _feed(publisher, path, fmt).last_modified:
            floors[path] = max(written_at, floors.get(path, written_at))
    if floors:  # other bytes, dated no later than the file an earlier run (whose stamps are lost) wrote
        publisher.date_after(floors)  # which dates every document of those channels anew
        changed = list(dict.fromkeys([*changed, *((path, fmt) for path in floors for fmt in FeedFormat)]))
    with atomic_files() as write:
        for doc in changed:
            feed, target = _feed(publisher, *doc), _target(out, *doc)
            mtime = feed.last_modified.timestamp()
            write(_gz(target), feed.gzip_body, mtime)  # renamed in this order: the `.gz` first, as before
            write(target, feed.body, mtime)
    written = [_target(out, *doc) for doc in documents]
    _remove_stale(out / "feeds", keep=set(written))
    _write_if_changed(out / NGINX_RULES, nginx_rules(publisher.settings))
    return [*written, _write_opml(publisher.snapshot.opml, publisher.snapshot.opml_gzip, out / "feeds.opml")]


def _written_documents(folder: Path) -> dict[str, datetime]:
    """`category/news.atom` -> when it was dated, for each feed document an earlier build left in `folder`."""
    found = {}
    for document in folder.rglob("*") if folder.is_dir() else ():
        if document.name.endswith(_FEED_SUFFIXES) and (at := _written_at(document)) is not None:
            found[document.relative_to(folder).as_posix()] = at
    return found


def _channels_of(documents: dict[str, datetime]) -> dict[str, datetime]:
    """Channel path -> when its documents were last dated (the latest of its formats)."""
    found: dict[str, datetime] = {}
    for name, at in documents.items():
        path = name.rsplit(".", 1)[0]
        if Channel.at(path) is not None:
            found[path] = max(at, found.get(path, at))
    return found


def nginx_rules(settings: Settings) -> bytes:
    """`location` blocks for deploy/nginx.conf's `include`: 301 for renamed feeds, 410 for retired ones."""
    lines = ["# Written by `feedsvc build` from FEEDSVC_REDIRECTS and FEEDSVC_RETIRED; deploy/nginx.conf includes it.",
             "# nginx reads it when it starts or reloads: run `nginx -s reload` after it changes."]
    for old, new in settings.redirects:
        target = Channel.at(new)
        assert target is not None  # checked when the settings were read
        for fmt in FeedFormat:
            # Quoted, and percent-encoded outside URL characters: nothing in the base URL can end the
            # directive (;), open a block ({) or name a variable ($). The query goes along, as in `serve`.
            location = quote(feed_url(settings, target, fmt), safe=":/?#[]@!&()*+,=%")
            lines.append(f'location = /feeds/{old}.{fmt.value} {{ return 301 "{location}$is_args$args"; }}')
    for path in settings.retired:
        lines += [f"location = /feeds/{path}.{fmt.value} {{ return 410; }}" for fmt in FeedFormat]
    return "\n".join([*lines, ""]).encode()


def _write_if_changed(target: Path, data: bytes) -> None:
    if not _holds(target, data):
        write_atomically(target, data)


def _holds_feed(target: Path, feed: RenderedFeed) -> bool:
    return _holds(target, feed.body) and _holds(_gz(target), feed.gzip_body)


def _written_at(target: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(target.stat().st_mtime), UTC)
    except OSError:
        return None


def _feed(publisher: Publisher, path: str, fmt: FeedFormat) -> RenderedFeed:
    feed = publisher.page(path, fmt)
    assert feed is not None  # every listing has a first page
    return feed


def _target(out: Path, path: str, fmt: FeedFormat) -> Path:
    return out / "feeds" / f"{path}.{fmt.value}"


def _write_opml(opml: bytes, opml_gz: bytes, target: Path) -> Path:
    """The list has no date of its own (the server sends no Last-Modified for it): its files are
    dated when it changes, after any earlier version, so a static server's validators move too."""
    if not (_holds(target, opml) and _holds(_gz(target), opml_gz)):
        earlier = _written_at(target)
        mtime = max(int(datetime.now(UTC).timestamp()), int(earlier.timestamp()) + 1 if earlier else 0)
        write_atomically(_gz(target), opml_gz, mtime=mtime)
        write_atomically(target, opml, mtime=mtime)
    return target


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
