"""What feeds tell browsers, web readers, robots and pollers: the stylesheet, CORS, noindex, <ttl>,
429 for impolite polling, Retry-After on every 503, and who polls how in /metrics."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import WritePost
from flask import Flask
from lxml import etree

from feedsvc.polling import PollWatch, family_of

NEWSBOAT = "newsboat/2.30 (Linux x86_64)"
FEEDLY = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 12 subscribers)"


@pytest.fixture
def app(write_post: WritePost, make_app: Callable[..., Flask]) -> Flask:
    write_post("one.txt", title="One", description="The first.")
    return make_app(cache_max_age=600)


def test_feed_responses_allow_web_readers_and_ask_robots_not_to_index(app: Flask) -> None:
    client = app.test_client()
    for url in ("/feeds/all.atom", "/feeds/all.json", "/feeds/all.rss?limit=1"):
        first = client.get(url)
        assert first.headers["Access-Control-Allow-Origin"] == "*"
        assert "ETag" in first.headers["Access-Control-Expose-Headers"]
        assert first.headers["X-Robots-Tag"] == "noindex"
        # A 304 updates the stored 200, which has them: it carries just the validators and caching.
        again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304 and again.headers["ETag"] == first.headers["ETag"]
        assert "Access-Control-Allow-Origin" not in again.headers and "Sec-Fetch-Dest" in again.headers["Vary"]


def test_ttl_and_update_period_agree_with_max_age(app: Flask) -> None:
    response = app.test_client().get("/feeds/all.rss")
    assert response.headers["Cache-Control"] == "max-age=600"
    channel = etree.fromstring(response.data).find("channel")
    assert channel.findtext("ttl") == "10"  # minutes
    sy = "{http://purl.org/rss/1.0/modules/syndication/}"
    assert (channel.findtext(f"{sy}updatePeriod"), channel.findtext(f"{sy}updateFrequency")) == ("hourly", "6")


def test_a_person_opening_a_feed_gets_its_page_and_readers_the_same_bytes(app: Flask) -> None:
    client = app.test_client()
    feed = client.get("/feeds/all.atom")
    navigation = {"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate", "Accept": "text/html,*/*;q=0.8"}
    page = client.get("/feeds/all.atom", headers=navigation)
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    assert "One" in page.get_data(as_text=True) and page.headers["X-Robots-Tag"] == "noindex"
    assert "Sec-Fetch-Dest" in page.headers["Vary"] and "Sec-Fetch-Dest" in feed.headers["Vary"]
    for reader in ({}, {"Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"}):  # a reader; a web reader's fetch()
        again = client.get("/feeds/all.atom", headers=reader)
        assert again.data == feed.data and again.headers["ETag"] == feed.headers["ETag"]


def test_full_fetches_sooner_than_the_interval_get_429_conditional_ones_never(
        write_post: WritePost, make_app: Callable[..., Flask]) -> None:
    write_post("one.txt", title="One")
    client = make_app(min_poll_interval=60).test_client()
    impolite = {"User-Agent": "impatient/1.0"}
    first = client.get("/feeds/all.atom", headers=impolite)
    assert first.status_code == 200
    refused = client.get("/feeds/all.atom", headers=impolite)
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client.get("/feeds/all.atom", headers={"User-Agent": "someone else"}).status_code == 200
    assert client.get("/feeds/all.rss", headers=impolite).status_code == 200  # another feed
    polite = {**impolite, "If-None-Match": first.headers["ETag"]}
    assert client.get("/feeds/all.atom", headers=polite).status_code == 304
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'feedsvc_feed_polls_refused_total{family="other"} 1.0' in metrics


def test_no_429_unless_asked(app: Flask) -> None:
    client = app.test_client()
    assert {client.get("/feeds/all.atom").status_code for _ in range(5)} == {200}


def test_metrics_show_each_reader_family_conditional_share_and_poll_gap() -> None:
    now = [0.0]
    watch = PollWatch(clock=lambda: now[0], follow_one_in=1)
    for minute in range(4):
        now[0] = minute * 60.0
        watch.poll("10.0.0.1", NEWSBOAT, "/feeds/all.atom", conditional=minute > 0)
        watch.poll("10.0.0.2", FEEDLY, "/feeds/all.atom", conditional=False)
    reports = {r.family: r for r in watch.report()}
    assert reports["newsboat"].conditional_share == 0.75 and reports["newsboat"].median_gap == 60.0
    assert reports["Feedly"].conditional_share == 0.0 and reports["Feedly"].polls == 4


def test_poll_memory_is_bounded() -> None:
    watch = PollWatch(capacity=100, follow_one_in=1)
    for client in range(1000):
        watch.poll(f"10.0.{client // 256}.{client % 256}", "reader", "/feeds/all.atom", conditional=False)
    assert len(watch._last) == 100


@pytest.mark.parametrize(("agent", "family"), [
    (NEWSBOAT, "newsboat"), (FEEDLY, "Feedly"),
    ("NetNewsWire (RSS Reader; https://netnewswire.com/)", "NetNewsWire"),
    ("Miniflux/2.1.0 (+https://miniflux.app)", "Miniflux"),
    ("python-feedparser/6.0.11 +https://github.com/", "feedparser"),
    ("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0", "browsers"), ("", "none"), ("zzz", "other"),
])
def test_reader_families(agent: str, family: str) -> None:
    assert family_of(agent) == family


def test_a_503_always_says_when_to_come_back(app: Flask) -> None:
    publisher = app.extensions["feedsvc"]
    import dataclasses
    publisher.snapshot = dataclasses.replace(publisher.snapshot, status="starting")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
