"""A restart serves the feeds the last run saved at once, then catches up with the folder (Publisher.resume)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import NOW, WritePost, parse
from flask import Flask
from serving import http_get, serve, wait_until

from feedsvc.app import create_app
from feedsvc.config import Settings

FEEDS = ["/feeds/all.atom", "/feeds/all.rss", "/feeds/all.json", "/feeds/category/news.atom"]


@pytest.fixture
def newsroom(write_post: WritePost) -> None:
    write_post("2025/ferry.md", title="Ferry returns", date="2025-01-10-08-00-00", categories="[latest, news]",
               tags="[harbour]", body="Boats peel in.")
    write_post("2025/clinic.md", title="Clinic hours", date="2025-01-12T09:30:00Z", categories="[news]")


@pytest.fixture
def saved(newsroom: None, make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    """Settings whose cache holds a run's state, feeds included (as `serve` leaves it when stopped)."""
    settings = make_settings(cache_dir=str(tmp_path / "cache"), resume="on")
    first = create_app(settings, clock=lambda: NOW)
    first.extensions["feedsvc"].persist()
    return settings


def answers(app: Flask) -> dict[str, tuple[int, bytes, str | None, str | None]]:
    client = app.test_client()
    return {path: (r.status_code, r.data, r.headers.get("ETag"), r.headers.get("Last-Modified"))
            for path in FEEDS for r in [client.get(path)]}


def test_a_restart_serves_the_saved_feeds_before_it_reads_the_posts(saved: Settings) -> None:
    before = answers(create_app(saved, clock=lambda: NOW))
    app = create_app(saved, clock=lambda: NOW + timedelta(minutes=5), resume=True)
    publisher = app.extensions["feedsvc"]
    assert publisher.warming
    assert answers(app) == before  # the same bytes and validators: readers' 304s still hold
    client = app.test_client()
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json is not None and health.json["warming"] is True
    assert client.get("/feeds.opml").status_code == 200 and client.get("/").status_code == 200
    # What needs the posts is not missing, only not read yet: 503 and when to come back, never a 404.
    for path in ("/feeds/all.atom?limit=1", "/feeds/tag/harbour.atom", "/posts/ferry", "/feeds/all"):
        response = client.get(path)
        assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1, path
    publisher.rebuild()  # what start_background's first rescan does
    assert not publisher.warming and "warming" not in (client.get("/healthz").json or {})
    assert answers(app) == before
    assert parse(client.get("/feeds/tag/harbour.atom")).entries[0].title == "Ferry returns"
    assert client.get("/posts/ferry").status_code == 200
    assert client.get("/feeds/no-such.atom?limit=1").status_code == 404


def test_a_change_made_while_stopped_shows_after_the_first_build_and_reaches_the_hubs(
        saved: Settings, write_post: WritePost) -> None:
    write_post("2025/clinic.md", title="Clinic hours extended", date="2025-01-12T09:30:00Z", categories="[news]")
    app = create_app(saved, clock=lambda: NOW + timedelta(minutes=5), resume=True)
    publisher = app.extensions["feedsvc"]
    told: list[list[str]] = []
    publisher.on_change = told.append
    client = app.test_client()
    assert "Clinic hours extended" not in client.get("/feeds/all.atom").get_data(as_text=True)
    publisher.rebuild()
    assert [e.title for e in parse(client.get("/feeds/all.atom")).entries] == ["Clinic hours extended", "Ferry returns"]
    assert any(url.endswith("/feeds/category/news.atom") for url in told[0])  # never told before: now it is


def test_no_saved_feeds_or_other_settings_mean_an_ordinary_first_build(
        newsroom: None, make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    fresh = create_app(make_settings(cache_dir=cache, resume="on"), clock=lambda: NOW, resume=True)
    assert not fresh.extensions["feedsvc"].warming
    assert fresh.test_client().get("/feeds/all.atom?limit=1").status_code == 200
    fresh.extensions["feedsvc"].persist()
    other = create_app(make_settings(cache_dir=cache, max_items=1, resume="on"), clock=lambda: NOW, resume=True)
    assert not other.extensions["feedsvc"].warming
    other.extensions["feedsvc"].persist()
    # `auto` resumes only from a cache big enough to take seconds to read; this one is not.
    other = create_app(make_settings(cache_dir=cache, max_items=1, resume="auto"), clock=lambda: NOW, resume=True)
    assert not other.extensions["feedsvc"].warming
    assert len(parse(other.test_client().get("/feeds/all.atom")).entries) == 1  # made with its own settings


@pytest.mark.system  # two real `feedsvc serve` runs
def test_serve_restarts_on_the_saved_feeds_and_then_shows_what_changed_meanwhile(
        newsroom: None, write_post: WritePost, content_dir: Path, tmp_path: Path) -> None:
    base = "http://feeds.example.test"  # the same for both runs: it is part of what the cache was made with
    cache = str(tmp_path / "cache")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with serve(content_dir, tmp_path / "one", base_url=base, FEEDSVC_CACHE_DIR=cache, FEEDSVC_RESUME="on") as one:
        assert http_get(f"{one.url}/feeds/all.atom")[0] == 200
    write_post("2025/clinic.md", title="Clinic hours extended", date="2025-01-12T09:30:00Z", categories="[news]")
    with serve(content_dir, tmp_path / "two", base_url=base, FEEDSVC_CACHE_DIR=cache, FEEDSVC_RESUME="on") as two:
        def shows_the_edit() -> bool:
            return "Clinic hours extended" in http_get(f"{two.url}/feeds/all.atom")[2].decode()

        wait_until(shows_the_edit, 20.0, "the edit made while stopped to show")
        assert "while the posts are read" in two.logs()  # it did start on the saved feeds
        health = json.loads(http_get(f"{two.url}/healthz")[2])
        assert health["status"] == "ok" and "warming" not in health
        assert http_get(f"{two.url}/feeds/tag/harbour.atom")[0] == 200


def test_a_post_added_as_a_big_restart_begins_shows_after_the_first_rebuild_its_event_asks_for(
        saved: Settings, write_post: WritePost, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written after the saved feeds are served, before the first rebuild: its event's rebuild is
    the first, and must list the folder as it is then, not as it was when serving began."""
    from feedsvc import publisher as publisher_module
    from feedsvc import scan

    monkeypatch.setattr(publisher_module, "LIST_AHEAD_FROM", 1)  # this cache counts as big
    monkeypatch.setattr(scan, "LIST_ELSEWHERE_FROM", 0)
    real = scan.list_elsewhere

    def listed_at_once(root: str, extensions: tuple[str, ...]) -> object:  # a listing begun is a listing done
        listing = real(root, extensions)
        listing.result(timeout=60)
        return listing

    monkeypatch.setattr(scan, "list_elsewhere", listed_at_once)
    app = create_app(saved, clock=lambda: NOW + timedelta(minutes=5), resume=True)
    publisher = app.extensions["feedsvc"]
    assert publisher.warming
    path = write_post("2025/just-now.md", title="Written as it started", date="2025-01-13T10:00:00Z")
    publisher.rebuild([str(path)])  # the file event's, before the schedule's first full rescan
    assert "Written as it started" in [e.title for e in parse(app.test_client().get("/feeds/all.atom")).entries]
