"""Change by change equals from scratch: the incremental catalog and unique names against the full passes.

A million posts cannot be sorted again on every edit, so CatalogIndex and Published apply just
the change; these properties drive both through random edits, deletions, clashes, drafts,
future posts and a moving clock, and require the full pass's answer after every step.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from conftest import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedsvc.catalog import CatalogIndex, build_catalog
from feedsvc.config import load_settings
from feedsvc.model import Author, Post, Term
from feedsvc.unique import Published, make_unique

SETTINGS = load_settings(env={}, base_url="https://feeds.example.org")
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SPELLINGS = ["News", "news", "NEWS", "Sport", "Culture"]


@st.composite
def posts(draw: st.DrawFn, source: str) -> Post:
    slug = draw(st.sampled_from(["a", "b", "c", "d", source.removesuffix(".md")]))
    when = NOW + timedelta(hours=draw(st.integers(-48, 6)))
    return Post(source=source, slug=slug, id=draw(st.sampled_from([f"tag:x,2026:{slug}", "tag:x,2026:same"])),
                url=f"https://example.org/{slug}", title=slug, date=when, updated=when,
                categories=tuple(Term(slug=c.lower(), name=c) for c in draw(st.lists(st.sampled_from(SPELLINGS),
                                                                                        max_size=2))),
                tags=tuple(Term(slug=t, name=t) for t in draw(st.lists(st.sampled_from(["ferry", "rail"]),
                                                                       max_size=2))),
                authors=(Author(name=draw(st.sampled_from(["Sam", "Alex"]))),),
                draft=draw(st.booleans()) and draw(st.booleans()), in_feeds=draw(st.booleans()) or draw(st.booleans()))


SOURCES = [f"p{i}.md" for i in range(8)]
steps = st.lists(st.tuples(st.dictionaries(st.sampled_from(SOURCES), st.none() | st.just("post"), max_size=4),
                           st.integers(0, 12)), min_size=1, max_size=8)


def full(files: dict[str, Post], now: datetime) -> tuple[list[Post], object]:
    kept, _ = make_unique(files.values(), SETTINGS)
    catalog = build_catalog(kept, now=now, keep=["tag/gone", "category/news"], hidden=["tag/rail"])
    return kept, catalog


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), plan=steps)
def test_edits_one_at_a_time_give_what_a_full_pass_gives(data: st.DataObject,
                                                          plan: list[tuple[dict[str, str | None], int]]) -> None:
    files: dict[str, Post] = {}
    published, index = Published(SETTINGS), CatalogIndex()
    now = NOW
    for step, (change, hours) in enumerate(plan):
        now += timedelta(hours=hours)  # future posts come due between changes
        changed: dict[str, Post | None] = {}
        for source, what in change.items():
            post = data.draw(posts(source)) if what else None
            if post is None:
                files.pop(source, None)
            else:
                files[source] = post
            changed[source] = post
        left, came = published.update(changed, everything=lambda: files.values())
        catalog = index.update(posts=published.by_source.values(), left=None if step == 0 else left,
                               came=None if step == 0 else came, now=now, keep=["tag/gone", "category/news"],
                               hidden=["tag/rail"])
        kept, expected = full(files, now)
        assert sorted(published.by_source.values(), key=lambda p: p.source) == kept
        assert (dataclasses.replace(catalog, by_slug={}, added=None, visible=())
                == dataclasses.replace(expected, by_slug={}, added=None, visible=()))  # type: ignore[type-var]
        assert list(catalog.visible) == list(expected.visible)  # the index's own list, the full pass's tuple
        assert dict(catalog.by_slug) == dict(expected.by_slug)  # type: ignore[attr-defined]


def test_an_edit_that_clashes_renames_the_later_file_and_undoing_it_restores_both() -> None:
    published = Published(SETTINGS)

    def post(source: str, slug: str) -> Post:
        return Post(source=source, slug=slug, id=f"tag:x,2026:{slug}", url=f"https://example.org/{slug}",
                    title=slug, date=NOW, updated=NOW)

    files = {"a.md": post("a.md", "a"), "b.md": post("b.md", "b")}
    published.update(dict(files), everything=lambda: files.values())
    files["b.md"] = post("b.md", "a")
    left, came = published.update({"b.md": files["b.md"]}, everything=lambda: files.values())
    assert published.by_source["b.md"].slug.startswith("a-") and published.clashes
    assert [p.slug for p in left] == ["b"] and [p.source for p in came] == ["b.md"]
    files["b.md"] = post("b.md", "b")
    published.update({"b.md": files["b.md"]}, everything=lambda: files.values())
    assert {p.slug for p in published.by_source.values()} == {"a", "b"} and not published.clashes


def stamp_posts(draw: st.DrawFn, source: str) -> Post:
    """Posts whose update and file times fall anywhere, the future (a skewed clock) too."""
    post = draw(posts(source))
    updated = post.date + timedelta(hours=draw(st.integers(0, 30)))
    modified = NOW + timedelta(hours=draw(st.integers(-72, 30)))
    return dataclasses.replace(post, updated=updated, modified=modified, revision=str(draw(st.integers(0, 9))))


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), plan=steps)
def test_stamps_from_the_change_equal_stamps_from_every_post(data: st.DataObject,
                                                            plan: list[tuple[dict[str, str | None], int]]) -> None:
    """Last-Modified made from the posts a change added equals Last-Modified made from all of them."""
    from feedsvc.build import Built, build_snapshot
    from feedsvc.scan import ScanResult

    files: dict[str, Post] = {}
    published, index = Published(SETTINGS), CatalogIndex()
    quick, whole = Built(), Built()
    now = NOW
    for step, (change, hours) in enumerate(plan):
        now += timedelta(hours=hours)
        changed: dict[str, Post | None] = {}
        for source, what in change.items():
            post = st.composite(stamp_posts)(source)
            made = data.draw(post) if what else None
            files.pop(source, None) if made is None else files.__setitem__(source, made)
            changed[source] = made
        left, came = published.update(changed, everything=lambda: files.values())
        scan = ScanResult(posts=tuple(published.by_source.values()), problems=(), changed=len(changed) or 1,
                          left=None if step == 0 else tuple(left), came=None if step == 0 else tuple(came),
                          by_source=published.by_source)
        catalog = index.update(posts=scan.posts, left=scan.left, came=scan.came, now=now,
                               keep=quick.stamps.keys())
        common = {"settings": SETTINGS, "now": now, "html": lambda p: "", "removed_at": lambda s: NOW}
        fast, quick = build_snapshot(scan, quick, catalog=catalog, **common)  # type: ignore[arg-type]
        slow, whole = build_snapshot(dataclasses.replace(scan, left=None, came=None, by_source=None), whole,
                                     **common)  # type: ignore[arg-type]
        assert fast.stamps == slow.stamps
