"""JSON Feed 1.1 (https://jsonfeed.org/version/1.1) as a reader parses it, item by item against the Atom feed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import lxml.html
import pytest
from conftest import BASE_URL, WritePost, parse, rebuild
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

VERSION = "https://jsonfeed.org/version/1.1"
NS = {"a": "http://www.w3.org/2005/Atom", "content": "http://purl.org/rss/1.0/modules/content/"}
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
CHANNELS = ["all", "category/news", "tag/harbour", "author/sam-rivera"]


@pytest.fixture
def newsroom(write_post: WritePost) -> None:
    write_post("2025/ferry.md", title="Ferry returns \u2615 caf\u00e9", date="2025-01-10-08-00-00",
               updated="2025-01-20T10:30:00Z", categories="[latest, news]", tags="[Harbour]",
               image="https://img.example.org/ferry.jpg", description="The ferry is back \u2014 finally.",
               author="Sam Rivera", body="## Timetable\n\nBoats *every* hour, \u00fcberall.")
    write_post("2025/clinic.md", title="Clinic hours", date="2025-01-12T09:30:00+01:00", categories="[news]",
               image="/img/clinic.png", tags="[Harbour, Health]",
               author="[{name: Ana Lee, email: ana@example.org, uri: 'https://ana.example/'}, Sam Rivera]")
    write_post("2025/match.md", title="Cup final", date="2025-01-11T18:45:30.250000Z", categories="Sport",
               body="")


def get_json(client: FlaskClient, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 200, path
    feed = json.loads(response.data.decode("utf-8"))
    assert isinstance(feed, dict)
    return feed


def instant(text: str) -> datetime:
    assert RFC3339.fullmatch(text), text
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, text
    return moment


@pytest.mark.parametrize("channel", CHANNELS)
def test_top_level(newsroom: None, client: FlaskClient, channel: str) -> None:
    path = f"/feeds/{channel}.json"
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/feed+json; charset=utf-8"
    feed = json.loads(response.data.decode("utf-8"))
    assert feed["version"] == VERSION
    assert isinstance(feed["title"], str) and feed["title"].startswith("Example News")
    assert isinstance(feed["items"], list) and feed["items"]
    assert feed["home_page_url"] == BASE_URL + "/"
    assert feed["feed_url"] == BASE_URL + path
    assert feed["authors"] == [{"name": "Example Newsroom"}]
    assert "next_url" not in feed  # everything fits on one page


def test_items(newsroom: None, client: FlaskClient) -> None:
    items = get_json(client, "/feeds/all.json")["items"]
    assert [item["title"] for item in items] == ["Clinic hours", "Cup final", "Ferry returns \u2615 caf\u00e9"]
    for item in items:
        assert isinstance(item["id"], str) and item["id"]
        assert isinstance(item.get("content_html", item.get("content_text")), str)
        assert item["url"].startswith(BASE_URL + "/posts/")
        assert instant(item["date_modified"]) >= instant(item["date_published"])
    clinic, match, ferry = items
    assert ferry["id"] == "tag:feeds.example.org,2025-01-10:ferry"
    assert ferry["url"] == f"{BASE_URL}/posts/ferry"
    assert ferry["summary"] == "The ferry is back \u2014 finally."
    assert ferry["image"] == "https://img.example.org/ferry.jpg"
    assert ferry["tags"] == ["latest", "news", "Harbour"]
    assert ferry["authors"] == [{"name": "Sam Rivera"}]
    assert instant(ferry["date_published"]) == datetime(2025, 1, 10, 8, 0, tzinfo=UTC)
    assert instant(ferry["date_modified"]) == datetime(2025, 1, 20, 10, 30, tzinfo=UTC)
    assert "<h2>Timetable</h2>" in ferry["content_html"] and "<em>every</em>" in ferry["content_html"]
    assert "\u00fcberall" in ferry["content_html"]
    assert clinic["image"] == f"{BASE_URL}/img/clinic.png"
    assert clinic["authors"] == [{"name": "Ana Lee", "url": "https://ana.example/"}, {"name": "Sam Rivera"}]
    assert instant(clinic["date_published"]) == datetime(2025, 1, 12, 8, 30, tzinfo=UTC)
    assert instant(match["date_published"]) == datetime(2025, 1, 11, 18, 45, 30, 250000, tzinfo=UTC)
    assert "summary" not in match and "image" not in match and "authors" not in match


@pytest.mark.parametrize("channel", CHANNELS)
def test_same_entries_as_atom(newsroom: None, client: FlaskClient, channel: str) -> None:
    items = get_json(client, f"/feeds/{channel}.json")["items"]
    atom_response = client.get(f"/feeds/{channel}.atom")
    entries = parse(atom_response).entries
    # feedparser fills `summary` from the content when there is none: read which entries state one.
    raw = etree.fromstring(atom_response.data).xpath("a:entry", namespaces=NS)
    assert len(items) == len(entries) == len(raw) > 0
    for item, entry, element in zip(items, entries, raw, strict=True):
        assert item["id"] == entry.id
        assert item["title"] == entry.title
        assert item["url"] == entry.link
        assert instant(item["date_published"]) == datetime.fromisoformat(entry.published)
        assert instant(item["date_modified"]) == datetime.fromisoformat(entry.updated)
        if element.find("a:summary", NS) is not None:
            assert item["summary"] == entry.summary
        else:
            assert "summary" not in item
        assert item.get("image") == (entry.media_thumbnail[0]["url"] if "media_thumbnail" in entry else None)
        assert item.get("tags", []) == [tag.term for tag in entry.get("tags", [])]
        atom_authors = list(dict.fromkeys(author["name"] for author in entry.get("authors", []) if author))
        assert [author["name"] for author in item.get("authors", [])] == atom_authors


def html_fragments(client: FlaskClient, path: str) -> list[str]:
    """The HTML content of every entry, as a reader gets it from JSON, Atom or RSS."""
    data = client.get(path).data
    if path.endswith(".json"):
        return [item["content_html"] for item in json.loads(data)["items"]]
    root = etree.fromstring(data)
    if path.endswith(".atom"):
        return [str(text) for text in root.xpath("a:entry/a:content/text()", namespaces=NS)]
    # RSS: content:encoded beside a summary in <description>, else the content is the <description>.
    return [item.findtext("content:encoded", namespaces=NS) or item.findtext("description")
            for item in root.iterfind("channel/item")]


HOSTILE = """Harmless words.

