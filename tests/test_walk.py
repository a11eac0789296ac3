"""Listing the folder: in this process or another, the same files, versions and problems; and a
restart that finds every file as cached is told so (it then skips re-checking a million posts)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import WritePost, examples
from hypothesis import given, settings
from hypothesis import strategies as st

from feedsvc import scan as scan_module
from feedsvc.config import Settings
from feedsvc.parsecache import ParseCache
from feedsvc.scan import ContentFolder
from feedsvc.walk import digest, list_elsewhere, list_folder, packed, signature_of, unpacked

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_UINT64 = st.integers(min_value=0, max_value=2**64 - 1)


@settings(max_examples=examples(300), deadline=None)
@given(mtime=_INT64, size=_UINT64, inode=_UINT64, ctime=_INT64)
def test_a_version_unpacks_to_its_signature(mtime: int, size: int, inode: int, ctime: int) -> None:
    assert unpacked(packed((mtime, size, inode, ctime))) == (mtime, size, inode, ctime)


@settings(max_examples=examples(200), deadline=None)
@given(files=st.dictionaries(st.text(min_size=1), _UINT64.map(lambda n: packed((0, n, 0, 0))), max_size=20))
def test_a_listing_digest_depends_on_files_and_versions_not_order(files: dict[str, int]) -> None:
    assert digest(files.items()) == digest(reversed(list(files.items())))
    if files:
        source = next(iter(files))
        assert digest({**files, source: files[source] + 1}.items()) != digest(files.items())
        assert digest({k: v for k, v in files.items() if k != source}.items()) != digest(files.items())


@settings(max_examples=examples(300), deadline=None)
@given(a=st.tuples(_INT64, _UINT64, _UINT64, _INT64), b=st.tuples(_INT64, _UINT64, _UINT64, _INT64))
def test_the_newest_mtime_is_the_largest_version(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> None:
    if a[0] != b[0]:
        assert (packed(a) > packed(b)) == (a[0] > b[0])
    assert (packed(a) == packed(b)) == (a == b)


@pytest.fixture
def untidy_folder(content_dir: Path, write_post: WritePost, tmp_path: Path) -> Path:
    """Posts nested deep, hidden and editor files, a symlink out, an unreadable folder."""
    write_post("a.md", title="A")
    write_post("2025/01/b.txt", title="B")
    write_post("2025/01/.b.txt.swp", title="swap")
    write_post("2025/01/#c.md#", title="autosave")
    write_post(".hidden/d.md", title="hidden")
    (tmp_path / "outside.md").write_text("---\ntitle: out\n---\n", "utf-8")
    (content_dir / "2025" / "out.md").symlink_to(tmp_path / "outside.md")
    locked = content_dir / "locked"
    locked.mkdir()
    write_post("locked/e.md", title="E")
    locked.chmod(0)
    yield content_dir
    locked.chmod(0o755)


def test_another_process_lists_the_folder_as_this_one_does(untidy_folder: Path) -> None:
    root = str(untidy_folder.resolve())
    here = list_folder(root, (".md", ".txt"))
    there = list_elsewhere(root, (".md", ".txt")).result(timeout=60)
    assert (there.found(), there.problems, there.unreadable) == (here.found(), here.problems, here.unreadable)
    assert there.digest() == here.digest()
    found, problems, unreadable = here.found(), here.problems, here.unreadable
    assert set(found) >= {"a.md", "2025/01/b.txt"} and not {"2025/01/.b.txt.swp", ".hidden/d.md"} & set(found)
    assert "2025/out.md" in {p.path for p in problems} and "2025/out.md" not in found
    if os.geteuid() != 0 and sys.platform != "win32":  # root reads any folder
        assert unreadable == {"locked"}


def _scan_sources(settings: Settings, *, big: bool, ahead: bool, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(scan_module, "LIST_ELSEWHERE_FROM", 0 if big else 10**9)
    folder = ContentFolder(settings)
    if ahead:
        folder.list_ahead()
    first = folder.scan()
    second = folder.scan()  # a periodic rescan: with known files, listed elsewhere when "big"
    assert [p.source for p in second.posts] == [p.source for p in first.posts]
    assert second.changed == 0
    return sorted(p.source for p in first.posts)


def test_a_scan_finds_the_same_posts_wherever_the_folder_is_listed(
        write_post: WritePost, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(5):
        write_post(f"2025/{n:02}/post-{n}.md", title=f"Post {n}", date=f"2025-01-{n + 1:02}-08-00-00")
    settings = make_settings()
    expected = _scan_sources(settings, big=False, ahead=False, monkeypatch=monkeypatch)
    assert len(expected) == 5
    assert _scan_sources(settings, big=True, ahead=False, monkeypatch=monkeypatch) == expected
    assert _scan_sources(settings, big=True, ahead=True, monkeypatch=monkeypatch) == expected


def test_a_restart_is_told_whether_it_found_every_file_as_cached(
        write_post: WritePost, make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    write_post("a.md", title="A")
    write_post("b.md", title="B", date="2025-02-01")
    settings = make_settings(cache_dir=str(tmp_path / "cache"))
    folder = ContentFolder(settings)
    assert not folder.scan().as_cached  # read from the files
    ParseCache(settings).save_state(files=folder.state(), feeds={}, stamps={}, bodies={}, listing=folder.digest)

    def restarted() -> ContentFolder:
        cached = ParseCache(settings).load()
        again = ContentFolder(settings)
        again.seed(cached.files, digest=cached.listing)
        return again

    again = restarted()
    assert again.scan().as_cached
    assert not again.scan().as_cached  # only the first scan after a start can be
    write_post("b.md", title="B, edited", date="2025-02-01")
    assert not restarted().scan().as_cached
    (settings.content_dir / "b.md").unlink()
    assert not restarted().scan().as_cached
    write_post("b.md", title="B", date="2025-02-01")  # back, as another file: the posts it finds are still read
    assert [p.title for p in restarted().scan().posts] == ["A", "B"]


def test_the_folder_keeps_the_digest_of_what_it_holds(
        write_post: WritePost, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the changes and scans, the digest kept a file at a time is that of every entry held:
    a rescan that matches it skips the comparison, so a wrong one would hide a change."""
    import random

    monkeypatch.setattr(scan_module, "LIST_ELSEWHERE_FROM", 0)  # listings with a digest, as for a big folder
    settings = make_settings()
    folder = ContentFolder(settings)
    rng = random.Random(7)
    names = [f"{n % 3}/post-{n}.md" for n in range(12)]
    for step in range(40):
        name = rng.choice(names)
        path = settings.content_dir / name
        if path.exists() and rng.random() < 0.3:
            path.unlink()
        elif rng.random() < 0.15:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("---\ntitle: [unclosed\n---\n", "utf-8")  # broken: kept with its last good post
        else:
            write_post(name, title=f"Step {step}", date=f"2025-01-{step % 28 + 1:02}")
        folder.scan([str(path)] if rng.random() < 0.6 else None)
        held = {source: entry[0] for source, entry in folder.state().items()}
        assert folder.digest == digest(held.items()), step


