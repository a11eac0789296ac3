"""What makes 100,000 posts cheap: the parse cache, targeted rescans, parsing on every core."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import front_matter_post

from feedsvc import scan
from feedsvc.config import Settings
from feedsvc.publisher import Publisher


@pytest.fixture
def posts(content_dir: Path) -> list[Path]:
    paths = []
    for i in range(12):
        path = content_dir / f"y{i % 3}" / f"post-{i:02d}.md"
        path.parent.mkdir(exist_ok=True)
        path.write_text(front_matter_post(title=f"Post {i}", date=f"2025-01-{i + 1:02d}"), "utf-8")
        paths.append(path)
    (content_dir / "broken.md").write_text("---\ntitle: [\n---\n", "utf-8")
    return paths


@pytest.fixture
def cached_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    return make_settings(cache_dir=str(tmp_path / "cache"))


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    real = scan.load_file

    def counting(source: str, *args: object) -> object:
        reads.append(source)
        return real(source, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(scan, "load_file", counting)
    return reads


def titles(publisher: Publisher) -> list[str]:
    return [p.title for p in publisher.snapshot.listings["all"].posts]


def test_restart_reads_only_what_changed(posts: list[Path], cached_settings: Settings, content_dir: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    first = Publisher(cached_settings)
    first.rebuild()
    first.persist()
    assert len(titles(first)) == 12
    assert cached_settings.cache_folder is not None and not cached_settings.cache_folder.is_relative_to(content_dir)
    posts[0].write_text(front_matter_post(title="Edited while stopped", date="2025-01-01"), "utf-8")
    posts[1].unlink()
    reads = count_reads(monkeypatch)
    second = Publisher(cached_settings)
    second.rebuild()
    assert reads == ["y0/post-00.md"]
    assert "Edited while stopped" in titles(second) and "Post 1" not in titles(second)
    assert second.snapshot.feeds["category/latest.atom"] is not None
    assert [p.path for p in second.snapshot.problems] == ["broken.md"]  # problems come back from the cache too
    assert second.snapshot.feeds["all.atom"].body != first.snapshot.feeds["all.atom"].body


def test_posts_read_from_the_cache_share_their_categories(posts: list[Path], cached_settings: Settings,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """One Term object per category across every post, as a cold build has: at a million posts, a
    copy of each post's categories would be two million objects more."""
    first = Publisher(cached_settings)
    first.rebuild()
    first.persist()
    reads = count_reads(monkeypatch)
    second = Publisher(cached_settings)
    second.rebuild()
    loaded = second.snapshot.listings["all"].posts
    assert len(loaded) == 12 and reads == []  # every post from the cache
    terms = [term for post in loaded for term in post.categories]
    assert {term.name for term in terms} == {"latest", "news"}
    assert len({id(term) for term in terms}) == 2
    assert {id(term) for term in terms} == {id(term) for post in first.snapshot.listings["all"].posts
                                            for term in post.categories}  # the ones content shares


