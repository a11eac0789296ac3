"""The build stage: (last build, scan, time) -> Snapshot, with no clock or lock of its own."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from test_catalog import NOW, post

from feedsvc.build import Built, build_snapshot, changed_feeds
from feedsvc.config import load_settings
from feedsvc.model import Post, Snapshot
from feedsvc.scan import ScanResult

SETTINGS = load_settings(env={}, base_url="https://news.example.org", cache_dir="off")
FOLDER_CHANGED = datetime(2026, 1, 10, tzinfo=UTC)
FIRST = Built()  # no build before


def scan(*posts: Post) -> ScanResult:
    return ScanResult(posts=posts, problems=(), changed=len(posts))


def build(result: ScanResult, previous: Built = FIRST, now: datetime = NOW) -> tuple[Snapshot, Built, list[str]]:
    rendered: list[str] = []

    def html(p: Post) -> str:
        rendered.append(p.slug)
        return f"<p>{p.slug}</p>"

    snapshot, built = build_snapshot(result, previous, settings=SETTINGS, now=now, html=html,
                                     removed_at=lambda source: FOLDER_CHANGED)
    return snapshot, built, rendered


def test_the_same_scan_twice_gives_the_same_documents_without_rendering_again() -> None:
    first = scan(post("a", 3, categories=("News",)), post("b", 2, categories=("Sport",)))
    snapshot, built, rendered = build(first)
    assert sorted(rendered) == ["a", "b"]  # bodies of the prebuilt feeds, each once
    again, _, rendered_again = build(first, built, now=NOW + timedelta(hours=1))
    assert rendered_again == []
    assert again.feeds == snapshot.feeds and again.stamps == snapshot.stamps


def test_an_edit_dates_and_renders_again_only_its_channels() -> None:
    a, b = post("a", 3, categories=("News",)), post("b", 2, categories=("Sport",))
    snapshot, built, _ = build(scan(a, b))
    edited = dataclasses.replace(b, title="B, corrected", revision="2", modified=NOW - timedelta(minutes=5))
    later, _, _ = build(scan(a, edited), built)
    assert later.feeds["category/news.atom"] is snapshot.feeds["category/news.atom"]
    assert later.feeds["category/sport.atom"] != snapshot.feeds["category/sport.atom"]
    moved = {path for path in later.stamps if later.stamps[path] != snapshot.stamps[path]}
    assert moved == {"all", "category/sport"}
    assert later.stamps["all"] == NOW - timedelta(minutes=5)
    urls = changed_feeds(SETTINGS, snapshot, later)
    assert sorted(urls) == sorted(f"https://news.example.org/feeds/{p}.{f}"
                                  for p in ("all", "category/sport") for f in ("atom", "rss", "json"))


def test_a_deleted_post_keeps_its_channel_answering_dated_when_its_folder_changed() -> None:
    a, b = post("a", 30, categories=("News",)), post("b", 20, categories=("Sport",))
    _, built, _ = build(scan(a, b))
    later, _, _ = build(scan(a), built)
    assert later.listings["category/sport"].posts == ()
    assert later.stamps["category/sport"] == FOLDER_CHANGED