@pytest.fixture
def big_folder(write_post: WritePost, make_settings: Callable[..., Settings],
               monkeypatch: pytest.MonkeyPatch) -> ContentFolder:
    """Four posts, scanned once, in a folder listed as a big one is: by another process, with a digest."""
    monkeypatch.setattr(scan_module, "LIST_ELSEWHERE_FROM", 0)
    for n in range(4):
        write_post(f"post-{n}.md", title=f"Post {n}", date=f"2025-01-0{n + 1}")
    folder = ContentFolder(make_settings())
    folder.scan()
    return folder


def test_a_rescan_that_finds_every_file_as_held_compares_none_and_one_that_does_not_finds_the_change(
        big_folder: ContentFolder, write_post: WritePost, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = big_folder
    compared: list[int] = []
    real = ContentFolder._to_read
    monkeypatch.setattr(ContentFolder, "_to_read",
                        lambda self, found, differ: compared.append(len(found)) or real(self, found, differ))
    assert folder.scan().changed == 0 and compared == []
    write_post("post-1.md", title="Post 1, edited without an event", date="2025-01-02")
    result = folder.scan()
    assert result.changed == 1 and compared == [4]
    assert "Post 1, edited without an event" in {p.title for p in result.posts}


def test_a_full_rescan_finds_a_deleted_file_when_another_came_in_its_place(
        big_folder: ContentFolder, write_post: WritePost) -> None:
    """As many files as before, but not the same ones: the count that spares a million-name set
    difference must not hide the one that went."""
    folder = big_folder
    (folder.root / "post-0.md").unlink()
    write_post("post-9.md", title="Post 9", date="2025-01-09")
    result = folder.scan()
    assert result.changed == 2
    assert sorted(folder.state()) == ["post-1.md", "post-2.md", "post-3.md", "post-9.md"]
    assert sorted(p.title for p in result.posts) == ["Post 1", "Post 2", "Post 3", "Post 9"]


def test_a_listing_made_ahead_is_unpickled_and_compared_before_the_scan_takes_it(
        big_folder: ContentFolder, write_post: WritePost, monkeypatch: pytest.MonkeyPatch) -> None:
    """The full scan runs in the lock file events wait on; at a million files, unpickling the
    listing's files took half a second of it. Done beside it, and only when they are needed."""
    import threading

    from feedsvc import walk

    folder = big_folder
    unpickled: list[str] = []  # the threads that unpickled a listing's files
    real = walk.Listing.found

    def found(self: walk.Listing) -> dict[str, int]:
        if isinstance(self._found, bytes):
            unpickled.append(threading.current_thread().name)
        return real(self)

    monkeypatch.setattr(walk.Listing, "found", found)
    listed = folder.list_ahead()
    assert listed is not None
    listed.result(timeout=60)
    assert folder.scan().changed == 0 and unpickled == []  # nothing changed: its digest says so, no files needed
    compared: list[tuple[str, int]] = []  # (thread, files) of each comparison with the files held
    real_differing = scan_module._differing

    def differing(held: dict[str, object], found: dict[str, int], **earlier: object) -> object:
        if earlier.get("ahead") is None:  # else the answer made earlier is taken, nothing compared
            compared.append((threading.current_thread().name, len(found)))
        return real_differing(held, found, **earlier)  # type: ignore[arg-type]

    monkeypatch.setattr(scan_module, "_differing", differing)
    write_post("post-1.md", title="Post 1, edited without an event", date="2025-01-02")
    listed = folder.list_ahead()
    assert listed is not None
    listed.result(timeout=60)
    here = threading.current_thread().name
    assert len(unpickled) == 1 and unpickled[0] != here
    assert len(compared) == 1 and compared[0][0] != here and compared[0][1] == 4  # every file, beside the lock
    assert "Post 1, edited without an event" in {p.title for p in folder.scan().posts}
    assert len(unpickled) == 1 and len(compared) == 1  # the scan took them as they were


def test_a_file_compared_ahead_and_then_changed_again_by_an_event_is_held_as_it_is_last(
        big_folder: ContentFolder, write_post: WritePost) -> None:
    """The listing's comparison saw one version; an event brought another before the scan took it."""
    folder = big_folder
    path = write_post("post-1.md", title="Post 1, edited without an event", date="2025-01-02")
    listed = folder.list_ahead()
    assert listed is not None
    listed.result(timeout=60)  # listed and compared: post-1 is another version
    write_post("post-1.md", title="Post 1, edited again, with its event", date="2025-01-02")
    folder.scan([str(path)])
    result = folder.scan()
    assert [p.title for p in result.posts if p.source == "post-1.md"] == ["Post 1, edited again, with its event"]
    assert folder.state()["post-1.md"][0] == packed(signature_of(os.stat(path)))
    assert folder.scan().changed == 0


def test_a_rescan_listed_ahead_keeps_what_file_events_did_meanwhile(
        write_post: WritePost, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    """The listing began before these changes and may have missed them; the events' files are looked at again."""
    monkeypatch.setattr(scan_module, "LIST_ELSEWHERE_FROM", 0)
    for n in range(4):
        write_post(f"2025/post-{n}.md", title=f"Post {n}", date=f"2025-01-0{n + 1}")
    settings = make_settings()
    folder = ContentFolder(settings)
    folder.scan()
    listing = folder.list_ahead()
    assert listing is not None
    listing.result(timeout=60)  # done before any change: it knows none of them
    root = settings.content_dir
    new = write_post("2025/new.md", title="New", date="2025-02-01")
    edited = write_post("2025/post-1.md", title="Post 1, edited", date="2025-01-02")
    (root / "2025/post-2.md").unlink()
    write_post("2026/inside.md", title="In a new folder", date="2025-03-01")
    for path in (new, edited, root / "2025/post-2.md", root / "2026"):
        folder.scan([str(path)])
    titles = sorted(p.title for p in folder.scan().posts)  # the full rescan, with the listing made before
    assert titles == ["In a new folder", "New", "Post 0", "Post 1, edited", "Post 3"]
    assert folder.list_ahead() is not None  # and the next one begins afresh


@pytest.mark.system  # spawns a listing process per round
@pytest.mark.parametrize("seed", [12, 13, 14])
def test_rescans_listed_and_compared_beside_file_events_hold_the_folder_as_it_is(
        write_post: WritePost, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch,
        seed: int) -> None:
    """Whatever the order of a listing, its comparison (on another thread) and the events' scans,
    a full rescan leaves the folder held exactly as it is: every file at its current version, no
    file that is gone. Changes without an event come only before a listing begins, as a rescan
    promises no more (those after are the next rescan's)."""
    import random

    monkeypatch.setattr(scan_module, "LIST_ELSEWHERE_FROM", 0)
    settings = make_settings()
    root = settings.content_dir
    names = [f"{n % 3}/post-{n}.md" for n in range(10)]
    rng = random.Random(seed)

    def change(step: int) -> Path:
        path = root / rng.choice(names)
        if path.exists() and rng.random() < 0.3:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_post(str(path.relative_to(root)), title=f"Step {step} " + "x" * rng.randrange(5),
                       date=f"2025-01-{step % 28 + 1:02}")
        return path

    for name in names[:6]:
        write_post(name, title=name, date="2025-01-01")
    folder = ContentFolder(settings)
    folder.scan()
    for round_ in range(12):
        for step in range(rng.randrange(3)):  # unannounced: before the listing begins
            change(100 * round_ + step)
        listed = folder.list_ahead()
        assert listed is not None
        if rng.random() < 0.5:
            listed.result(timeout=60)  # compared before the events, else perhaps during them
        for step in range(rng.randrange(4)):
            folder.scan([str(change(100 * round_ + 10 + step))])
        result = folder.scan()
        on_disk = {str(p.relative_to(root)): packed(signature_of(p.stat())) for p in root.rglob("*.md")}
        held = {source: entry[0] for source, entry in folder.state().items()}
        assert held == on_disk, round_
        titles = {p.source: p.title for p in result.posts}
        for source in on_disk:
            assert titles[source] == (root / source).read_text("utf-8").split("title: ")[1].split(" \n")[0].strip()


def test_a_full_rebuild_waits_for_its_listing_without_holding_up_file_events() -> None:
    from concurrent.futures import Future

    from feedsvc.schedule import RebuildSchedule

    calls: list[set[str] | None] = []
    listing: Future[object] = Future()
    schedule = RebuildSchedule(lambda paths: calls.append(paths), interval=3600, debounce=0.0,
                               prepare=lambda: listing)
    import threading

    full = threading.Thread(target=schedule.run, kwargs={"full": True}, daemon=True)
    full.start()
    schedule.run()  # a file event's rebuild, while the listing is still being made
    schedule.nudge(["/content/a.md"])
    assert calls == [set()] and full.is_alive()
    listing.set_result(None)
    full.join(timeout=10)
    assert not full.is_alive() and calls == [set(), None]


def test_a_full_rescan_asked_for_at_start_waits_for_its_listing_outside_the_rebuilds() -> None:
    """`serve` asks for one after its first build; at a million files the listing takes 10 s, and a
    post added meanwhile must not wait for it."""
    import threading
    from concurrent.futures import Future

    from serving import wait_until

    from feedsvc.schedule import RebuildSchedule

    calls: list[set[str] | None] = []
    listing: Future[object] = Future()
    prepared = threading.Event()

    def prepare() -> Future[object]:
        prepared.set()
        return listing

    schedule = RebuildSchedule(lambda paths: calls.append(paths), interval=3600, debounce=0.0, prepare=prepare)
    schedule.start()
    try:
        schedule.nudge(None)
        wait_until(prepared.is_set, 5.0, "the full rescan to begin its listing")
        schedule.nudge(["/content/a.md"])
        wait_until(lambda: calls, 5.0, "the file event's rebuild while the listing is made")
        assert calls == [{"/content/a.md"}]
        listing.set_result(None)
        wait_until(lambda: len(calls) == 2, 5.0, "the full rescan once its listing is there")
        assert calls[1] is None
    finally:
        schedule.shutdown()
