"""RFC 5005 paged feeds walked the way an archiving reader walks them, and the tag and author feeds."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import BASE_URL, WritePost, parse, rebuild
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

NS = {"a": "http://www.w3.org/2005/Atom"}
FORMATS = ["atom", "rss", "json"]
ALL = [f"Post {n:02d}" for n in range(23, 0, -1)]  # newest first
ODD = [title for title in ALL if int(title[-2:]) % 2]


@dataclass(frozen=True)
class FeedPage:
    path: str  # path and query, as requested
    titles: list[str]
    links: dict[str, str]  # rel -> href: atom:link elements, or next_url for JSON Feed


def fmt_of(path: str) -> str:
    return urlsplit(path).path.rsplit(".", 1)[1]


def local(url: str) -> str:
    """An absolute link from a feed -> what the test client requests."""
    assert url.startswith(BASE_URL + "/feeds/"), url
    return url[len(BASE_URL):]


def read_page(client: FlaskClient, path: str) -> FeedPage:
    response = client.get(path)
    assert response.status_code == 200, path
    fmt = fmt_of(path)
    if fmt == "json":
        feed = json.loads(response.data)
        links = {"next": feed["next_url"]} if "next_url" in feed else {}
        return FeedPage(path, [item["title"] for item in feed["items"]], links)
    parse(response)  # a well-formed feed
    root = etree.fromstring(response.data)
    if fmt == "atom":
        elements, found = root.xpath("a:link", namespaces=NS), root.xpath("a:entry/a:title/text()", namespaces=NS)
    else:
        elements, found = root.xpath("channel/a:link", namespaces=NS), root.xpath("channel/item/title/text()")
    paging = [(link.get("rel"), link.get("href")) for link in elements if link.get("rel") != "alternate"]
    links = dict(paging)
    assert len(links) == len(paging), f"a rel given twice: {paging}"
    return FeedPage(path, [str(title) for title in found], links)


def walk(client: FlaskClient, path: str) -> list[FeedPage]:
    """Every page from `path` on, following rel="next" (next_url in JSON Feed)."""
    pages = [read_page(client, path)]
    while next_url := pages[-1].links.get("next"):
        assert len(pages) < 40, "the next links never end"
        pages.append(read_page(client, local(next_url)))
    return pages


def collected(pages: list[FeedPage]) -> list[str]:
    return [title for page in pages for title in page.titles]


@pytest.fixture
def archive(write_post: WritePost) -> None:
    for n in range(1, 24):
        write_post(f"post-{n:02d}.md", title=f"Post {n:02d}", date=f"2025-03-{n:02d}T{n % 24:02d}:15:00Z",
                   categories="[odd]" if n % 2 else "[even]")


@pytest.fixture
def paged(archive: None, make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app(max_items=5).test_client()


@pytest.mark.parametrize("fmt", FORMATS)
def test_walk_visits_every_post_once_newest_first(paged: FlaskClient, fmt: str) -> None:
    pages = walk(paged, f"/feeds/all.{fmt}")
    assert pages[0].titles == ALL[:5]
    assert [len(page.titles) for page in pages] == [5, 5, 5, 5, 3]
    assert collected(pages) == ALL
    assert all("next" in page.links for page in pages[:-1])
    assert "next" not in pages[-1].links
    assert len({page.path for page in pages}) == len(pages)


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_first_previous_last_and_self_links(paged: FlaskClient, fmt: str) -> None:
    subscription = f"{BASE_URL}/feeds/all.{fmt}"
    pages = walk(paged, f"/feeds/all.{fmt}")
    assert pages[0].links["self"] == subscription
    for number, page in enumerate(pages):
        assert page.links["first"] == subscription, number
        assert page.links["self"] == BASE_URL + page.path, number
        if number == 0:
            assert "previous" not in page.links
        else:
            assert read_page(paged, local(page.links["previous"])).titles == pages[number - 1].titles, number
    last = read_page(paged, local(pages[0].links["last"]))
    assert last.titles == ALL[-3:] == pages[-1].titles
    assert "next" not in last.links
    assert read_page(paged, local(pages[2].links["first"])).titles == ALL[:5]


@pytest.mark.parametrize("fmt", FORMATS)
def test_page_urls_stay_put_while_posts_are_added(paged: FlaskClient, write_post: WritePost, fmt: str) -> None:
    first = read_page(paged, f"/feeds/all.{fmt}")
    second_path = local(first.links["next"])
    second = read_page(paged, second_path)
    assert second.titles == ALL[5:10]
    for n in (1, 2, 3):
        write_post(f"new-{n}.md", title=f"New {n}", date=f"2025-04-0{n}T12:00:00Z", categories="[odd]")
    rebuild(paged.application)
    assert read_page(paged, second_path).titles == second.titles
    rest = walk(paged, second_path)
    assert first.titles + collected(rest) == ALL  # the walk goes on with every old post exactly once
    assert collected(walk(paged, f"/feeds/all.{fmt}")) == ["New 3", "New 2", "New 1", *ALL]


@pytest.mark.parametrize("fmt", FORMATS)
def test_category_pages_walk_only_that_category(paged: FlaskClient, fmt: str) -> None:
    pages = walk(paged, f"/feeds/category/odd.{fmt}")
    assert collected(pages) == ODD
    assert [len(page.titles) for page in pages] == [5, 5, 2]
    for page in pages:
        assert urlsplit(page.path).path == f"/feeds/category/odd.{fmt}"
        if fmt != "json":
            assert page.links["first"] == f"{BASE_URL}/feeds/category/odd.{fmt}"
    if fmt != "json":
        assert read_page(paged, local(pages[0].links["last"])).titles == ODD[-2:]


@pytest.mark.parametrize("fmt", FORMATS)
def test_cursor_names_the_last_post_seen(paged: FlaskClient, fmt: str) -> None:
    page = read_page(paged, f"/feeds/all.{fmt}?before=20250311T111500Z-post-11")
    assert page.titles == ["Post 10", "Post 09", "Post 08", "Post 07", "Post 06"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cursor", [
    "garbage", "", "20250311T111500Z", "20250311T111500Z-", "20251311T111500Z-post-11", "20250230T000000Z-post-11",
    "20250311T111500Z-Post-11", "20250311T111500.5Z-post-11", "2025-03-11T11:15:00Z-post-11",
    "20250311T111500Z-post%2011", "20250311T111500Z-post-11%0A", "%00", "..%2F..%2Fetc", "x" * 5000,
])
def test_malformed_cursor_is_a_client_error(paged: FlaskClient, fmt: str, cursor: str) -> None:
    response = paged.get(f"/feeds/all.{fmt}?before={cursor}")
    assert 400 <= response.status_code < 500
    assert b"Traceback" not in response.data


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cursor", ["19700101T000000Z-a", "20250301T011500Z-post-01", "00010101T000000Z-z"])
def test_cursor_past_the_end_is_an_empty_feed(paged: FlaskClient, fmt: str, cursor: str) -> None:
    path = f"/feeds/all.{fmt}?before={cursor}"
    response = paged.get(path)
    assert response.status_code == 200
    if fmt == "json":
        assert json.loads(response.data)["items"] == []
    else:
        assert parse(response).entries == []
    page = read_page(paged, path)
    assert page.titles == []
    assert "next" not in page.links


@pytest.mark.parametrize("fmt", FORMATS)
def test_limit_is_carried_through_the_pages(paged: FlaskClient, fmt: str) -> None:
    pages = walk(paged, f"/feeds/all.{fmt}?limit=10")
    assert [len(page.titles) for page in pages] == [10, 10, 3]
    assert collected(pages) == ALL
    for page in pages[:-1]:
        assert parse_qs(urlsplit(page.links["next"]).query)["limit"] == ["10"], page.links["next"]
    for page in pages[1:]:
        assert parse_qs(urlsplit(page.path).query)["limit"] == ["10"]


# Tag and author feeds


@pytest.fixture
def tagged(write_post: WritePost) -> None:
    write_post("alpha.md", title="Alpha", date="2025-05-01", tags="[Deep Dive]", author="Sam Rivera")
    write_post("beta.md", title="Beta", date="2025-05-02", tags="[Deep Dive, Other]")
    write_post("gamma.md", title="Gamma", date="2025-05-03", author="Sam Rivera")
    write_post("delta.md", title="Delta", date="2025-05-04", tags="[Deep]", author="Sam")
    write_post("epsilon.md", title="Epsilon", date="2025-05-05", author="[Ana Lee, Sam Rivera]")
    write_post("zeta.md", title="Zeta", date="2025-05-06")


CHANNELS = [
    ("tag/deep-dive", ["Beta", "Alpha"]),
    ("tag/other", ["Beta"]),
    ("tag/deep", ["Delta"]),
    ("author/sam-rivera", ["Epsilon", "Gamma", "Alpha"]),
    ("author/ana-lee", ["Epsilon"]),
    ("author/sam", ["Delta"]),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("channel", "expected"), CHANNELS)
def test_tag_and_author_feeds_hold_exactly_their_posts(tagged: None, client: FlaskClient, fmt: str, channel: str,
                                                       expected: list[str]) -> None:
    path = f"/feeds/{channel}.{fmt}"
    response = client.get(path)
    assert response.status_code == 200
    assert response.content_type.startswith({"atom": "application/atom+xml", "rss": "application/rss+xml",
                                             "json": "application/feed+json"}[fmt])
    page = read_page(client, path)
    assert page.titles == expected
    if fmt == "json":
        assert json.loads(response.data)["feed_url"] == BASE_URL + path
    else:
        assert page.links["self"] == BASE_URL + path


@pytest.mark.parametrize("fmt", FORMATS)
def test_author_feed_pages(tagged: None, make_app: Callable[..., Flask], fmt: str) -> None:
    pages = walk(make_app(max_items=1).test_client(), f"/feeds/author/sam-rivera.{fmt}")
    assert [page.titles for page in pages] == [["Epsilon"], ["Gamma"], ["Alpha"]]


@pytest.mark.parametrize("path", [
    "/feeds/tag/nope.atom", "/feeds/tag/nope.rss", "/feeds/tag/nope.json", "/feeds/author/nobody.atom",
    "/feeds/author/nobody.rss", "/feeds/author/nobody.json", "/feeds/tag/deep-dive.xml", "/feeds/tag/.atom",
    "/feeds/tags/deep-dive.atom", "/feeds/category/deep-dive.atom", "/feeds/author/sam-rivera/x.atom",
    "/feeds/author/zeta.atom", "/feeds/tag/deep-dive.atom/", "/feeds/author/sam-rivera.atom.json",
])
def test_unknown_tags_and_authors_are_404(tagged: None, client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404
