"""Feed URLs as HTTP caches and clients see them (RFC 9110/9111): validators, 304s, HEAD, gzip, methods, limits.

Also the URLs a feed hands out (never from the Host header) and its WebSub advertising.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

import pytest
from conftest import BASE_URL, NOW, WritePost, parse, rebuild
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from werkzeug.test import TestResponse

from feedsvc.config import Settings

ATOM_NS = "http://www.w3.org/2005/Atom"
NS = {"a": ATOM_NS}
HUB = "https://hub.example.com/"
# The newest `updated` of the newsroom: the ferry post was edited after the newer posts were published.
NEWEST_UPDATE = datetime(2025, 1, 20, 10, 30, tzinfo=UTC)
FEED_PATHS = [f"/feeds/{channel}.{fmt}" for channel in ("all", "category/news") for fmt in ("atom", "rss", "json")]
FEEDS = ["/feeds/all.atom", "/feeds/category/news.rss", "/feeds/all.json"]  # one of each format
STRONG_ETAG = re.compile(r'"[\x21\x23-\x7e]+"')  # RFC 9110 section 8.8.3: entity-tag without W/


@pytest.fixture
def newsroom(write_post: WritePost) -> None:
    write_post("2025/ferry.md", title="Ferry returns", date="2025-01-10-08-00-00", updated="2025-01-20T10:30:00Z",
               categories="[latest, news]", image="https://img.example.org/ferry.jpg", body="Boats *every* hour.")
    write_post("2025/clinic.md", title="Clinic hours", date="2025-01-12T09:30:00+01:00", categories="[news]")
    write_post("2025/match.md", title="Cup final", date="2025-01-11", categories="Sport")


@pytest.fixture
def five_posts(write_post: WritePost) -> None:
    for day in range(1, 6):
        write_post(f"p{day}.md", title=f"Post {day}", date=f"2025-02-0{day}")


def fmt_of(path: str) -> str:
    return path.split("?")[0].rsplit(".", 1)[1]


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def newest_updated(response: TestResponse, fmt: str) -> datetime:
    """The newest entry update the feed itself states (RSS items carry no update time: lastBuildDate)."""
    if fmt == "json":
        return max(datetime.fromisoformat(item["date_modified"]) for item in json.loads(response.data)["items"])
    root = etree.fromstring(response.data)
    if fmt == "atom":
        return max(datetime.fromisoformat(text) for text in root.xpath("a:entry/a:updated/text()", namespaces=NS))
    return parsedate_to_datetime(root.findtext("channel/lastBuildDate"))


def feed_updated(response: TestResponse, fmt: str) -> datetime | None:
    """When the document says it last changed: Atom's feed `updated`, RSS `lastBuildDate`; JSON Feed has none."""
    if fmt == "json":
        return None
    root = etree.fromstring(response.data)
    if fmt == "atom":
        return datetime.fromisoformat(root.findtext("a:updated", namespaces=NS))
    return parsedate_to_datetime(root.findtext("channel/lastBuildDate"))


def titles(response: TestResponse, fmt: str) -> list[str]:
    if fmt == "json":
        return [item["title"] for item in json.loads(response.data)["items"]]
    return [entry.title for entry in parse(response).entries]


def link_header(response: TestResponse) -> set[tuple[str, str]]:
    """(target, rel) pairs of an RFC 8288 Link header."""
    value = response.headers.get("Link", "")
    return {(m[1], m[2]) for m in re.finditer(r'<([^>]*)>\s*;\s*rel="?([^",;]+)"?', value)}


# Validators and caching headers


