"""The catalog stage: which posts are published, in which channels, in what order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from feedsvc.catalog import build_catalog
from feedsvc.model import Author, ChannelKind, Post, Term

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def post(slug: str, days_ago: float, *, categories: tuple[str, ...] = (), tags: tuple[str, ...] = (),
         author: str | None = None, **fields: object) -> Post:
    when = NOW - timedelta(days=days_ago)
    return Post(source=f"{slug}.md", slug=slug, id=f"tag:example.org,2026:{slug}", url=f"https://example.org/{slug}",
                title=slug.title(), date=when, updated=when,
                categories=tuple(Term(slug=c.lower(), name=c) for c in categories),
                tags=tuple(Term(slug=t.lower(), name=t) for t in tags),
                authors=(Author(name=author),) if author else (), **fields)  # type: ignore[arg-type]


def test_drafts_and_future_posts_are_not_published_and_the_next_one_is_due() -> None:
    catalog = build_catalog([post("old", 2), post("draft", 1, draft=True), post("soon", -1), post("later", -3)],
                            now=NOW)
    assert [p.slug for p in catalog.visible] == ["old"]
    assert catalog.next_due == NOW + timedelta(days=1)


def test_channels_all_first_then_each_kind_by_name_newest_posts_first() -> None:
    posts = [post("a", 3, categories=("Sport",), tags=("Ferry",), author="Sam Rivera"),
             post("b", 1, categories=("News",), tags=("Ferry",)),
             post("c", 2, categories=("news",))]  # another spelling of the same category
    listings = build_catalog(posts, now=NOW).listings
    assert [(li.channel.kind, li.channel.slug) for li in listings] == [
        (ChannelKind.ALL, "all"), (ChannelKind.CATEGORY, "news"), (ChannelKind.CATEGORY, "sport"),
        (ChannelKind.TAG, "ferry"), (ChannelKind.AUTHOR, "sam-rivera")]
    by_path = {li.channel.path: [p.slug for p in li.posts] for li in listings}
    assert by_path["all"] == ["b", "c", "a"] and by_path["category/news"] == ["b", "c"]
    assert by_path["author/sam-rivera"] == ["a"]


def test_a_post_out_of_feeds_is_published_but_in_no_channel() -> None:
    catalog = build_catalog([post("quiet", 1, categories=("News",), in_feeds=False)], now=NOW)
    assert [p.slug for p in catalog.visible] == ["quiet"]
    assert [(li.channel.path, li.posts) for li in catalog.listings] == [("all", ())]


def test_channels_kept_while_empty_and_hidden_ones_never_listed() -> None:
    catalog = build_catalog([post("a", 1, categories=("Old",), tags=("Live",))], now=NOW,
                            keep=["tag/gone", "category/old", "not a path"], hidden=["category/old"])
    paths = {li.channel.path: li.posts for li in catalog.listings}
    assert paths.keys() == {"all", "tag/gone", "tag/live"}
    assert paths["tag/gone"] == ()
