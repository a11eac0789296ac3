"""Feeds as editors define them: [[feeds]] with filters, `featured`, content policies, byte budgets,
icons and logos, per-language feeds, all read back as feed readers read them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BASE_URL, WritePost, parse
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from feedsvc.config import ConfigError, FeedSpec, load_settings
from feedsvc.filters import FilterError, parse_filter

ATOM = "{http://www.w3.org/2005/Atom}"
FEEDS = (
    FeedSpec(slug="ferries", title="Ferry news", description="Boats, mostly", filter="category news AND tag ferry"),
    FeedSpec(slug="no-ads", title="Without sponsors", filter="everything NOT tag sponsored", content="summary"),
    FeedSpec(slug="teasers", title="Teasers", filter="everything", content="excerpt"),
    FeedSpec(slug="nothing-yet", title="Nothing yet", filter="tag never-used"),
)


@pytest.fixture
def newsroom(write_post: WritePost) -> None:
    write_post("2025/ferry.txt", title="Ferry returns", date="2025-01-10-08-00-00", categories="[latest, news]",
               tags="[ferry]", featured="true", description="The ferry is back.",
               body="First part.\n\n<!--more-->\n\nThe rest of the story.")
    write_post("2025/ad.txt", title="Buy boats", date="2025-01-11-08-00-00", categories="[news]",
               tags="[ferry, sponsored]", description="Sponsored.", body="Advert body.")
    write_post("2025/fete.md", title="La fête", date="2025-01-12-08-00-00", categories="[culture]",
               lang="fr", description="En français.", body="Texte.")


@pytest.fixture
def app(newsroom: None, make_app: Callable[..., Flask]) -> Flask:
    return make_app(feeds=FEEDS, feed_icon="https://img.example.org/icon.png",
                    feed_logo="https://img.example.org/logo.png")


def titles(client: FlaskClient, url: str) -> list[str]:
    response = client.get(url)
    if url.endswith(".json"):
        return [item["title"] for item in json.loads(response.data)["items"]]
    return [entry.title for entry in parse(response).entries]


def test_a_filter_chooses_the_posts_in_every_format(app: Flask) -> None:
    client = app.test_client()
    for fmt in ("atom", "rss", "json"):
        assert titles(client, f"/feeds/ferries.{fmt}") == ["Buy boats", "Ferry returns"]
        assert titles(client, f"/feeds/no-ads.{fmt}") == ["La fête", "Ferry returns"]
    feed = parse(client.get("/feeds/ferries.atom")).feed
    assert feed.title == "Example News: Ferry news" and feed.subtitle == "Boats, mostly"


def test_featured_exists_without_configuration_when_a_post_is_featured(newsroom: None,
                                                                       make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()
    assert titles(client, "/feeds/featured.rss") == ["Ferry returns"]
    opml = client.get("/feeds.opml").get_data(as_text=True)
    assert f"{BASE_URL}/feeds/featured.atom" in opml
    index = client.get("/").get_data(as_text=True)  # the index page lists it, by its title
    assert f'<a href="{BASE_URL}/feeds/featured">Featured</a>' in index


def test_no_featured_feed_while_no_post_is_featured(write_post: WritePost, make_app: Callable[..., Flask]) -> None:
    write_post("plain.txt", title="Plain")
    assert make_app().test_client().get("/feeds/featured.atom").status_code == 404


def test_a_configured_feed_that_matches_nothing_is_a_valid_empty_feed(app: Flask) -> None:
    response = app.test_client().get("/feeds/nothing-yet.atom")
    assert response.status_code == 200
    parsed = parse(response)
    assert parsed.bozo == 0 and parsed.entries == [] and parsed.feed.title == "Example News: Nothing yet"


def test_a_summary_feed_carries_the_description_and_no_body(app: Flask) -> None:
    client = app.test_client()
    for fmt in ("atom", "rss"):
        entry = next(e for e in parse(client.get(f"/feeds/no-ads.{fmt}")).entries if e.title == "Ferry returns")
        assert entry.summary == "The ferry is back." and "content" not in entry
    item = next(i for i in json.loads(client.get("/feeds/no-ads.json").data)["items"] if i["title"] == "Ferry returns")
    assert item["content_text"] == "The ferry is back." and "content_html" not in item


def test_an_excerpt_stops_at_more_and_links_to_the_rest(app: Flask) -> None:
    client = app.test_client()
    entry = next(e for e in parse(client.get("/feeds/teasers.atom")).entries if e.title == "Ferry returns")
    html = entry.content[0].value
    assert "First part." in html and "The rest of the story." not in html
    assert f'href="{BASE_URL}/posts/ferry"' in html and "Continue reading" in html
    whole = next(e for e in parse(client.get("/feeds/all.atom")).entries if e.title == "Ferry returns")
    assert "The rest of the story." in whole.content[0].value and "Continue reading" not in whole.content[0].value
    other = next(e for e in parse(client.get("/feeds/teasers.atom")).entries if e.title == "Buy boats")
    assert "Advert body." in other.content[0].value and "Continue reading" not in other.content[0].value


def test_icon_and_logo_in_each_format(app: Flask) -> None:
    client = app.test_client()
    atom = etree.fromstring(client.get("/feeds/all.atom").data)
    assert atom.findtext(f"{ATOM}icon") == "https://img.example.org/icon.png"
    assert atom.findtext(f"{ATOM}logo") == "https://img.example.org/logo.png"
    rss = parse(client.get("/feeds/all.rss"))
    assert rss.feed.image.href == "https://img.example.org/logo.png"
    assert rss.feed.image.link == rss.feed.link
    feed = json.loads(client.get("/feeds/all.json").data)
    assert feed["icon"] == "https://img.example.org/logo.png" and feed["favicon"] == "https://img.example.org/icon.png"


def test_a_lang_key_makes_a_feed_in_that_language(app: Flask) -> None:
    client = app.test_client()
    for fmt in ("atom", "rss"):
        parsed = parse(client.get(f"/feeds/lang/fr.{fmt}"))
        assert [e.title for e in parsed.entries] == ["La fête"]
        assert parsed.feed.language == "fr"
    assert parse(client.get("/feeds/all.rss")).feed.language == "en"


def test_a_byte_budget_pages_on_instead_of_cutting(write_post: WritePost, make_app: Callable[..., Flask]) -> None:
    for day in range(1, 21):
        write_post(f"long-{day:02d}.txt", title=f"Long {day:02d}", date=f"2025-02-{day:02d}-08-00-00",
                   body="Words " * 800)
    budget = FeedSpec(slug="small", title="Small", max_bytes=20_000)
    client = make_app(feeds=(budget,)).test_client()
    seen: list[str] = []
    url: str | None = "/feeds/small.atom"
    while url:
        response = client.get(url)
        assert len(response.data) <= 20_000
        parsed = parse(response)
        assert parsed.entries and all("Words Words" in e.content[0].value for e in parsed.entries)
        seen += [e.title for e in parsed.entries]
        following = [link.href for link in parsed.feed.links if link.rel == "next"]
        url = following[0].removeprefix(BASE_URL) if following else None
    assert seen == [f"Long {day:02d}" for day in range(20, 0, -1)]  # every entry, in order, none cut


@pytest.mark.parametrize(("text", "problem"), [
    ("category news AND", "ends too soon"), ("news", "unexpected 'news' at character 1"),
    ("(featured", "ends too soon"), ("tag \"x", "unclosed quote"), ("category AND", "needs a name"),
])
def test_a_bad_filter_stops_start_up_naming_the_feed(text: str, problem: str, tmp_path: Path) -> None:
    with pytest.raises(FilterError, match=problem):
        parse_filter(text)
    config = tmp_path / "feedsvc.toml"
    config.write_text(f'[[feeds]]\nslug = "broken"\ntitle = "Broken"\nfilter = {json.dumps(text)}\n')
    with pytest.raises(ConfigError, match=f"feeds: 'broken': filter .*{problem}"):
        load_settings(env={"FEEDSVC_CONFIG": str(config)})


def test_feeds_from_the_toml_file_and_back_through_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "feedsvc.toml"
    config.write_text('[[feeds]]\nslug = "ferries"\ntitle = "Ferries"\nfilter = "tag ferry OR category boats"\n'
                      'content = "excerpt"\n\n[[feeds]]\nslug = "digest"\ntitle = "Digest"\ncontent = "summary"\n')
    settings = load_settings(env={"FEEDSVC_CONFIG": str(config)})
    assert [(s.slug, s.filter, s.content) for s in settings.feeds] == [
        ("ferries", "tag ferry OR category boats", "excerpt"), ("digest", "everything", "summary")]
    from feedsvc.config import to_env
    assert load_settings(env=to_env(settings)).feeds == settings.feeds


@pytest.mark.parametrize(("table", "problem"), [
    ('slug = "All"\ntitle = "x"', "a slug is lower-case"),
    ('slug = "x"\ntitle = "x"\ncontent = "teaser"', "content must be one of full, summary, excerpt"),
    ('slug = "x"', "`title` is required"),
    ('slug = "x"\ntitle = "x"\ncolour = "red"', "unknown key 'colour'"),
    ('slug = "x"\ntitle = "x"\nmax_bytes = 5', "max_bytes must be 0"),
])
def test_a_bad_feed_table_is_named(table: str, problem: str, tmp_path: Path) -> None:
    config = tmp_path / "feedsvc.toml"
    config.write_text(f"[[feeds]]\n{table}\n")
    with pytest.raises(ConfigError, match=problem):
        load_settings(env={"FEEDSVC_CONFIG": str(config)})


def test_a_mistyped_featured_value_keeps_the_post_published(write_post: WritePost,
                                                            make_app: Callable[..., Flask]) -> None:
    write_post("a.txt", title="Quoted", featured='"true"')
    write_post("b.txt", title="Odd", date="2025-01-03-00-00-00", featured="[maybe]")
    client = make_app().test_client()
    assert sorted(titles(client, "/feeds/all.atom")) == ["Odd", "Quoted"]
    assert titles(client, "/feeds/featured.atom") == ["Quoted"]


def test_a_language_that_is_no_tag_is_left_alone(write_post: WritePost, make_app: Callable[..., Flask]) -> None:
    write_post("a.txt", title="Template language", lang="English language")
    client = make_app().test_client()
    assert titles(client, "/feeds/all.atom") == ["Template language"]
    assert client.get("/feeds/lang/english-language.atom").status_code == 404