@pytest.mark.parametrize("path", FEED_PATHS)
def test_feed_responses_carry_validators(newsroom: None, client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    etag = response.headers["ETag"]
    assert STRONG_ETAG.fullmatch(etag), etag
    assert response.headers["Cache-Control"] == "max-age=300"
    assert response.headers["Vary"] == "Accept-Encoding, Sec-Fetch-Dest"
    # Dated when its posts last changed, told alike by the header and the document; the files were
    # written after the app's clock says it is (NOW), and no feed is dated in the future.
    assert response.last_modified == NOW
    assert feed_updated(response, fmt_of(path)) in (response.last_modified, None)
    if fmt_of(path) != "rss":  # RSS items carry no update time
        assert response.last_modified >= newest_updated(response, fmt_of(path)) == NEWEST_UPDATE


def test_cache_max_age_comes_from_settings(newsroom: None, make_app: Callable[..., Flask]) -> None:
    client = make_app(cache_max_age=60).test_client()
    for path in FEED_PATHS:
        fresh = client.get(path)
        assert fresh.headers["Cache-Control"] == "max-age=60", path
        revalidated = client.get(path, headers={"If-None-Match": fresh.headers["ETag"]})
        assert revalidated.headers["Cache-Control"] == "max-age=60", path


@pytest.mark.parametrize("path", FEED_PATHS)
def test_if_none_match_round_trip(newsroom: None, client: FlaskClient, path: str) -> None:
    fresh = client.get(path)
    revalidated = client.get(path, headers={"If-None-Match": fresh.headers["ETag"]})
    assert revalidated.status_code == 304
    assert revalidated.data == b""
    for name in ("ETag", "Cache-Control", "Vary", "Last-Modified"):
        assert revalidated.headers.get(name) == fresh.headers[name], name


# Each case: the conditional headers, with {etag} and {date} filled in from a first response.
CONDITIONAL = [
    pytest.param({"If-None-Match": "{etag}"}, 304, id="etag"),
    pytest.param({"If-None-Match": '"not-the-etag"'}, 200, id="other-etag"),
    pytest.param({"If-Modified-Since": "{date}"}, 304, id="same-date"),
    pytest.param({"If-Modified-Since": "{later}"}, 304, id="later-date"),
    pytest.param({"If-Modified-Since": "{earlier}"}, 200, id="earlier-date"),
    pytest.param({"If-Modified-Since": "yesterday-ish"}, 200, id="garbage-date"),
    pytest.param({"If-None-Match": '"not-the-etag"', "If-Modified-Since": "{date}"}, 200, id="etag-wins-over-date"),
    pytest.param({"If-None-Match": "{etag}", "If-Modified-Since": "{earlier}"}, 304, id="etag-wins-over-old-date"),
    pytest.param({"If-None-Match": "*"}, 304, id="star"),
    pytest.param({"If-None-Match": '"a", {etag}, "b"'}, 304, id="list"),
    pytest.param({"If-None-Match": '"a","b"'}, 200, id="list-without"),
    pytest.param({"If-None-Match": "W/{etag}"}, 304, id="weak-form"),
    pytest.param({"If-None-Match": '"{bare}-gzip"'}, 200, id="gzip-etag-without-gzip"),
]


@pytest.mark.parametrize("path", FEEDS)
@pytest.mark.parametrize(("headers", "status"), CONDITIONAL)
def test_conditional_get(newsroom: None, client: FlaskClient, path: str, headers: dict[str, str],
                         status: int) -> None:
    fresh = client.get(path)
    etag, modified = fresh.headers["ETag"], fresh.last_modified
    assert modified is not None
    values = {"etag": etag, "bare": etag.strip('"'), "date": http_date(modified),
              "later": http_date(modified + timedelta(days=1)), "earlier": http_date(modified - timedelta(seconds=1))}
    response = client.get(path, headers={name: value.format(**values) for name, value in headers.items()})
    assert response.status_code == status
    if status == 304:
        assert response.data == b""
        assert response.headers["ETag"] == etag
    else:
        assert response.data == fresh.data


# HEAD


@pytest.mark.parametrize("path", [*FEED_PATHS, "/", "/healthz", "/feeds.opml", "/posts/ferry", "/feeds/all"])
@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_head_has_get_headers_and_no_body(newsroom: None, client: FlaskClient, path: str,
                                          encoding: str | None) -> None:
    headers = {"Accept-Encoding": encoding} if encoding else {}
    got, head = client.get(path, headers=headers), client.head(path, headers=headers)
    assert got.status_code == head.status_code == 200
    assert got.data
    assert head.data == b""
    assert {**head.headers, "Date": ""} == {**got.headers, "Date": ""}  # the two may straddle a second


# gzip


@pytest.mark.parametrize("path", FEED_PATHS)
def test_gzip_body_is_the_identity_body(newsroom: None, client: FlaskClient, path: str) -> None:
    identity = client.get(path)
    zipped = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in identity.headers
    assert gzip.decompress(zipped.data) == identity.data
    assert zipped.content_type == identity.content_type
    assert zipped.headers["Vary"] == "Accept-Encoding, Sec-Fetch-Dest"
    assert STRONG_ETAG.fullmatch(zipped.headers["ETag"])
    assert zipped.headers["ETag"] != identity.headers["ETag"]
    assert zipped.last_modified == identity.last_modified


@pytest.mark.parametrize("path", FEEDS)
def test_gzip_etag_revalidates(newsroom: None, client: FlaskClient, path: str) -> None:
    accept = {"Accept-Encoding": "gzip, deflate"}
    zipped = client.get(path, headers=accept)
    etag = zipped.headers["ETag"]
    revalidated = client.get(path, headers={**accept, "If-None-Match": etag})
    assert revalidated.status_code == 304
    assert revalidated.data == b""
    assert revalidated.headers["ETag"] == etag
    assert revalidated.headers["Vary"] == "Accept-Encoding, Sec-Fetch-Dest"
    # The gzip validator names the gzip representation: an identity client holding it gets a fresh body.
    plain = client.get(path, headers={"If-None-Match": etag})
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers


@pytest.mark.parametrize("accept", [None, "gzip;q=0", "identity", "br", "gzip;q=0, identity", "deflate"])
def test_identity_unless_gzip_is_accepted(newsroom: None, client: FlaskClient, accept: str | None) -> None:
    baseline = client.get("/feeds/all.atom")
    response = client.get("/feeds/all.atom", headers={"Accept-Encoding": accept} if accept is not None else {})
    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers
    assert response.data == baseline.data
    assert response.headers["ETag"] == baseline.headers["ETag"]
    parse(response)


@pytest.mark.parametrize(("accept", "expected"), [
    ("*", None),  # either coding is right for "anything"
    ("GZIP", "gzip"),  # content codings are case-insensitive (RFC 9110 section 8.4.1)
    ("x-gzip, gzip;q=0.5", "gzip"),
    ("br", "identity"),
    (";;;,,", "identity"),
    (",", "identity"),
    ("", "identity"),
    ("gzip;q=abc", None),
    ("gzip;q=-1", None),
    ("gzip;q=2", None),
    ("gzip;;q=1", None),
    ("gzip, gzip;q=0", None),
    ("\u00e9\u00e9", "identity"),
    ("gzip" * 2000, "identity"),
])
def test_odd_accept_encodings_never_fail(newsroom: None, client: FlaskClient, accept: str,
                                         expected: str | None) -> None:
    identity = client.get("/feeds/all.rss").data
    response = client.get("/feeds/all.rss", headers={"Accept-Encoding": accept})
    assert response.status_code == 200
    coding = response.headers.get("Content-Encoding", "identity")
    assert coding in ("gzip", "identity")
    if expected is not None:
        assert coding == expected
    assert (gzip.decompress(response.data) if coding == "gzip" else response.data) == identity


# ETag stability


def feed_etags(client: FlaskClient) -> dict[tuple[str, str], str]:
    return {(path, accept): client.get(path, headers={"Accept-Encoding": accept}).headers["ETag"]
            for path in [*FEED_PATHS, "/feeds/category/sport.atom"] for accept in ("identity", "gzip")}


def test_etag_stable_across_rebuilds(newsroom: None, client: FlaskClient) -> None:
    before = feed_etags(client)
    rebuild(client.application)
    rebuild(client.application)
    assert feed_etags(client) == before
    assert len(set(before.values())) == len(before)  # each feed and encoding has its own


def test_etag_same_on_two_apps(newsroom: None, make_app: Callable[..., Flask]) -> None:
    first = make_app(now=datetime.now(UTC)).test_client()  # clocks after the files' writes, as real ones are
    second = make_app(now=datetime(2030, 6, 1, tzinfo=UTC)).test_client()
    assert feed_etags(first) == feed_etags(second)
    for path in FEED_PATHS:  # the same bytes, not only the same hash
        assert first.get(path).data == second.get(path).data, path


def test_etag_changes_with_the_content(newsroom: None, write_post: WritePost, client: FlaskClient) -> None:
    before = feed_etags(client)
    old = client.get("/feeds/all.atom").headers["ETag"]
    write_post("2025/ferry.md", title="Ferry returns after a long winter", date="2025-01-10-08-00-00",
               updated="2025-01-20T10:30:00Z", categories="[latest, news]",
               image="https://img.example.org/ferry.jpg", body="Boats *every* hour.")
    rebuild(client.application)
    after = feed_etags(client)
    for key in before:
        if key[0] == "/feeds/category/sport.atom":
            assert after[key] == before[key], key  # the ferry is not in Sport
        else:
            assert after[key] != before[key], key
    response = client.get("/feeds/all.atom", headers={"If-None-Match": old})
    assert response.status_code == 200
    assert "Ferry returns after a long winter" in titles(response, "atom")


# Methods, unknown paths, odd requests


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", [*FEED_PATHS, "/", "/feeds/tag/none.atom"])
def test_write_methods_are_not_allowed(newsroom: None, client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method, data=b"<feed/>")
    assert response.status_code == 405
    assert {"GET", "HEAD"} <= {m.strip() for m in response.headers["Allow"].split(",")}
    assert b"Traceback" not in response.data


@pytest.mark.parametrize("path", [
    "/nope", "/feeds", "/feeds/", "/feeds/all.xml", "/feeds/all.atom/", "/feeds/nope.rss", "/feeds/category/nope.json",
    "/feeds/tag/nope.atom", "/feeds/author/nobody.rss", "/posts/", "/posts/nope", "/feeds/all.", "/feeds/.atom",
    "/feeds.opml/x", "/healthz/x", "/feeds/all.atom.gz", "/feeds/category/nope.atom", "/feeds/category/nope",
    "/feeds/tag/news.atom", "/feeds/category/../all.atom", "/feeds/category/news.atom/x", "/feeds/category/news.",
])
def test_unknown_paths_are_404(newsroom: None, client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert b"Traceback" not in response.data


@pytest.mark.parametrize("path", ["/feeds/all.atom", "/", "/feeds.opml", "/healthz"])
def test_options_is_not_allowed_either(newsroom: None, client: FlaskClient, path: str) -> None:
    response = client.open(path, method="OPTIONS")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/feeds//all.atom", "//feeds/all.atom", "/feeds/category//news.rss"])
def test_double_slashes_never_redirect_to_the_host_header(newsroom: None, client: FlaskClient, path: str) -> None:
    response = client.get(path, headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "Location" not in response.headers


@pytest.mark.parametrize("digits", [4301, 5000, 100_000])
def test_a_limit_too_long_for_int_is_the_largest_limit(newsroom: None, client: FlaskClient, digits: int) -> None:
    response = client.get(f"/feeds/all.atom?limit={'9' * digits}")
    assert response.status_code == 200
    assert len(parse(response).entries) == 3
    assert client.get(f"/feeds/all.atom?limit={'0' * digits}").status_code == 400


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/feeds/" + "a" * 10_000 + ".atom"),
    ("GET", "/" + "x/" * 3000),
    ("GET", "/feeds/all.atom?" + "limit=1&" * 2000),
    ("GET", "/feeds/%2e%2e/%2e%2e/etc/passwd"),
    ("GET", "/feeds/category/%2e%2e/all.atom"),
    ("GET", "/feeds/..%2fall.atom"),
    ("GET", "/feeds/all.atom%00"),
    ("GET", "/feeds/%ff%fe.rss"),
    ("GET", "/posts/%00"),
    ("GET", "/posts/..%2f..%2fetc%2fpasswd"),
    ("GET", "/feeds/all.atom?limit=abc"),
    ("GET", "/feeds/all.atom?limit=0"),
    ("GET", "/feeds/all.atom?limit=-1"),
    ("GET", "/feeds/all.atom?limit=99999999999999999999999999"),
    ("GET", "/feeds/all.atom?limit=1&limit=abc"),
    ("GET", "/feeds/all.rss?before=garbage"),
    ("GET", "/feeds/all.json?before="),
    ("GET", "/feeds/all.json?before=99999999T999999Z-x"),
    ("GET", "/feeds/all.json?before=00010101T000000Z-x"),
    ("GET", "/feeds/all.atom?before=20250101T000000.Z-x"),
    ("GET", "/feeds/category/news.atom?before=%00&limit=%00"),
    ("GET", "/feeds/tag/x.atom?before=garbage&limit=abc"),
    ("GET", "/feeds/all?limit=abc"),
    ("GET", "/feeds/../feeds/all.atom"),
    ("HEAD", "/feeds/all.atom?before=garbage"),
    ("OPTIONS", "/feeds/all.atom"),
    ("TRACE", "/feeds/all.atom"),
    ("BREW", "/"),
    ("POST", "/feeds/all.atom?limit=abc"),
])
def test_odd_requests_never_fail(newsroom: None, client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method)
    assert response.status_code < 500
    assert b"Traceback" not in response.data
    assert b"File \"" not in response.data


# ?limit=


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_limit_returns_the_newest_n(five_posts: None, client: FlaskClient, fmt: str) -> None:
    response = client.get(f"/feeds/all.{fmt}?limit=2")
    assert response.status_code == 200
    assert titles(response, fmt) == ["Post 5", "Post 4"]
    assert titles(client.get(f"/feeds/all.{fmt}?limit=5"), fmt) == ["Post 5", "Post 4", "Post 3", "Post 2", "Post 1"]


@pytest.mark.parametrize(("limit", "count"), [("1", 1), ("2", 2), ("3", 3), ("4", 3), ("10", 3), ("500000", 3)])
def test_limit_is_capped_by_max_limit(five_posts: None, make_app: Callable[..., Flask], limit: str,
                                      count: int) -> None:
    client = make_app(max_limit=3).test_client()
    for fmt in ("atom", "rss", "json"):
        response = client.get(f"/feeds/all.{fmt}?limit={limit}")
        assert response.status_code == 200
        assert titles(response, fmt) == ["Post 5", "Post 4", "Post 3"][:count]


@pytest.mark.parametrize("limit", ["abc", "0", "-1", "", "1.5", "+3", " 2", "2 ", "0x10", "1e3", "%C2%B2", "%E2%85%A0"])
def test_bad_limit_is_400(five_posts: None, client: FlaskClient, limit: str) -> None:
    for fmt in ("atom", "rss", "json"):
        response = client.get(f"/feeds/all.{fmt}?limit={limit}")
        assert response.status_code == 400, (fmt, limit)
        assert b"Traceback" not in response.data


# Absolute URLs


@pytest.mark.parametrize("path", [*FEED_PATHS, "/feeds/all.atom?limit=1", "/feeds/all.rss?limit=1",
                                  "/feeds/all.json?limit=1", "/feeds.opml", "/", "/feeds/all"])
def test_urls_ignore_a_forged_host(newsroom: None, make_app: Callable[..., Flask], path: str) -> None:
    client = make_app(websub_hubs=HUB).test_client()
    honest = client.get(path)
    forged = client.get(path, headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example",
                                       "X-Forwarded-Proto": "http", "Forwarded": "host=evil.example"})
    assert forged.status_code == honest.status_code == 200
    assert forged.data == honest.data
    assert BASE_URL.encode() in forged.data
    assert b"evil.example" not in forged.data
    assert forged.headers.get("Link") == honest.headers.get("Link")
    assert "evil.example" not in str(forged.headers)


