"""The content folder as a set of posts, re-reading only the files whose stat changed.

Walks the folder (or, after a file event, just the paths it names), skips editor temp files
and anything a symlink would take outside it, trusts what a previous run read while the stat
matches, parses many files on every core, and keeps each post's last good version while its
file is broken or still being written (a half-saved edit must not make a post vanish).
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
import time
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from feedsvc.config import Settings
from feedsvc.content import load_post
from feedsvc.model import EPOCH, Post, Problem
from feedsvc.unique import ONE_BY_ONE, Published
from feedsvc.walk import (
    DIGEST_BITS,
    Digest,
    Found,
    Listing,
    Signature,
    Version,
    end_with,
    file_digest,
    is_post_file,
    list_elsewhere,
    list_folder,
    list_into,
    mtime_ns,
    newest_mtime_ns,
    packed,
    relative,
    signature_of,
    stat_into,
    unpacked,
)

__all__ = ["CachedFile", "ContentFolder", "ScanResult", "is_post_file", "load_files", "read_version"]

CachedFile = tuple[Version, Post | None, Problem | None]
PARALLEL_FROM = 2000  # files to parse before a process pool pays for itself
LIST_ELSEWHERE_FROM = 50_000  # known files from which a full scan lists the folder in a process of its own
_SKEW_NS = 2_000_000_000  # an mtime further ahead of the clock than this is a wrong clock, not a write in progress


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanResult:
    # Every published post: the folder's own, good until its next scan (a copy was a million-post pass per edit).
    posts: Collection[Post]
    problems: tuple[Problem, ...]
    changed: int  # files (re)read or removed since the last scan
    folder_ok: bool = True
    unsettled: bool = False  # a file changed too recently to trust; scan again after `settle` seconds
    # Since the previous scan of the same folder: the posts that left and those that came (an edit
    # is both), so a build can update rather than redo; None when not known (then everything counts).
    left: tuple[Post, ...] | None = None
    came: tuple[Post, ...] | None = None
    by_source: Mapping[str, Post] | None = None  # `posts` by file; likewise the folder's own
    warnings: tuple[Problem, ...] = ()  # not problems (the posts are published): entry ids that changed
    # A first scan that found every file as the cache left it (same files, same versions): the
    # posts are the ones the cached stamps were made for, unless the clock has since made one due.
    as_cached: bool = False


ID_CHANGE_DAYS = 14  # how long a changed entry id is warned about; readers will have seen both ids by then


def _id_warning(source: str, old: str, new: str) -> Problem:
    return Problem(path=source, line=None, message=(
        f"its entry id changed from {old} to {new} (was its date or slug edited?): feed readers will show it "
        f"again as a new post. To keep the old id, add this line to its front matter:  id: {old}"))


class ContentFolder:
    """Scans a folder of posts; each scan reads only new or changed files."""

    def __init__(self, settings: Settings, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.wall_clock = wall_clock
        self.root = settings.content_dir
        self._entries: dict[str, CachedFile] = {}  # source -> (version, last good post, problem)
        self._scanned = False  # the first scan reads everything: there is no last version to keep
        self._walk_problems: dict[str, Problem] = {}  # symlinks out, unreadable folders: by path
        self._unreadable: set[str] = set()  # folders that could not be listed ("" is the root): their posts stay
        self._future: dict[str, Problem] = {}  # files whose mtime is ahead of the clock: published, and said so
        self._unsettled: set[str] = set()  # files too fresh to read at the last scan
        self._seed: dict[str, CachedFile] = {}  # what a previous run read (see seed)
        self._seed_digest: Digest | None = None  # the digest of the seed's files and versions (see walk.digest)
        self.digest: Digest = 0  # of every entry's source and version, kept up to date by _put and _drop
        self._prefix = str(self.root.resolve()) + os.sep  # cut from paths to name them in problems
        self._touched: set[str] = set()  # files whose entry changed since the last result
        self._file_problems: dict[str, Problem] = {}  # the entries' problems, kept up to date from `_touched`
        self._published = Published(settings)
        # source -> (the id its post had, the id it has now, when that was seen), while the two differ:
        # a reader shows such a post twice. Kept for ID_CHANGE_DAYS, across restarts (see parsecache).
        self.id_changes: dict[str, tuple[str, str, float]] = {}
        self._was: dict[str, Post] = {}  # what the last run read of files changed since: their old ids
        self._listing: Future[Listing] | None = None  # begun by list_ahead, for the next full scan
        # That listing and its files not held as found, compared beside the rebuilds (see list_ahead).
        self._compared: tuple[Listing, Collection[tuple[str, Version]]] | None = None
        self._looked: set[str] | None = None  # paths file events named since list_ahead, after a first scan

    @property
    def big(self) -> bool:
        """Big enough that a full scan lists the folder in a process of its own."""
        return len(self._entries) >= LIST_ELSEWHERE_FROM

    def list_ahead(self) -> Future[Listing] | None:
        """Begin the next full scan's listing in another process, so that scan need not wait for it: a
        restart's first scan (the listing runs while the cache loads), or a periodic rescan (file events
        go on meanwhile; the files they name are looked at again by that scan, since the listing may
        have seen them before they changed). None if a listing is already under way.

        It is done once its files are unpickled and compared with those held too, outside the lock
        file events wait on (at a million files, a second of it), unless its digest says there is
        nothing to compare. Comparing beside rebuilds is sound: a file a rebuild changes meanwhile is
        one its event named, and the scan looks at those again.
        """
        if self._listing is not None:
            return None
        if self._scanned:
            self._looked = set()
        self._prefix = str(self.root.resolve()) + os.sep
        ready: Future[Listing] = Future()

        def unpack(listed: Future[Listing]) -> None:
            try:
                listing = listed.result()
                if self._looked or listing.digest() not in (self.digest, self._seed_digest):
                    self._compared = (listing, _differing(self._entries, listing.found()))
            except BaseException as exc:  # the scan lists the folder itself (see _walk)
                ready.set_exception(exc)
            else:
                ready.set_result(listing)

        list_elsewhere(self._prefix.rstrip(os.sep), self.settings.extensions).add_done_callback(unpack)
        self._listing = ready
        return ready

    def seed(self, cached: dict[str, CachedFile], digest: Digest | None = None) -> None:
        """What a previous run read (taken, not copied), trusted where a file's version is still the same;
        `digest`: walk.digest of its files' versions, which a listing with the same one need not compare."""
        self._seed, self._seed_digest = cached, digest

    def scan(self, paths: Iterable[str] | None = None) -> ScanResult:
        """Look at every file, or only at `paths` (absolute, from file events) once a full scan has run."""
        if not self.root.is_dir():
            # Keep serving the last good posts: a missing folder is often an unmounted volume. At a
            # start, they are what the last run read; the folder is compared once it is back.
            if not self._scanned and not self._entries and self._seed:
                for source, entry in self._seed.items():
                    self._put(source, entry)
                self._touched.update(self._seed)
            problem = Problem(path=str(self.root), line=None, message="content folder is missing")
            return self._result([problem], changed=0, folder_ok=False)
        if paths is None or not self._scanned:
            listing, looked = self._walk(), self._looked
            compared, self._looked, self._compared = self._compared, None, None
            self._walk_problems = {p.path: p for p in listing.problems}
            self._unreadable = listing.unreadable
            if not looked and ((as_cached := self._as_it_was(listing)) or self._as_it_is(listing)):
                return self._result(list(self._walk_problems.values()), changed=0, folder_ok=not self._unreadable,
                                    as_cached=as_cached)
            found, again = (listing.found(), set()) if not looked else self._as_now(listing.found(), looked)
            ahead = compared[1] if compared is not None and compared[0] is listing else None
            differ = _differing(self._entries, found, ahead=ahead, again=again)
            gone = _missing(self._entries, found, differ)
        else:
            asked = {*paths, *self._unsettled}
            if self._looked is not None:
                self._looked |= asked
            found, gone = self._look_at(asked)
            differ = _differing(self._entries, found)
        gone = {source for source in gone if not self._hidden(source)}  # unreadable is not deleted
        for source in gone:
            self._drop(source)
            self._future.pop(source, None)
        self._touched |= gone
        stale = self._to_read(found, differ)
        for (source, _, signature), result in zip(stale, load_files(stale, self.settings), strict=True):
            self._store(source, signature, result)
        return self._result(list(self._walk_problems.values()), changed=len(gone) + len(stale),
                            folder_ok=not self._unreadable, unsettled=bool(self._unsettled))

    def _as_it_was(self, listing: Listing) -> bool:
        """A first scan that finds every file as the cache saw it takes the cache whole: at a million
        files, the listing's digest against the saved one, not a million comparisons."""
        if (self._scanned or self._entries or not self._seed or self._seed_digest is None
                or self._seed_digest != listing.digest()):
            return False
        self._entries, self._seed, self.digest = self._seed, {}, listing.digest()
        now_ns = int(self.wall_clock() * 1e9)
        if not self._none_ahead(newest_mtime_ns(version for version, _, _ in self._entries.values()), self._entries,
                                now_ns):
            self._note_future({source: version for source, (version, _, _) in self._entries.items()}, now_ns)
        self._touched.update(self._entries)
        self._scanned = True
        self._unsettled = set()
        return True

    def _as_now(self, found: Found, looked: set[str]) -> tuple[Found, set[str]]:
        """A listing made while file events were handled, with the paths they named looked at again
        now; and the files looked at again (in the listing, or found now)."""
        found = dict(found)
        again: set[str] = set()
        for path in looked:
            source = self._relative(path)
            if found.pop(source, None) is not None:
                again.add(source)
            if not is_post_file(os.path.basename(path), self.settings.extensions):  # a folder, or one that was
                below = source + "/"
                for inside in [s for s in found if s.startswith(below)]:
                    again.add(inside)
                    del found[inside]
        now = self._look_at(looked)[0]
        found.update(now)
        again.update(now)
        return found, again

    def _as_it_is(self, listing: Listing) -> bool:
        """A rescan that lists every file as held: at a million files the listing's digest (made in
        the process that listed them) against the one kept up to date here, not a million comparisons."""
        if not (self._scanned and listing.digested and not self._unsettled and listing.digest() == self.digest):
            return False
        now_ns = int(self.wall_clock() * 1e9)
        for source in list(self._future):  # the clock has moved: is it ahead of them still?
            entry = self._entries.get(source)
            if entry is None or mtime_ns(entry[0]) <= now_ns + _SKEW_NS:
                del self._future[source]
        return True

    def _put(self, source: str, entry: CachedFile) -> None:
        if (old := self._entries.get(source)) is not None:
            self.digest = (self.digest - file_digest(source, old[0])) & DIGEST_BITS
        self._entries[source] = entry
        self.digest = (self.digest + file_digest(source, entry[0])) & DIGEST_BITS

    def _drop(self, source: str) -> None:
        if (old := self._entries.pop(source, None)) is not None:
            self.digest = (self.digest - file_digest(source, old[0])) & DIGEST_BITS

    def _to_read(self, found: Found, differ: Iterable[tuple[str, Version]]) -> list[tuple[str, str, Signature]]:
        """The files whose stat changed (`differ`: those of `found` not held as found) and that have
        settled; the rest are known or wait (`_unsettled`)."""
        cached, self._seed = self._seed, {}
        now_ns = int(self.wall_clock() * 1e9)
        settle_ns = int(self.settings.settle * 1e9) if self._scanned else 0
        self._scanned = True
        self._unsettled = set()
        self._note_future(found, now_ns)
        # Not `cached.keys() - found.keys() - ...`: with the cache taken, that still went through all
        # of `_entries`, a million keys on every file event.
        for source in [s for s in cached if s not in found and s not in self._entries]:
            if self._hidden(source):  # unreadable now: what the last run read is the best we have
                self._put(source, cached[source])
                self._touched.add(source)
        stale: list[tuple[str, str, Signature]] = []
        for source, version in differ:
            if source in cached and cached[source][0] == version:
                self._put(source, cached[source])
                self._touched.add(source)
                continue
            if source in cached and (was := cached[source][1]) is not None:
                self._was[source] = was  # changed while we were away: its new id is compared with this one
            path = self._prefix + source
            if settle_ns and now_ns - settle_ns < mtime_ns(version) <= now_ns + _SKEW_NS:
                self._unsettled.add(path)  # still being written, perhaps: keep the last version for now
            else:
                stale.append((source, path, unpacked(version)))
        return stale

    def _note_id(self, source: str, was: Post, now: str) -> None:
        if was.draft or was.date.timestamp() > self.wall_clock():  # never published: readers know no id of it
            return
        original, _, since = self.id_changes.get(source, (was.id, was.id, self.wall_clock()))
        if now == original:  # the id readers know (unchanged, or an `id:` line brought it back)
            self.id_changes.pop(source, None)
        else:
            self.id_changes[source] = (original, now, since)

    def _expire_id_changes(self) -> None:
        cutoff = self.wall_clock() - ID_CHANGE_DAYS * 86400
        gone = [s for s, (_, _, seen) in self.id_changes.items() if seen < cutoff or (
            s not in self._entries and s not in self._touched)]
        for source in gone:
            del self.id_changes[source]

    def _hidden(self, source: str) -> bool:
        """Below a folder that could not be listed: not known to be gone."""
        return any(not folder or source.startswith(folder + "/") for folder in self._unreadable)

    def _note_future(self, found: Mapping[str, Version], now_ns: int) -> None:
        """Say which files are dated ahead of the clock; the newest mtime first, so usually none is looked at."""
        if self._none_ahead(newest_mtime_ns(found.values()), found, now_ns):
            return
        for source, version in found.items():
            if (mtime := mtime_ns(version)) <= now_ns + _SKEW_NS:
                self._future.pop(source, None)
            elif source not in self._future:
                when = datetime.fromtimestamp(mtime // 1_000_000_000, UTC).isoformat()
                self._future[source] = Problem(path=source, line=None, message=(
                    f"modified time {when} is in the future (a wrong clock?); published, and its feeds "
                    "are dated no later than now"))

    def _none_ahead(self, latest: int | None, sources: Container[str], now_ns: int) -> bool:
        """Whether no file is dated ahead of the clock (the newest mtime says); if so, none of these is said to be."""
        if latest is not None and latest > now_ns + _SKEW_NS:
            return False
        for source in [source for source in self._future if source in sources]:
            del self._future[source]
        return True

    def changed_near(self, source: str) -> datetime:
        """When the folder a file was in last changed (removing a file dates its folder); for deleted posts."""
        folder = os.path.dirname(os.path.join(self._prefix, source))
        while folder.startswith(self._prefix.rstrip(os.sep)):
            try:
                st = os.stat(folder)
                return _changed_at(st.st_mtime_ns, st.st_ctime_ns)
            except OSError:  # gone with the file: its parent changed then
                folder = os.path.dirname(folder)
        return EPOCH

    def read(self, source: str, revision: str) -> bytes | None:
        """The bytes of a post file, if it is still the version `revision` names (see read_version):
        bodies are read under the same root and rules as the front matter was."""
        return read_version(self._prefix, source, revision)

    def state(self) -> dict[str, CachedFile]:
        """What a later run may trust without reading the files again (see parsecache)."""
        return dict(self._entries)

    def _store(self, source: str, signature: Signature, result: Post | Problem | None) -> None:
        self._touched.add(source)
        old = self._entries.get(source)
        was = old[1] if old is not None else self._was.pop(source, None)
        if isinstance(result, Post) and was is not None:
            self._note_id(source, was, result.id)
        if result is None:  # deleted between the listing and the read
            self._drop(source)
            return
        if isinstance(result, Post):
            self._put(source, (packed(signature), result, None))
        else:  # keep serving the last good version while the file is broken
            self._put(source, (packed(signature), old[1] if old else None, result))

    def _look_at(self, paths: set[str]) -> tuple[Found, set[str]]:
        """Stat just these paths: a file, a folder that appeared (walked), or something now gone."""
        found: Found = {}
        gone: set[str] = set()
        for path in paths:
            if not path.startswith(self._prefix):
                continue
            source = self._relative(path)
            below = source + "/"
            self._walk_problems = {k: v for k, v in self._walk_problems.items()
                                   if k != source and not k.startswith(below)}
            self._unreadable = {f for f in self._unreadable if f != source and not f.startswith(below)}
            problems: list[Problem] = []
            if os.path.isdir(path) and not os.path.islink(path):
                list_into(path, self._prefix, self.settings.extensions, found, problems, self._unreadable)
            elif os.path.lexists(path) and is_post_file(os.path.basename(path), self.settings.extensions):
                stat_into(path, self._prefix, found, problems, symlink=os.path.islink(path))
            if source in self._entries and source not in found:
                gone.add(source)
            if not is_post_file(os.path.basename(path), self.settings.extensions):  # a folder, or one that was
                gone |= {s for s in self._entries if s.startswith(below) and s not in found}
            self._walk_problems.update((p.path, p) for p in problems)
        return found, gone

    def _result(self, problems: list[Problem], *, changed: int, folder_ok: bool = True,
                unsettled: bool = False, as_cached: bool = False) -> ScanResult:
        self._expire_id_changes()
        touched, self._touched = self._touched, set()
        left: list[Post] | None
        came: list[Post] | None

        def every_post() -> Iterator[Post]:
            return (post for _, post, _ in self._entries.values() if post is not None)

        if len(touched) > ONE_BY_ONE or not self._published.by_source:  # a first scan, a `git pull`: all at once
            self._file_problems = {s: problem for s, (_, _, problem) in self._entries.items() if problem is not None}
            self._published.rebuild(every_post())
            left = came = None  # not told apart: what builds on this scan starts again too
        else:
            changes: dict[str, Post | None] = {}
            for source in touched:
                entry = self._entries.get(source)
                changes[source] = entry[1] if entry else None
                if entry is not None and entry[2] is not None:
                    self._file_problems[source] = entry[2]
                else:
                    self._file_problems.pop(source, None)
            left, came = self._published.update(changes, everything=every_post)
        problems += self._published.clashes
        problems += self._file_problems.values()
        problems += self._future.values()
        problems.sort(key=lambda p: (p.path, p.line or 0))
        warnings = tuple(_id_warning(source, old, new) for source, (old, new, _) in sorted(self.id_changes.items()))
        return ScanResult(posts=self._published.by_source.values(), problems=tuple(problems), warnings=warnings,
                          changed=changed, folder_ok=folder_ok, unsettled=unsettled, as_cached=as_cached,
                          left=None if left is None else tuple(left), came=None if came is None else tuple(came),
                          by_source=self._published.by_source)

    def _walk(self) -> Listing:
        """Every post file below the root, by its relative path, with its version."""
        listing, self._listing = self._listing, None
        root = str(self.root.resolve())
        if listing is None or self._prefix != root + os.sep:
            self._prefix = root + os.sep
            # A big folder is listed by another process: this one's interpreter stays free for requests.
            listing = list_elsewhere(root, self.settings.extensions) if self.big else None
        try:
            return listing.result() if listing is not None else list_folder(root, self.settings.extensions)
        except Exception:  # the other process could not start or died: list here
            return list_folder(root, self.settings.extensions)

    def _relative(self, path: str) -> str:
        return relative(path, self._prefix)


def _differing(held: Mapping[str, CachedFile], found: Found, *, ahead: Collection[tuple[str, Version]] | None = None,
               again: Collection[str] = ()) -> Collection[tuple[str, Version]]:
    """The found files not held as they are now: new, or another version.

    At a million files this pass, a million lookups in a million, is most of a full rescan, which
    file events wait on: it is made once, and nothing else goes through every file. Nothing held
    (a first scan): every file, without a list of a million pairs. `ahead`: this answer, made
    earlier (see ContentFolder.list_ahead), good but for the files looked at `again` since.
    """
    if ahead is not None:
        if not again:
            return ahead
        return [*(pair for pair in ahead if pair[0] not in again),
                *_differing(held, {source: found[source] for source in again if source in found})]
    if not held:
        return found.items()
    get = held.get
    return [(source, version) for source, version in found.items() if (e := get(source)) is None or e[0] != version]


def _missing(held: Mapping[str, object], found: Found, differ: Collection[tuple[str, Version]]) -> Collection[str]:
    """The held files a listing did not find (`differ`: see _differing). Usually none, which a
    count says, where a set difference built a set of a million names."""
    if not held:
        return ()
    new = sum(source not in held for source, _ in differ)
    if len(found) - new == len(held):
        return ()
    return held.keys() - found.keys()


def load_file(source: str, path: str, signature: Signature, settings: Settings) -> Post | Problem | None:
    """One post file -> Post or Problem; None if it was deleted before it could be read."""
    limit = settings.max_post_bytes
    if signature[1] > limit:
        return _too_large(source, limit)
    try:
        with open(path, "rb", buffering=0) as f:  # unbuffered: the buffer's object and copy were ~5% of a parse
            # read(limit) would allocate `limit` bytes for every file; the stat says how much there is
            data = _read_up_to(f, signature[1] + 1)
            if len(data) > signature[1]:  # grew since the stat
                data += _read_up_to(f, limit + 1 - len(data))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Problem(path=source, line=None, message=exc.strerror or str(exc))
    if len(data) > limit:
        return _too_large(source, limit)
    return load_post(source, data, settings, revision=revision_of(signature),
                     modified=_changed_at(signature[0], signature[3]))


def _read_up_to(f: BinaryIO, size: int) -> bytes:
    """`size` bytes, or fewer at the end of the file: a buffered file's read(size), from an unbuffered one."""
    chunks = []
    while size > 0 and (chunk := f.read(size)):
        chunks.append(chunk)
        size -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def revision_of(signature: Signature) -> str:
    """A file version as text, kept in its Post: the body is read later only from this same version."""
    return "-".join(f"{part:x}" for part in signature)


def read_version(root: str, source: str, revision: str) -> bytes | None:
    """The bytes of `source` if it is still the version `revision` names, else None.

    For reading a body after the scan, under the scan's rules: opened without blocking (a FIFO
    put in its place cannot hang the reader), and read only if it is a regular file with the
    same inode, size and times, so a symlink swapped to point elsewhere is never followed out.
    (The size was within FEEDSVC_MAX_POST_BYTES when the post was read: it is in the revision.)
    """
    try:
        fd = os.open(os.path.join(root, source), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    with open(fd, "rb", buffering=0) as f:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or revision_of(signature_of(st)) != revision:
                return None
            data = _read_up_to(f, st.st_size)
        except OSError:
            return None
    return data if len(data) == st.st_size else None


def _changed_at(mtime_ns: int, ctime_ns: int) -> datetime:
    """When the file last changed here: its ctime too, since copies that keep an old mtime
    (rsync -a, cp -p, tar) still arrive now, after a reader's last poll."""
    return datetime.fromtimestamp(max(mtime_ns, ctime_ns) // 1_000_000_000, UTC)


def _load_chunk(chunk: list[tuple[str, str, Signature]], settings: Settings) -> list[Post | Problem | None]:
    return [load_file(source, path, signature, settings) for source, path, signature in chunk]


def load_files(files: list[tuple[str, str, Signature]], settings: Settings) -> list[Post | Problem | None]:
    """Parse many files; a cold start of thousands uses every core (YAML parsing is CPU-bound)."""
    cores = os.cpu_count() or 1
    if len(files) < PARALLEL_FROM or cores < 2:
        return _load_chunk(files, settings)
    # fork is cheap and safe while this is the only thread; otherwise start clean interpreters.
    # The only thread has nothing else to do, so it parses too, on the core of the worker it did not start:
    # each chunk it takes is one not pickled twice.
    helping = threading.active_count() == 1
    size = max(250, len(files) // (cores * 32))  # small: whoever finishes first waits at most one chunk
    chunks = [files[i:i + size] for i in range(0, len(files), size)]
    with ProcessPoolExecutor(max_workers=cores - helping,
                             mp_context=multiprocessing.get_context("fork" if helping else "spawn"),
                             initializer=end_with, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_load_chunk, chunk, settings) for chunk in chunks]
        done: dict[int, list[Post | Problem | None]] = {}
        for index in reversed(range(len(chunks)) if helping else ()):
            if not futures[index].cancel():  # the workers have reached it (and all before it)
                break
            done[index] = _load_chunk(chunks[index], settings)
        return [result for index, future in enumerate(futures)
                for result in (done[index] if index in done else future.result())]


def _too_large(source: str, limit: int) -> Problem:
    return Problem(path=source, line=None, message=f"file is over the {limit}-byte limit (FEEDSVC_MAX_POST_BYTES)")
