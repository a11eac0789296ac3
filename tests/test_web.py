"""The pages people open: the feed index with autodiscovery, post pages and /healthz."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from conftest import BASE_URL, WritePost, rebuild
from flask import Flask
from flask.testing import FlaskClient

TOKEN = "operator-token-for-tests"  # FEEDSVC_ADMIN_TOKEN: /healthz names files only to the operator


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.alternates: list[dict[str, str | None]] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "link" and found.get("rel") == "alternate":
            self.alternates.append(found)
        if tag == "a" and found.get("href"):
            self.hrefs.append(str(found["href"]))


@pytest.fixture
def posts(write_post: WritePost) -> None:
    write_post("one.md", title="First <post>", date="2025-01-01", categories="[news, Health & Science]",
               body="Hello **world**.\n\n<script>alert(1)</script>")
    write_post("two.md", title="Second", date="2025-01-02", categories="news")


def test_index_lists_every_feed_with_autodiscovery(posts: None, write_post: WritePost, client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = Links()
    page.feed(response.text)
    assert {(a["type"], a["href"]) for a in page.alternates} == {
        ("application/atom+xml", f"{BASE_URL}/feeds/all.atom"),
        ("application/rss+xml", f"{BASE_URL}/feeds/all.rss"),
        ("application/feed+json", f"{BASE_URL}/feeds/all.json"),
    }
    for path in ("all", "category/news", "category/health-science"):
        assert f"{BASE_URL}/feeds/{path}" in page.hrefs  # the HTML preview
        for fmt in ("atom", "rss", "json"):
            assert f"{BASE_URL}/feeds/{path}.{fmt}" in page.hrefs
            assert client.get(f"/feeds/{path}.{fmt}").status_code == 200
    assert "Health &amp; Science" in response.text
    assert 'name="viewport"' in response.text


def test_index_counts_posts(posts: None, client: FlaskClient) -> None:
    text = client.get("/").text
    row = text[text.index(f'<a href="{BASE_URL}/feeds/category/news">news</a>'):]
    assert '<td class="n">2</td>' in row[:200]


def test_post_page_renders_and_escapes(posts: None, client: FlaskClient) -> None:
    response = client.get("/posts/one")
    assert response.status_code == 200
    assert "First &lt;post&gt;" in response.text
    assert "<strong>world</strong>" in response.text
    assert "<script>alert" not in response.text
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert client.get("/posts/missing").status_code == 404


def test_healthz(posts: None, write_post: WritePost, make_app: Callable[..., Flask]) -> None:
    client = make_app(admin_token=TOKEN).test_client()
    health = client.get("/healthz").json
    assert health["status"] == "ok"
    assert health["posts"] == 2
    assert health["feeds"] == 3 * 3  # all, news, health-science in Atom, RSS, JSON
    assert health["last_build"].endswith("+00:00")
    assert health["problem_count"] == 0
    write_post("sub/bad.txt", "---\ntitle: T\ndate: 2021-02-30T00:00:00\n---\n")
    rebuild(client.application)
    assert client.get("/healthz").json["problem_count"] == 1  # which file: the operator's view (test_subscriptions)
    problem = client.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).json["problems"][0]
    assert problem["file"] == "sub/bad.txt" and problem["line"] == 3
    assert "not a valid date" in problem["message"]
