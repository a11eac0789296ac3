"""The render stage: a feed page, a format, a time and made bodies -> the same bytes every time."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import feedparser
import pytest

from feedsvc.config import load_settings
from feedsvc.model import ALL, FeedFormat, Post
from feedsvc.paging import paginate
from feedsvc.render import render_feed
from feedsvc.urls import feed_info

STAMP = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SETTINGS = load_settings(env={}, base_url="https://news.example.org", site_title="Example News",
                         author="Newsroom", cache_dir="off")
POSTS = [Post(source=f"p{n}.md", slug=f"p{n}", id=f"tag:news.example.org,2026-01-0{n}:p{n}",
              url=f"https://news.example.org/posts/p{n}", title=f"Post {n}",
              date=datetime(2026, 1, n, tzinfo=UTC), updated=datetime(2026, 1, n, tzinfo=UTC)) for n in (3, 2, 1)]


def render(fmt: FeedFormat, bodies: dict[str, str]) -> bytes:
    page = paginate(ALL, POSTS, before=None, limit=2, url=lambda c: f"https://news.example.org/feeds/all?b={c}")
    assert page is not None
    return render_feed(feed_info(SETTINGS, ALL), page, fmt, bodies=bodies, updated=STAMP).body


@pytest.mark.parametrize("fmt", [FeedFormat.ATOM, FeedFormat.RSS])
def test_the_feed_says_what_its_info_says_and_is_dated_by_the_stamp(fmt: FeedFormat) -> None:
    parsed = feedparser.parse(render(fmt, {"p3.md": "<p>Three</p>", "p2.md": "<p>Two</p>"}))
    assert parsed.feed.title == "Example News"
    assert [e.id for e in parsed.entries] == [POSTS[0].id, POSTS[1].id]  # the page: two, newest first
    shown = parsed.entries[0].get("content", [{"value": parsed.entries[0].summary}])[0]["value"]
    assert shown == "<p>Three</p>"  # RSS: in <description> when the post has no summary (feedgen)
    assert parsed.feed.updated_parsed[:6] == STAMP.timetuple()[:6]


def test_json_feed_says_the_same() -> None:
    feed = json.loads(render(FeedFormat.JSON, {"p3.md": "<p>Three</p>"}))
    assert feed["title"] == "Example News" and feed["feed_url"] == "https://news.example.org/feeds/all.json"
    assert [item["id"] for item in feed["items"]] == [POSTS[0].id, POSTS[1].id]
    assert feed["items"][0]["content_html"] == "<p>Three</p>" and feed["items"][1]["content_html"] == ""


def test_same_input_same_bytes_and_a_missing_body_is_no_content() -> None:
    assert render(FeedFormat.ATOM, {}) == render(FeedFormat.ATOM, {})
    parsed = feedparser.parse(render(FeedFormat.ATOM, {"p3.md": "<p>Three</p>"}))
    assert "content" not in parsed.entries[1]