# WebSub


def advertised(response: TestResponse, fmt: str) -> set[tuple[str, str]]:
    """(href, rel) of the hub and self links in the document (JSON Feed's self link is its feed_url)."""
    if fmt == "json":
        feed = json.loads(response.data)
        assert all(hub["type"] == "WebSub" for hub in feed.get("hubs", []))
        return {(hub["url"], "hub") for hub in feed.get("hubs", [])} | {(feed["feed_url"], "self")}
    root = etree.fromstring(response.data)
    links = root.xpath("a:link" if fmt == "atom" else "channel/a:link", namespaces=NS)
    return {(link.get("href"), link.get("rel")) for link in links if link.get("rel") in ("hub", "self")}


def test_websub_hubs_setting_is_a_comma_separated_list(make_settings: Callable[..., Settings]) -> None:
    assert make_settings(websub_hubs=HUB).websub_hubs == (HUB,)
    two = make_settings(websub_hubs=f"{HUB}, https://hub2.example.net/hub")
    assert two.websub_hubs == (HUB, "https://hub2.example.net/hub")
    assert make_settings().websub_hubs == ()


@pytest.mark.parametrize("path", FEED_PATHS)
def test_websub_hub_is_advertised(newsroom: None, make_app: Callable[..., Flask], path: str) -> None:
    client = make_app(websub_hubs=HUB).test_client()
    response = client.get(path)
    self_url = BASE_URL + path
    assert advertised(response, fmt_of(path)) == {(HUB, "hub"), (self_url, "self")}
    assert link_header(response) == {(HUB, "hub"), (self_url, "self")}
    revalidated = client.get(path, headers={"If-None-Match": response.headers["ETag"]})
    assert revalidated.status_code == 304
    assert link_header(revalidated) == link_header(response)


def test_every_hub_is_advertised(newsroom: None, make_app: Callable[..., Flask]) -> None:
    second = "https://hub2.example.net/hub"
    client = make_app(websub_hubs=f"{HUB},{second}").test_client()
    for path in FEED_PATHS:
        response = client.get(path)
        expected = {(HUB, "hub"), (second, "hub"), (BASE_URL + path, "self")}
        assert advertised(response, fmt_of(path)) == expected, path
        assert link_header(response) == expected, path


@pytest.mark.parametrize("path", FEED_PATHS)
def test_no_hubs_no_advertising(newsroom: None, client: FlaskClient, path: str) -> None:
    response = client.get(path)
    fmt = fmt_of(path)
    assert advertised(response, fmt) == {(BASE_URL + path, "self")}
    assert "Link" not in response.headers
    assert b"hub" not in response.data
    if fmt == "json":
        assert "hubs" not in json.loads(response.data)