@pytest.mark.parametrize("damage", ["garbage", "truncate", "delete"])
def test_a_damaged_cache_costs_one_full_parse(posts: list[Path], cached_settings: Settings, damage: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    first = Publisher(cached_settings)
    reference = first.rebuild().feeds["all.atom"].body
    first.persist()
    folder = cached_settings.cache_folder
    assert folder is not None
    for file in folder.iterdir():
        if damage == "garbage":
            file.write_bytes(b"not a database" * 100)
        elif damage == "truncate":
            file.write_bytes(file.read_bytes()[:100])
        else:
            file.unlink()
    reads = count_reads(monkeypatch)
    assert Publisher(cached_settings).rebuild().feeds["all.atom"].body == reference
    assert len(reads) == 13


def test_cache_off_and_deleted(posts: list[Path], make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    off = Publisher(make_settings(cache_dir="off")).rebuild()
    folder = tmp_path / "gone-cache"
    publisher = Publisher(make_settings(cache_dir=str(folder)))
    on = publisher.rebuild()
    publisher.persist()
    assert any(folder.iterdir())
    shutil.rmtree(folder)
    again = Publisher(make_settings(cache_dir=str(folder))).rebuild()
    assert off.feeds["all.atom"].body == on.feeds["all.atom"].body == again.feeds["all.atom"].body


def test_file_events_rescan_only_the_named_paths(posts: list[Path], make_settings: Callable[..., Settings],
                                                 content_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    publisher = Publisher(make_settings())
    publisher.rebuild()
    reads = count_reads(monkeypatch)
    unseen = content_dir / "unannounced.md"
    unseen.write_text(front_matter_post(title="Unannounced"), "utf-8")
    posts[2].write_text(front_matter_post(title="Announced edit", date="2025-01-03"), "utf-8")
    publisher.rebuild([str(posts[2])])
    assert reads == ["y2/post-02.md"]
    assert "Announced edit" in titles(publisher) and "Unannounced" not in titles(publisher)
    new_folder = content_dir / "new-section"
    new_folder.mkdir()
    (new_folder / "inside.md").write_text(front_matter_post(title="Inside a new folder"), "utf-8")
    shutil.rmtree(content_dir / "y1")
    publisher.rebuild([str(new_folder), str(content_dir / "y1")])
    assert "Inside a new folder" in titles(publisher)
    assert not any(t in titles(publisher) for t in ("Post 1", "Post 4", "Post 7", "Post 10"))
    publisher.rebuild()  # the periodic full rescan finds what no event announced
    assert "Unannounced" in titles(publisher)


def test_parsing_on_every_core_gives_the_same_posts(posts: list[Path], make_settings: Callable[..., Settings],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    serial = Publisher(make_settings()).rebuild()
    monkeypatch.setattr(scan, "PARALLEL_FROM", 2)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    parallel = Publisher(make_settings()).rebuild()
    assert parallel.feeds["all.atom"].body == serial.feeds["all.atom"].body
    assert parallel.problems == serial.problems


def test_unchanged_restart_renders_nothing(posts: list[Path], cached_settings: Settings,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from feedsvc import build as build_module

    first = Publisher(cached_settings)
    before = first.rebuild().feeds
    first.persist()
    rendered: list[int] = []
    real = build_module.render_feeds
    monkeypatch.setattr(build_module, "render_feeds", lambda jobs, **kw: rendered.append(len(jobs)) or real(jobs, **kw))
    reads = count_reads(monkeypatch)
    assert cached_settings.cache_folder is not None
    [cache_file] = cached_settings.cache_folder.iterdir()
    written = cache_file.stat().st_mtime_ns
    second = Publisher(cached_settings)
    after = second.rebuild().feeds
    second.persist()
    assert reads == [] and sum(rendered) == 0
    assert cache_file.stat().st_mtime_ns == written, "nothing changed, so nothing is written again"
    assert {k: v.body for k, v in after.items()} == {k: v.body for k, v in before.items()}


def test_posts_edited_added_and_deleted_while_stopped_show_after_a_restart(
        posts: list[Path], cached_settings: Settings) -> None:
    first = Publisher(cached_settings)
    first.rebuild()
    first.persist()
    posts[0].write_text(front_matter_post(title="Post 0, edited", date="2025-01-01"), "utf-8")
    posts[1].unlink()
    (posts[2].parent / "new.md").write_text(front_matter_post(title="New", date="2025-02-01"), "utf-8")
    titles = {p.title for p in Publisher(cached_settings).rebuild().posts.values()}
    assert "Post 0, edited" in titles and "Post 0" not in titles
    assert "Post 1" not in titles and "New" in titles and len(titles) == 12


def test_a_file_event_rebuild_leaves_no_cycles_to_collect(posts: list[Path], cached_settings: Settings) -> None:
    """Rebuilds after a file event freeze what they made without a collection (publisher._collector_paused),
    which is right only while they leave no cyclic garbage: what is frozen is never collected."""
    import gc

    publisher = Publisher(cached_settings)
    publisher.rebuild()
    gc.collect()
    gc.disable()
    try:
        for number in range(3):
            posts[0].write_text(front_matter_post(title=f"Edit {number}", date="2025-01-01"), "utf-8")
            publisher.rebuild([str(posts[0])])
            assert gc.collect() == 0
    finally:
        gc.enable()


def test_a_first_build_leaves_next_to_nothing_to_collect(posts: list[Path], cached_settings: Settings) -> None:
    """A process's first build freezes what it made without a collection (at a million posts one took
    3.5 s and found 5 objects): right only while a first build, from the folder or from the cache,
    leaves next to no cyclic garbage."""
    import gc

    def first_build() -> None:
        publisher = Publisher(cached_settings)
        publisher.rebuild()
        publisher.persist()  # for the next one

    for source in ("the folder", "the cache"):
        gc.unfreeze()  # earlier builds froze theirs
        gc.collect()
        gc.freeze()  # what is there now is not this build's garbage
        try:
            first_build()
        finally:
            gc.unfreeze()
        found = gc.collect()
        assert found <= 10, f"a first build from {source}"


def test_a_cache_write_waits_between_its_parts_while_a_rebuild_runs(
        posts: list[Path], cached_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """At a million posts a write takes 20 s: a change made meanwhile is rebuilt first, not beside it."""
    import threading
    import time

    from feedsvc import parsecache

    monkeypatch.setattr(parsecache, "_CHUNK", 4)  # several parts, each a point to give way
    publisher = Publisher(cached_settings)
    publisher.rebuild()
    real_scan = publisher.folder.scan

    def slow_scan(*args: object, **kwargs: object) -> object:
        time.sleep(0.3)
        return real_scan(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(publisher.folder, "scan", slow_scan)
    real_give_way = publisher._after_rebuild
    seen: list[tuple[int, int]] = []  # (builds when a part was due, builds when it was written)

    def give_way() -> None:
        if not seen:  # the first part: a change arrives and its rebuild starts
            threading.Thread(target=publisher.rebuild).start()
            deadline = time.monotonic() + 5
            while not publisher._lock.locked() and time.monotonic() < deadline:
                time.sleep(0.001)
        due = publisher.builds[0]
        real_give_way()
        seen.append((due, publisher.builds[0]))

    monkeypatch.setattr(publisher, "_after_rebuild", give_way)
    publisher._dirty = True
    publisher.persist()
    assert len(seen) >= 3
    assert seen[0][1] == seen[0][0] + 1, "the part waited for the rebuild that was running"


def test_a_bulk_change_of_more_files_than_one_at_a_time_takes(posts: list[Path], cached_settings: Settings) -> None:
    """Over unique.ONE_BY_ONE files at once (a `git pull`) are gone through in one pass, with the same result."""
    from feedsvc.unique import ONE_BY_ONE

    publisher = Publisher(cached_settings)
    publisher.rebuild()
    folder = posts[0].parent.parent / "bulk"
    folder.mkdir()
    for number in range(ONE_BY_ONE + 1):
        (folder / f"bulk-{number:04d}.md").write_text(front_matter_post(title=f"Bulk {number}", date="2025-03-01"),
                                                       "utf-8")
    snapshot = publisher.rebuild()
    titles = {p.title for p in snapshot.posts.values()}
    assert {f"Bulk {number}" for number in range(ONE_BY_ONE + 1)} <= titles and "Post 0" in titles
    posts[0].write_text(front_matter_post(title="Post 0, edited", date="2025-01-01"), "utf-8")
    after = publisher.rebuild([str(posts[0])])  # one file again: applied alone, on top of the bulk pass
    assert "Post 0, edited" in {p.title for p in after.posts.values()} and len(after.posts) == len(snapshot.posts)
