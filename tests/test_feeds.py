"""The served feeds as a feed reader parses them: entries, ids, dates, order, media, content."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from conftest import BASE_URL, NOW, WritePost, parse, rebuild
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

ATOM = "{http://www.w3.org/2005/Atom}"
TOKEN = "operator-token-for-tests"  # FEEDSVC_ADMIN_TOKEN: /healthz names files only to the operator
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def newsroom(write_post: WritePost) -> None:
    write_post("2025/ferry.txt", title="Ferry returns", date="2025-01-10-08-00-00",
               categories="[latest, news]", image="https://img.example.org/ferry.jpg",
               description="The ferry is back.", body="## Timetable\n\nBoats *every* hour.")
    write_post("2025/clinic.md", title="Clinic hours", date="2025-01-12T09:30:00+01:00",
               categories="[Health & Science, latest]", author="Sam Rivera", tags="[health]")
    write_post("2025/match.md", title="Cup final", date="2025-01-11", categories="Sport")


def test_all_feed_lists_posts_newest_first(newsroom: None, client: FlaskClient) -> None:
    for fmt in ("atom", "rss"):
        feed = parse(client.get(f"/feeds/all.{fmt}"))
        assert [e.title for e in feed.entries] == ["Clinic hours", "Cup final", "Ferry returns"]


def test_category_feeds_hold_only_their_posts(newsroom: None, client: FlaskClient) -> None:
    news = parse(client.get("/feeds/category/news.atom"))
    assert [e.title for e in news.entries] == ["Ferry returns"]
    health = parse(client.get("/feeds/category/health-science.rss"))
    assert [e.title for e in health.entries] == ["Clinic hours"]
    assert health.feed.title == "Example News: Health & Science"
    latest = parse(client.get("/feeds/category/latest.atom"))
    assert len(latest.entries) == 2


def test_entries_carry_what_a_reader_shows(newsroom: None, client: FlaskClient) -> None:
    for fmt in ("atom", "rss"):
        entry = next(e for e in parse(client.get(f"/feeds/all.{fmt}")).entries if e.title == "Ferry returns")
        assert entry.id == "tag:feeds.example.org,2025-01-10:ferry"
        assert entry.link == f"{BASE_URL}/posts/ferry"
        assert entry.summary == "The ferry is back."
        html = entry.content[0]
        assert html.type == "text/html"
        assert "<h2>Timetable</h2>" in html.value and "<em>every</em>" in html.value
        # The image is in the content, which every reader shows, once; Media RSS has only the list-view thumbnail.
        assert html.value.count("https://img.example.org/ferry.jpg") == 1
        assert html.value.startswith("<p><img ") and html.value.index("ferry.jpg") < html.value.index("<h2>")
        assert "media_content" not in entry
        assert entry.media_thumbnail[0]["url"] == "https://img.example.org/ferry.jpg"
        assert {t.term for t in entry.tags} == {"latest", "news"}
        assert entry.published_parsed[:6] == (2025, 1, 10, 8, 0, 0)


def test_dates_carry_time_zones(newsroom: None, client: FlaskClient) -> None:
    atom = etree.fromstring(client.get("/feeds/all.atom").data)
    for text in atom.xpath("//a:updated/text() | //a:published/text()", namespaces={"a": ATOM[1:-1]}):
        assert datetime.fromisoformat(text).tzinfo is not None, text
    clinic = atom.find(f"{ATOM}entry")
    assert clinic.findtext(f"{ATOM}published") == "2025-01-12T08:30:00+00:00"
    rss = etree.fromstring(client.get("/feeds/all.rss").data)
    for text in rss.xpath("//pubDate/text() | //lastBuildDate/text()"):
        assert text.endswith("+0000"), text


def test_authors(newsroom: None, client: FlaskClient) -> None:
    atom = parse(client.get("/feeds/all.atom"))
    assert atom.feed.author == "Example Newsroom"
    assert atom.entries[0].author == "Sam Rivera"
    for fmt in ("atom", "rss"):  # one author element per format, so readers list the author once
        entry = parse(client.get(f"/feeds/all.{fmt}")).entries[0]
        assert [a.get("name") for a in entry.authors] == ["Sam Rivera"], fmt
    rss = parse(client.get("/feeds/all.rss"))
    assert rss.entries[0].author == "Sam Rivera"  # dc:creator


def test_self_links_and_site_link(newsroom: None, client: FlaskClient) -> None:
    for path in ("/feeds/all.atom", "/feeds/category/sport.rss"):
        feed = parse(client.get(path))
        links = {link.rel: link.href for link in feed.feed.links}
        assert links["self"] == BASE_URL + path
        assert feed.feed.link == BASE_URL + "/"


def test_rss_guid_is_not_a_permalink(newsroom: None, client: FlaskClient) -> None:
    rss = etree.fromstring(client.get("/feeds/all.rss").data)
    guids = rss.findall(".//item/guid")
    assert len(guids) == 3
    assert {g.get("isPermaLink") for g in guids} == {"false"}
    assert rss.findtext("channel/link") == BASE_URL + "/"


def test_content_types(newsroom: None, client: FlaskClient) -> None:  # unknown feeds: test_http
    assert client.get("/feeds/all.atom").content_type == "application/atom+xml; charset=utf-8"
    assert client.get("/feeds/category/news.rss").content_type == "application/rss+xml; charset=utf-8"
    assert client.get("/feeds/category/news.json").content_type == "application/feed+json; charset=utf-8"


def test_drafts_future_and_feed_false(write_post: WritePost, make_app: Callable[..., Flask]) -> None:
    write_post("draft.md", title="Draft", date="2025-01-01", draft="true")
    write_post("later.md", title="Later", date="2026-01-15T12:00:01Z")
    write_post("hidden.md", title="Hidden", date="2025-01-01", feed="false")
    write_post("shown.md", title="Shown", date="2025-01-01")
    app = make_app(now=NOW)
    client = app.test_client()
    assert [e.title for e in parse(client.get("/feeds/all.atom")).entries] == ["Shown"]
    assert client.get("/posts/hidden").status_code == 200  # published, just kept out of feeds
    assert client.get("/posts/draft").status_code == 404
    assert client.get("/posts/later").status_code == 404
    later = make_app(now=datetime(2026, 1, 15, 12, 0, 1, tzinfo=UTC)).test_client()
    assert [e.title for e in parse(later.get("/feeds/all.atom")).entries] == ["Later", "Shown"]


def test_max_items_caps_every_feed(write_post: WritePost, make_app: Callable[..., Flask]) -> None:
    for day in range(1, 8):
        write_post(f"p{day}.md", title=f"Post {day}", date=f"2025-01-0{day}")
    client = make_app(max_items=3).test_client()
    assert [e.title for e in parse(client.get("/feeds/all.rss")).entries] == ["Post 7", "Post 6", "Post 5"]
    assert len(parse(client.get("/feeds/category/news.atom")).entries) == 3


def test_broken_edit_keeps_the_last_good_version(write_post: WritePost, make_app: Callable[..., Flask]) -> None:
    client = make_app(admin_token=TOKEN).test_client()
    path = write_post("post.md", title="Good", date="2025-01-01")
    rebuild(client.application)
    path.write_text("---\ntitle: Half-sav", "utf-8")
    rebuild(client.application)
    assert [e.title for e in parse(client.get("/feeds/all.atom")).entries] == ["Good"]
    assert client.get("/healthz", headers=OPERATOR).json["problems"][0]["file"] == "post.md"
    path.unlink()
    rebuild(client.application)
    assert parse(client.get("/feeds/all.atom")).entries == []
    assert client.get("/healthz", headers=OPERATOR).json["problems"] == []


def test_duplicate_ids_are_reported_and_feeds_stay_unique(write_post: WritePost,
                                                          make_app: Callable[..., Flask]) -> None:
    client = make_app(admin_token=TOKEN).test_client()
    write_post("a.md", title="A", date="2025-01-01", id="tag:example.org,2025:x")
    write_post("b.md", title="B", date="2025-01-02", id="tag:example.org,2025:x")
    rebuild(client.application)
    write_post("news/c.md", title="C", date="2025-01-03", slug="a")
    write_post("sport/a.md", title="A2", date="2025-01-03")
    rebuild(client.application)
    entries = parse(client.get("/feeds/all.atom")).entries
    assert sorted(e.title for e in entries) == ["A", "A2", "B", "C"]  # both of every clash are kept
    ids, links = [e.id for e in entries], [e.link for e in entries]
    assert len(set(ids)) == len(set(links)) == 4
    assert ids[3] == "tag:example.org,2025:x" and ids[2].startswith("tag:example.org,2025:x#")
    problems = {p["file"]: p["message"] for p in client.get("/healthz", headers=OPERATOR).json["problems"]}
    assert "same id as a.md" in problems["b.md"]
    assert "same slug as a.md" in problems["news/c.md"]
    assert "same slug as a.md" in problems["sport/a.md"]
    for link in links:
        assert client.get(link.removeprefix(BASE_URL)).status_code == 200
    again = [e.id for e in parse(make_app().test_client().get("/feeds/all.atom")).entries]
    assert again == ids  # the renames are the same on every build