<script>alert("x")</script>

<img src="pic.png" onerror="alert(1)"> <IMG SRC=pic.png OnError=alert(2)>

[click me](javascript:alert(3)) and <a href="JaVaScRiPt:alert(4)">caps</a> and <a href=" javascript:alert(5)">space</a>

<iframe src="https://evil.example/"></iframe><svg onload="alert(6)"></svg>
"""


@pytest.mark.parametrize("fmt", ["json", "atom", "rss"])
def test_content_is_sanitized(write_post: WritePost, make_app: Callable[..., Flask], fmt: str) -> None:
    write_post("hostile.md", title="Hostile", date="2025-01-01", body=HOSTILE)
    (content,) = html_fragments(make_app().test_client(), f"/feeds/all.{fmt}")
    assert "Harmless words." in content and "click me" in content
    lowered = content.lower()
    # Raw HTML that GitHub's tag filter escapes (script, iframe) may remain as visible text, never as markup.
    for needle in ("<script", "onerror", "onload", "javascript:", "<iframe", "<svg"):
        assert needle not in lowered, needle
    tree = lxml.html.fragment_fromstring(content, create_parent="div")
    assert tree.xpath("//script | //iframe | //svg") == []
    for element in tree.iter():
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (element.tag, name)
            assert "javascript" not in value.lower(), (element.tag, name, value)


RELATIVE = """[a](../x) and [b](y/z?q=1#f) and [c](/root)

![i](img/a.png)

<img srcset="a.png 1x, /b.png 2x" alt="s">
"""


@pytest.mark.parametrize("fmt", ["json", "atom", "rss"])
def test_relative_urls_become_absolute(write_post: WritePost, make_app: Callable[..., Flask], fmt: str) -> None:
    write_post("guide.md", title="Guide", date="2025-01-01", description="In RSS the body goes elsewhere.",
               body=RELATIVE)
    (content,) = html_fragments(make_app().test_client(), f"/feeds/all.{fmt}")
    tree = lxml.html.fragment_fromstring(content, create_parent="div")
    assert tree.xpath("//a/@href") == [f"{BASE_URL}/x", f"{BASE_URL}/posts/y/z?q=1#f", f"{BASE_URL}/root"]
    assert tree.xpath("//img/@src") == [f"{BASE_URL}/posts/img/a.png"]
    assert tree.xpath("//img/@srcset") == [f"{BASE_URL}/posts/a.png 1x, {BASE_URL}/b.png 2x"]


@pytest.mark.parametrize("path", [
    "/feeds/all.json", "/feeds/category/news.json", "/feeds/tag/harbour.json", "/feeds/author/sam-rivera.json",
    "/feeds/all.json?limit=1", "/feeds/all.json?before=20250112T083000Z-clinic",
])
def test_same_content_same_bytes(newsroom: None, make_app: Callable[..., Flask], path: str) -> None:
    first = make_app().test_client()
    body = first.get(path).data
    rebuild(first.application)
    assert first.get(path).data == body
    second = make_app(now=datetime(2031, 3, 4, tzinfo=UTC)).test_client()
    assert second.get(path).data == body
    assert second.get(path).headers["ETag"] == first.get(path).headers["ETag"]
