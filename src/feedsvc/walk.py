"""Lists the post files below a folder, each with its version: its stat signature as one int.

The first step of a full scan. At a million files the listing is seconds of Python, so a big
folder is listed in a process of its own (`list_elsewhere`): on the other core while a restart
loads its cache, and without holding the service's interpreter lock while it answers requests
during a periodic rescan. What comes back is small: a path and an int per file.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import operator
import os
import pickle
import signal
import stat
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor

from feedsvc.model import Problem

Signature = tuple[int, int, int, int]  # (mtime_ns, size, inode, ctime_ns)
Version = int  # a Signature packed into one int (see packed): a quarter of the memory, kept per file
Found = dict[str, Version]  # relative path (the post's source) -> version

_HALF = 1 << 63
_LOW = (1 << 64) - 1
_NAME = operator.attrgetter("name")
_SOURCE = operator.itemgetter(0)


def packed(signature: Signature) -> Version:
    """One int for four: each part in 64 bits (times shifted, as they may be before 1970), so two
    versions are equal exactly when their signatures are, and the newest mtime is the largest."""
    mtime_ns, size, inode, ctime_ns = signature
    return (((mtime_ns + _HALF) << 64 | size) << 64 | inode) << 64 | (ctime_ns + _HALF)


def unpacked(version: Version) -> Signature:
    return ((version >> 192) - _HALF, version >> 128 & _LOW, version >> 64 & _LOW, (version & _LOW) - _HALF)


def mtime_ns(version: Version) -> int:
    return (version >> 192) - _HALF


def signature_of(st: os.stat_result) -> Signature:
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def is_post_file(name: str, extensions: tuple[str, ...]) -> bool:
    """Post files by ending; editor swap, backup and hidden temp files never are."""
    if name.startswith((".", "#", "~")) or name.endswith(("~", ".swp", ".swx", ".tmp", ".part")):
        return False
    return name.lower().endswith(extensions)


def relative(path: str, prefix: str) -> str:
    """A path below the folder as a post's source: relative, with `/` between its parts."""
    source = path.removeprefix(prefix)
    return source if os.sep == "/" else source.replace(os.sep, "/")


class Listing:
    """What a listing found: the files (each with its version), problems, unreadable folders ("" is the root).

    From another process the files come as one pickled blob, unpickled only if asked for: a restart
    whose listing has the digest its cache was saved with, or a rescan whose listing has the digest
    of what the folder's owner holds, needs none of them.
    """

    __slots__ = ("_digest", "_found", "problems", "unreadable")

    def __init__(self, found: Found | bytes, problems: list[Problem], unreadable: set[str],
                 digest: Digest | None = None) -> None:
        self._found, self.problems, self.unreadable, self._digest = found, problems, unreadable, digest

    def found(self) -> Found:
        found = self._found
        if isinstance(found, bytes):
            found = self._found = pickle.loads(found)  # our own child process wrote it
        return found

    @property
    def digested(self) -> bool:
        """Whether the digest came with the listing (from another process): comparing it is then free."""
        return self._digest is not None

    def digest(self) -> Digest:
        if self._digest is None:
            self._digest = digest(self.found().items())
        return self._digest


Digest = int  # of a set of files and their versions (see digest)
DIGEST_BITS = (1 << 128) - 1


def file_digest(source: str, version: Version) -> Digest:
    """One file's part of a digest: what a folder owner adds when it takes a file in, and subtracts when it lets go."""
    data = source.encode("utf-8", "surrogatepass") + b"\x00" + version.to_bytes(32, "big")
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")


def digest(files: Iterable[tuple[str, Version]]) -> Digest:
    """Equal for equal sets of (path, version), whatever their order: the sum of each file's part,
    so whoever holds files can keep it up to date a file at a time instead of a million."""
    return sum(file_digest(source, version) for source, version in files) & DIGEST_BITS


def list_folder(root: str, extensions: tuple[str, ...]) -> Listing:
    """Every post file below `root` (a resolved path), depth first, each folder's entries by name."""
    found: Found = {}
    problems: list[Problem] = []
    unreadable: set[str] = set()
    list_into(root, root + os.sep, extensions, found, problems, unreadable)
    return Listing(found, problems, unreadable)


def _list_for_another(root: str, extensions: tuple[str, ...]) -> Listing:
    listing = list_folder(root, extensions)
    found = listing.found()
    blob = pickle.dumps(found, pickle.HIGHEST_PROTOCOL)
    return Listing(blob, listing.problems, listing.unreadable, digest(found.items()))


def list_into(folder: str, prefix: str, extensions: tuple[str, ...], found: Found, problems: list[Problem],
              unreadable: set[str]) -> None:
    """Depth first without recursion: a folder nested 1,000 deep is a folder like any other."""
    stack = [folder]
    while stack:
        current = stack.pop()
        # os.scandir, not pathlib: its entries carry the file type, which halves the syscalls at 100,000 files
        try:
            entries = sorted(os.scandir(current), key=_NAME)
        except OSError as exc:
            unreadable.add(relative(current, prefix) if current != prefix.rstrip(os.sep) else "")
            problems.append(Problem(path=relative(current, prefix), line=None,
                                    message=f"folder unreadable: {exc.strerror or exc}"))
            continue
        folders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif is_post_file(entry.name, extensions):
                    stat_into(entry.path, prefix, found, problems, symlink=entry.is_symlink())
            except OSError as exc:
                problems.append(Problem(path=relative(entry.path, prefix), line=None, message=exc.strerror or str(exc)))
        stack.extend(reversed(folders))


def stat_into(path: str, prefix: str, found: Found, problems: list[Problem], *, symlink: bool) -> None:
    """Add one file: a regular file below the folder (a symlink only if it stays inside)."""
    source = relative(path, prefix)
    try:
        if symlink and not os.path.realpath(path, strict=True).startswith(prefix):
            problems.append(Problem(path=source, line=None,
                                    message="symlink points outside the content folder; not followed"))
            return
        st = os.stat(path)
    except FileNotFoundError:  # deleted since the listing (or a dangling symlink): not a post now
        return
    except (OSError, RuntimeError) as exc:  # a symlink loop, no permission
        problems.append(Problem(path=source, line=None, message=getattr(exc, "strerror", None) or str(exc)))
        return
    if stat.S_ISREG(st.st_mode):
        found[source] = packed(signature_of(st))


def list_elsewhere(root: str, extensions: tuple[str, ...]) -> Future[Listing]:
    """list_folder in a new process (a clean interpreter: this one may have threads), which ends after it."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=end_with, initargs=(os.getpid(),))
    try:
        return pool.submit(_list_for_another, root, extensions)
    finally:
        pool.shutdown(wait=False)


def end_with(parent: int) -> None:
    """Worker start: end with the parent. Killed with -9, it cannot stop its pool, and the workers
    would wait on their queue for good (each holds the queue's other end, so none sees it close)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def newest_mtime_ns(versions: Iterable[Version]) -> int | None:
    """The latest mtime among these versions, compared in C (mtime is a version's top bits)."""
    latest = max(versions, default=None)
    return None if latest is None else mtime_ns(latest)
