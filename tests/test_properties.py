"""Property-based: whatever an editor writes, a post or a problem comes out, and feeds stay well-formed."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from typing import Any

import feedparser
import yaml
from conftest import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from feedsvc.catalog import build_catalog
from feedsvc.config import load_settings
from feedsvc.content import load_post
from feedsvc.markup import render_markdown
from feedsvc.model import FeedFormat, Post, Problem
from feedsvc.paging import paginate
from feedsvc.render import render_feed
from feedsvc.urls import feed_info
from feedsvc.yamlfront import read_body

SETTINGS = load_settings(env={}, base_url="https://feeds.example.org")
KEYS = ["title", "date", "updated", "description", "categories", "tags", "author", "image", "slug", "id",
        "draft", "feed", "extends", "section", "featured"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(),
    st.datetimes(), st.dates(), st.sampled_from(["2020-09-06-22-23-29", "2020-02-30", "No", "https://x.org/a.jpg"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                            max_size=4), max_leaves=12)
authors = st.fixed_dictionaries({"name": st.text(max_size=12)}, optional={"email": st.text(max_size=12),
                                                                          "uri": st.text(max_size=12)})
front_matter = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), values | authors, max_size=10)
bodies = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(list("<>&]]\x00\x0b*#[](")), max_size=400)


def as_file(meta: dict[str, Any], body: str) -> bytes:
    try:
        head = yaml.safe_dump(meta, allow_unicode=True)
    except yaml.YAMLError:
        head = "title: fallback\n"
    return f"---\n{head}---\n{body}".encode("utf-8", "surrogatepass")


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=front_matter, body=bodies)
def test_any_front_matter_gives_a_post_or_a_problem(meta: dict[str, Any], body: str) -> None:
    result = load_post("any.md", as_file(meta, body), SETTINGS)
    assert isinstance(result, Post | Problem)
    if isinstance(result, Problem):
        assert result.path == "any.md" and result.message


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(posts=st.lists(st.tuples(st.text(min_size=1, max_size=60), bodies, st.lists(st.text(max_size=20), max_size=3),
                                st.text(max_size=80), authors), min_size=1, max_size=4))
def test_feeds_from_any_text_are_well_formed(posts: list[tuple[str, str, list[str], str, dict[str, str]]]) -> None:
    loaded, bodies = [], {}
    for index, (title, body, categories, summary, author) in enumerate(posts):
        meta = {"title": title, "date": f"2024-01-{index + 1:02d}", "categories": categories, "description": summary,
                "author": author}
        data = as_file(meta, body)
        result = load_post(f"p{index}.md", data, SETTINGS)
        if isinstance(result, Post):
            loaded.append(result)
            bodies[result.source] = read_body(data)
    catalog = build_catalog(loaded, now=datetime(2030, 1, 1, tzinfo=UTC))
    for listing in catalog.listings:
        for fmt in FeedFormat:
            page = paginate(listing.channel, listing.posts, before=None, limit=50, url=lambda c: "https://f.example/x")
            assert page is not None
            html = {p.source: render_markdown(bodies[p.source], p.url) for p in page.posts}
            body = render_feed(feed_info(SETTINGS, listing.channel), page, fmt, bodies=html,
                               updated=datetime(2030, 1, 1, tzinfo=UTC)).body
            if fmt is FeedFormat.JSON:
                assert len(json.loads(body)["items"]) == len(listing.posts)
                continue
            etree.fromstring(body)
            parsed = feedparser.parse(body)
            assert not parsed.bozo, parsed.get("bozo_exception")
            assert len(parsed.entries) == len(listing.posts)


def test_slug_alphabet_is_url_safe() -> None:
    result = load_post("Ünïcode Tïtle!.md", b"---\ntitle: T\ndate: 2020-01-01\n---\n", SETTINGS)
    assert isinstance(result, Post)
    assert set(result.slug) <= set(string.ascii_lowercase + string.digits + "-")
