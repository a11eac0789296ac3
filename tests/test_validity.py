"""Feed Validation Service rules, checked on every feed built from the bundled content.

The W3C validator is not installable here, so these are its errors and the warnings we can
meet, written as checks over the parsed XML (see validator.w3.org/feed/docs/).
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import BASE_URL, parse
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

BUNDLED = Path(__file__).resolve().parents[1] / "content"
NS = {"a": "http://www.w3.org/2005/Atom", "media": "http://search.yahoo.com/mrss/",
      "dc": "http://purl.org/dc/elements/1.1/", "content": "http://purl.org/rss/1.0/modules/content/"}


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    from feedsvc.app import create_app
    from feedsvc.config import load_settings
    settings = load_settings(env={}, content_dir=BUNDLED, base_url=BASE_URL)
    return create_app(settings, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC)).test_client()


def feed_paths(client: FlaskClient) -> list[str]:
    snapshot = client.application.extensions["feedsvc"].snapshot
    return ["/feeds/" + name for name in sorted(snapshot.feeds)]


def test_bundled_content_is_clean(bundled: FlaskClient) -> None:
    health = bundled.get("/healthz").json
    assert health["problem_count"] == 0
    assert health["posts"] >= 8
    paths = feed_paths(bundled)
    assert len([p for p in paths if p.startswith("/feeds/category/") and p.endswith(".atom")]) >= 4
    titles = {e.title for e in parse(bundled.get("/feeds/all.atom")).entries}
    assert not any("budget explainer" in t.lower() or "space elevator" in t.lower() for t in titles)


def test_atom_feeds(bundled: FlaskClient) -> None:
    for path in (p for p in feed_paths(bundled) if p.endswith(".atom")):
        root = etree.fromstring(bundled.get(path).data)
        assert root.tag == "{http://www.w3.org/2005/Atom}feed"
        for element in ("a:id", "a:title", "a:updated", "a:author/a:name"):
            assert root.xpath(element, namespaces=NS), f"{path}: feed lacks {element}"
        assert root.xpath("a:link[@rel='self']/@href", namespaces=NS) == [BASE_URL + path]
        ids = root.xpath("a:entry/a:id/text()", namespaces=NS)
        assert len(ids) == len(set(ids)), f"{path}: duplicate ids"
        updated = root.xpath("a:updated/text()", namespaces=NS)[0]
        entry_updated = root.xpath("a:entry/a:updated/text()", namespaces=NS)
        assert datetime.fromisoformat(updated) >= max(map(datetime.fromisoformat, entry_updated))
        for entry in root.xpath("a:entry", namespaces=NS):
            for element in ("a:id", "a:title", "a:updated", "a:published", "a:link/@href"):
                assert entry.xpath(element, namespaces=NS), f"{path}: entry lacks {element}"
            assert entry.xpath("a:id/text()", namespaces=NS)[0].split(":")[0] in ("tag", "urn", "http", "https")
            for stamp in entry.xpath("a:updated/text() | a:published/text()", namespaces=NS):
                assert datetime.fromisoformat(stamp).utcoffset() is not None
            assert entry.xpath("a:content/@type", namespaces=NS) == ["html"]


def test_rss_feeds(bundled: FlaskClient) -> None:
    for path in (p for p in feed_paths(bundled) if p.endswith(".rss")):
        root = etree.fromstring(bundled.get(path).data)
        assert root.tag == "rss" and root.get("version") == "2.0"
        channel = root.find("channel")
        for element in ("title", "link", "description", "lastBuildDate"):
            assert channel.findtext(element), f"{path}: channel lacks {element}"
        assert channel.findtext("link") == BASE_URL + "/"
        assert channel.xpath("a:link[@rel='self']/@href", namespaces=NS) == [BASE_URL + path]
        guids = channel.xpath("item/guid/text()")
        assert len(guids) == len(set(guids)) == len(channel.findall("item"))
        for item in channel.findall("item"):
            assert item.find("guid").get("isPermaLink") == "false"
            assert email.utils.parsedate_to_datetime(item.findtext("pubDate")).tzinfo is not None
            assert item.find("author") is None or item.find("dc:creator", NS) is None
            assert item.find("enclosure") is None  # images go in media:content, which needs no length
        lastbuild = email.utils.parsedate_to_datetime(channel.findtext("lastBuildDate"))
        assert lastbuild >= max(email.utils.parsedate_to_datetime(d) for d in channel.xpath("item/pubDate/text()"))


def test_every_feed_parses_cleanly(bundled: FlaskClient) -> None:
    for path in feed_paths(bundled):
        if not path.endswith(".json"):  # feedparser reads no JSON Feed; test_jsonfeed checks those
            assert parse(bundled.get(path)).entries, path


def test_hostile_text_stays_well_formed(write_post: Callable[..., Path], make_app: Callable[..., Flask]) -> None:
    write_post("x.md", "---\ntitle: \"]]> <b>&amp; 'q' \\\"dq\\\"\"\ndate: 2025-01-01\n"
                       "description: \"<script>alert(1)</script> & \\x0b\"\ncategories: [\"<i>\", \"a&b\"]\n---\n"
                       "<script>alert(1)</script>\n\n"
                       "<img src=x onerror=alert(1)> ]]> & <a href=\"javascript:x()\">l</a>\n")
    client = make_app().test_client()
    for fmt in ("atom", "rss"):
        entry = parse(client.get(f"/feeds/all.{fmt}")).entries[0]
        assert entry.title == "]]> <b>&amp; 'q' \"dq\""
        html = entry.content[0].value
        assert "<script" not in html and "onerror" not in html and "javascript:" not in html
