"""A subscribed URL never just disappears, and what /healthz tells whom.

A channel (category, tag or author) that has served entries keeps answering: a valid empty feed
while it has no posts, a permanent redirect when it is renamed in the configuration
(`[redirects]`), and `410 Gone` when it is retired there (`retired`), in `feedsvc serve`, across a
restart and in the static export behind nginx. Also here: a failing WebSub callback never undoes
a rebuild, two settings checked at start-up, and /healthz naming files only to an operator.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pytest
from conftest import BASE_URL, NOW, WritePost, parse, rebuild, write_whole
from flask import Flask
from flask.testing import FlaskClient
from lab.clients import ADAPTERS, Client, Entry, expected_view, make_client, missing
from lab.proxy import RecordingProxy
from lxml import etree
from serving import NGINX, Served, run_nginx, serve, wait_until

from feedsvc.app import create_app
from feedsvc.cli import main
from feedsvc.config import ConfigError, Settings, load_settings, to_env
from feedsvc.model import FeedFormat
from feedsvc.parsecache import cache_file
from feedsvc.publisher import Publisher
from feedsvc.websub import WebSubNotifier

FORMATS = ("atom", "rss", "json")
ATOM = "{http://www.w3.org/2005/Atom}"
TOKEN = "operator-7f3a9c2e5b1d4f60"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}
EMPTIED = ("category/sport", "tag/football", "author/ana-lopez")  # the channels match.md alone is in
ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = ROOT.parent / "shared" / "tools" / "w3c-feedvalidator" / "w3c-validate"

MakeApp = Callable[..., Flask]


@pytest.fixture
def newsroom(write_post: WritePost) -> None:
    write_post("2025/ferry.md", title="Ferry returns", date="2025-01-10T08:00:00Z", categories="[news]",
               tags="[harbour]", author="Sam Rivera")
    write_post("2025/match.md", title="Cup final", date="2025-01-11T18:00:00Z", categories="[sport]",
               tags="[football]", author="Ana Lopez")


@pytest.fixture
def configured(content_dir: Path, tmp_path: Path) -> Callable[..., Settings]:
    """Settings read from a TOML file (FEEDSVC_CONFIG) the way the service reads them."""
    def make(toml: str, **overrides: Any) -> Settings:
        path = tmp_path / "feedsvc.toml"
        path.write_text(toml, "utf-8")
        values: dict[str, Any] = {"content_dir": content_dir, "base_url": BASE_URL, "settle": 0,
                                  "site_title": "Example News", "author": "Example Newsroom", **overrides}
        return load_settings(env={"FEEDSVC_CONFIG": str(path)}, **values)
    return make


RENAMED = '[redirects]\n"category/sport" = "category/sports"\n'
RETIRED = 'retired = ["tag/football"]\n'


def feed_of(response: Any, fmt: str) -> tuple[str, list[str]]:
    """(the feed's own URL, entry titles) as a reader sees them; XML must parse cleanly."""
    if fmt == "json":
        body = response.json
        assert body["version"] == "https://jsonfeed.org/version/1.1" and body["title"]
        return body["feed_url"], [item["title"] for item in body["items"]]
    parsed = parse(response)
    assert parsed.feed.title
    return next(link.href for link in parsed.feed.links if link.rel == "self"), [e.title for e in parsed.entries]


def atom_head(data: bytes) -> dict[str, str | None]:
    root = etree.fromstring(data)
    return {"id": root.findtext(f"{ATOM}id"), "updated": root.findtext(f"{ATOM}updated"),
            "author": root.findtext(f"{ATOM}author/{ATOM}name"),
            "self": next((link.get("href") for link in root.iter(f"{ATOM}link") if link.get("rel") == "self"), None)}


def opml_feeds(client: FlaskClient) -> set[str]:
    root = etree.fromstring(client.get("/feeds.opml").data)
    return {str(o.get("xmlUrl")) for o in root.iter("outline") if o.get("xmlUrl")}


# --- A (1): a channel whose posts are all gone answers an empty feed -----------------------------

@pytest.mark.parametrize("path", EMPTIED)
def test_a_channel_whose_posts_are_all_removed_keeps_answering_an_empty_feed(
        newsroom: None, make_app: MakeApp, content_dir: Path, path: str) -> None:
    app = make_app()
    client = app.test_client()
    before = {fmt: client.get(f"/feeds/{path}.{fmt}") for fmt in FORMATS}
    assert all(response.status_code == 200 for response in before.values())
    (content_dir / "2025/match.md").unlink()
    rebuild(app)
    for fmt in FORMATS:
        url = f"/feeds/{path}.{fmt}"
        response = client.get(url)
        assert response.status_code == 200, url
        assert feed_of(response, fmt) == (f"{BASE_URL}{url}", []), url  # the same feed, with no entries
        assert response.last_modified > before[fmt].last_modified, url  # its bytes changed
        since = client.get(url, headers={"If-Modified-Since": before[fmt].headers["Last-Modified"]})
        assert since.status_code == 200, url
        assert client.get(url, headers={"If-None-Match": response.headers["ETag"]}).status_code == 304, url
    head = atom_head(client.get(f"/feeds/{path}.atom").data)
    modified = client.get(f"/feeds/{path}.atom").last_modified
    assert head["id"] == head["self"] == f"{BASE_URL}/feeds/{path}.atom"
    assert head["author"] == "Example Newsroom"  # Atom: a feed with no entries still needs an author
    assert head["updated"] is not None
    assert datetime.fromisoformat(head["updated"]) == modified
    assert client.get(f"/feeds/{path}").status_code == 200  # the preview too
    assert client.get(f"/feeds/{path}.atom?limit=5").status_code == 200


def test_an_empty_channel_is_not_advertised(newsroom: None, make_app: MakeApp, content_dir: Path) -> None:
    app = make_app()
    client = app.test_client()
    assert f"{BASE_URL}/feeds/category/sport.atom" in opml_feeds(client)
    (content_dir / "2025/match.md").unlink()
    rebuild(app)
    listed = opml_feeds(client)
    assert listed == {f"{BASE_URL}/feeds/{path}.atom" for path in ("all", "category/news", "tag/harbour",
                                                                   "author/sam-rivera")}
    index = client.get("/").text
    assert "/feeds/category/sport" not in index and "/feeds/tag/football" not in index
    assert "/feeds/category/news" in index


def test_a_channel_that_never_had_posts_is_still_404(newsroom: None, client: FlaskClient) -> None:
    for path in ("/feeds/category/nope.atom", "/feeds/tag/nope.rss", "/feeds/author/nobody.json",
                 "/feeds/category/nope"):
        assert client.get(path).status_code == 404, path


def test_a_post_coming_back_fills_the_kept_feed_again(
        newsroom: None, make_app: MakeApp, content_dir: Path, write_post: WritePost) -> None:
    app = make_app()
    client = app.test_client()
    (content_dir / "2025/match.md").unlink()
    rebuild(app)
    empty = client.get("/feeds/category/sport.rss")
    write_post("2025/derby.md", title="Derby day", date="2025-01-12T15:00:00Z", categories="[sport]")
    rebuild(app)
    again = client.get("/feeds/category/sport.rss")
    assert feed_of(again, "rss")[1] == ["Derby day"]
    assert again.last_modified > empty.last_modified
    assert f"{BASE_URL}/feeds/category/sport.atom" in opml_feeds(client)


def test_the_empty_feed_keeps_its_validators_across_a_restart(
        newsroom: None, make_app: MakeApp, content_dir: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    app = make_app(cache_dir=cache)
    (content_dir / "2025/match.md").unlink()
    rebuild(app)
    client = app.test_client()
    before = {fmt: client.get(f"/feeds/category/sport.{fmt}") for fmt in FORMATS}
    app.extensions["feedsvc"].persist()
    restarted = make_app(now=NOW + timedelta(days=1), cache_dir=cache).test_client()  # a new app, the same cache
    for fmt, earlier in before.items():
        url = f"/feeds/category/sport.{fmt}"
        response = restarted.get(url)
        assert (response.status_code, response.data) == (200, earlier.data), url
        assert response.headers["ETag"] == earlier.headers["ETag"], url
        assert restarted.get(url, headers={"If-Modified-Since": earlier.headers["Last-Modified"]}).status_code == 304


def test_a_channel_emptied_while_the_service_was_down_keeps_answering(
        newsroom: None, make_app: MakeApp, content_dir: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    app = make_app(cache_dir=cache)
    before = app.test_client().get("/feeds/tag/football.atom")
    app.extensions["feedsvc"].persist()
    (content_dir / "2025/match.md").unlink()
    restarted = make_app(now=NOW + timedelta(days=1), cache_dir=cache).test_client()
    response = restarted.get("/feeds/tag/football.atom")
    assert response.status_code == 200
    assert parse(response).entries == []
    assert response.last_modified > before.last_modified


# --- A (2, 3): renamed and retired channels ---------------------------------------------------------

def test_a_renamed_channel_redirects_permanently_everywhere(
        write_post: WritePost, configured: Callable[..., Settings]) -> None:
    write_post("2025/match.md", title="Cup final", date="2025-01-11T18:00:00Z", categories="[sports]")
    write_post("2025/derby.md", title="Derby", date="2025-01-12T18:00:00Z", categories="[sports]")
    client = create_app(configured(RENAMED), clock=lambda: NOW).test_client()
    for fmt in FORMATS:
        for method in ("GET", "HEAD"):
            response = client.open(f"/feeds/category/sport.{fmt}", method=method)
            assert response.status_code == 301, (fmt, method)
            assert response.headers["Location"] == f"{BASE_URL}/feeds/category/sports.{fmt}"
    preview = client.get("/feeds/category/sport")
    assert (preview.status_code, preview.headers["Location"]) == (301, f"{BASE_URL}/feeds/category/sports")
    page = client.get("/feeds/category/sport.atom?limit=1&before=20250112T180000Z-derby")
    assert page.status_code == 301
    assert page.headers["Location"] == f"{BASE_URL}/feeds/category/sports.atom?limit=1&before=20250112T180000Z-derby"
    assert client.get(page.headers["Location"].removeprefix(BASE_URL)).status_code == 200
    assert f"{BASE_URL}/feeds/category/sport.atom" not in opml_feeds(client)


def test_a_redirect_wins_over_posts_that_still_use_the_old_name(
        newsroom: None, configured: Callable[..., Settings]) -> None:
    client = create_app(configured(RENAMED), clock=lambda: NOW).test_client()
    assert client.get("/feeds/category/sport.rss").status_code == 301
    assert client.get("/feeds/category/sports.rss").status_code == 404  # nothing there yet, and no loop
    assert f"{BASE_URL}/feeds/category/sport.atom" not in opml_feeds(client)


def test_a_retired_channel_is_gone(newsroom: None, configured: Callable[..., Settings]) -> None:
    client = create_app(configured(RETIRED), clock=lambda: NOW).test_client()
    for path in [f"/feeds/tag/football.{fmt}" for fmt in FORMATS] + ["/feeds/tag/football",
                                                                      "/feeds/tag/football.atom?limit=1"]:
        response = client.get(path)
        assert response.status_code == 410, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert f"{BASE_URL}/feeds/tag/football.atom" not in opml_feeds(client)
    assert client.get("/feeds/tag/harbour.atom").status_code == 200


def test_redirects_and_retirements_may_come_from_the_environment(newsroom: None, make_app: MakeApp) -> None:
    client = make_app(redirects="category/sport=category/sports, tag/football=tag/soccer",
                      retired="author/ana-lopez").test_client()
    assert client.get("/feeds/tag/football.json").headers["Location"] == f"{BASE_URL}/feeds/tag/soccer.json"
    assert client.get("/feeds/author/ana-lopez.json").status_code == 410


def test_chained_renames_redirect_in_one_hop(configured: Callable[..., Settings]) -> None:
    settings = configured('[redirects]\n"tag/a" = "tag/b"\n"tag/b" = "tag/c"\n"category/x" = "all"\n')
    assert dict(settings.redirects) == {"tag/a": "tag/c", "tag/b": "tag/c", "category/x": "all"}


def test_redirects_survive_the_trip_to_the_worker_process(configured: Callable[..., Settings]) -> None:
    settings = configured(RENAMED + "", retired="tag/football,tag/old", admin_token=TOKEN)
    assert load_settings(env=to_env(settings)) == settings


@pytest.mark.parametrize(("toml", "named"), [
    ('[redirects]\n"category/Old News" = "category/new"\n', "category/Old News"),
    ('[redirects]\n"category/old" = "https://elsewhere.example/feed.xml"\n', "https://elsewhere.example/feed.xml"),
    ('[redirects]\n"category/old" = "category/new.atom"\n', "category/new.atom"),
    ('[redirects]\n"all" = "category/news"\n', "'all'"),
    ('[redirects]\n"categories/old" = "category/new"\n', "categories/old"),
    ('[redirects]\n"category/a" = "category/a"\n', "category/a"),
    ('[redirects]\n"category/a" = "category/b"\n"category/b" = "category/a"\n', "category/a"),
    ('[redirects]\n"tag/old" = 3\n', "tag/old"),
    ('redirects = "category/a"\n', "redirects"),
    ('retired = ["tag/old", "tags/x"]\n', "tags/x"),
    ('retired = ["all"]\n', "'all'"),
    ('retired = ["tag/old"]\n[redirects]\n"tag/old" = "tag/new"\n', "tag/old"),
    ('retired = ["tag/new"]\n[redirects]\n"tag/old" = "tag/new"\n', "tag/new"),
])
def test_bad_redirects_and_retirements_are_refused_naming_the_entry(
        toml: str, named: str, configured: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError) as caught:
        configured(toml)
    assert named in str(caught.value)
    assert "redirects" in str(caught.value) or "retired" in str(caught.value)


def test_a_redirect_to_a_channel_that_does_not_exist_yet_is_allowed(
        newsroom: None, configured: Callable[..., Settings]) -> None:
    client = create_app(configured('[redirects]\n"tag/football" = "tag/brand-new"\n'), clock=lambda: NOW).test_client()
    assert client.get("/feeds/tag/football.atom").headers["Location"] == f"{BASE_URL}/feeds/tag/brand-new.atom"


@pytest.mark.parametrize("value", ["category/a", "category/a=category/b, category/a=category/c"])
def test_bad_redirects_in_the_environment_name_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match=r"FEEDSVC_REDIRECTS.*category/a"):
        load_settings(env={"FEEDSVC_REDIRECTS": value})


# --- B: a failing change callback ------------------------------------------------------------------

def test_a_failing_change_callback_is_logged_and_the_new_feeds_stand(
        newsroom: None, make_settings: Callable[..., Settings], write_post: WritePost,
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    settings = make_settings(cache_dir=str(tmp_path / "cache"))
    publisher = Publisher(settings, clock=lambda: NOW)
    publisher.rebuild()
    publisher.persist()
    cache = cache_file(settings)
    assert cache is not None
    written = cache.read_bytes()
    told: list[list[str]] = []

    def unreachable_hub(urls: list[str]) -> None:
        told.append(urls)
        raise OSError("hub unreachable")

    publisher.on_change = unreachable_hub
    write_post("2025/tram.md", title="Tram line opens", date="2025-01-12T07:00:00Z", categories="[news]")
    with caplog.at_level(logging.ERROR, logger="feedsvc.publisher"):
        snapshot = publisher.rebuild()  # does not raise
    assert publisher.snapshot is snapshot
    feed = publisher.page("all", FeedFormat.ATOM)
    assert feed is not None and parse(feed.body).entries[0].title == "Tram line opens"
    assert len(told) == 1 and f"{BASE_URL}/feeds/all.atom" in told[0]
    [record] = [r for r in caplog.records if r.name == "feedsvc.publisher" and r.levelno >= logging.ERROR]
    assert "hub unreachable" in record.getMessage() or record.exc_info is not None
    assert "serving" in record.getMessage()  # says the new feeds are served
    publisher.persist()  # the rebuild's changes still reach the cache
    assert cache.read_bytes() != written


# --- C: settings checked at start-up ---------------------------------------------------------------

def test_a_leader_lock_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    for bad in (tmp_path / "no-such-folder" / "leader.lock", tmp_path):
        with pytest.raises(ConfigError, match="FEEDSVC_LEADER_LOCK"):
            load_settings(env={"FEEDSVC_LEADER_LOCK": str(bad)})
    assert load_settings(env={"FEEDSVC_LEADER_LOCK": str(tmp_path / "leader.lock")}).leader_lock


@pytest.mark.parametrize(("xdg", "expected"), [
    ("", "/home/ed/.cache/feedsvc"),  # set but empty: as if unset (XDG Base Directory spec)
    ("relative/cache", "/home/ed/.cache/feedsvc"),  # relative: invalid, ignored (same spec)
    ("/var/cache/ed", "/var/cache/ed/feedsvc"),
    (None, "/home/ed/.cache/feedsvc"),
])
def test_the_cache_folder_follows_the_xdg_spec(xdg: str | None, expected: str) -> None:
    env = {"HOME": "/home/ed"} | ({} if xdg is None else {"XDG_CACHE_HOME": xdg})
    assert load_settings(env=env).cache_dir == expected


# --- D: /healthz for the public and for the operator -----------------------------------------------

@pytest.fixture
def embargoed(newsroom: None, write_post: WritePost) -> None:
    write_post("drafts/ceo-resigns-embargoed.md", "---\ntitle: CEO resigns\ndate: [soon\n---\nNot yet.\n")


def test_public_healthz_names_no_files(embargoed: None, make_app: MakeApp) -> None:
    client = make_app(admin_token=TOKEN).test_client()
    for headers in ({}, {"X-Forwarded-For": "127.0.0.1"}, {"X-Real-IP": "127.0.0.1"}):
        # The test client's requests come from 127.0.0.1, as every request does behind a proxy on the host.
        response = client.get("/healthz", headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert response.status_code == 200
        assert "ceo-resigns" not in response.text and "drafts/" not in response.text
        health = response.json
        assert "problems" not in health
        assert health["problem_count"] == 1
        assert health["status"] == "ok" and health["posts"] == 2 and health["last_build"]
        assert response.headers["Cache-Control"] == "no-store"


def test_the_operator_sees_every_problem_with_the_token(embargoed: None, make_app: MakeApp) -> None:
    client = make_app(admin_token=TOKEN).test_client()
    response = client.get("/healthz", headers=OPERATOR, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    problem = response.json["problems"][0]
    assert (problem["file"], problem["line"]) == ("drafts/ceo-resigns-embargoed.md", 4)
    assert response.json["problem_count"] == 1


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}",
                                           TOKEN, f"bearer  {TOKEN} extra"])
def test_a_wrong_token_is_refused(embargoed: None, make_app: MakeApp, authorization: str) -> None:
    response = make_app(admin_token=TOKEN).test_client().get("/healthz", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "ceo-resigns" not in response.text


def test_without_a_configured_token_no_one_is_an_operator(embargoed: None, make_app: MakeApp) -> None:
    client = make_app().test_client()
    assert client.get("/healthz", headers=OPERATOR).status_code == 401
    assert "ceo-resigns" not in client.get("/healthz").text


@pytest.mark.parametrize("token", ["short", "has a space in it 0123456789"])
def test_a_weak_admin_token_is_refused(token: str) -> None:
    with pytest.raises(ConfigError, match="FEEDSVC_ADMIN_TOKEN"):
        load_settings(env={"FEEDSVC_ADMIN_TOKEN": token})


def test_the_token_is_never_in_the_settings_repr() -> None:
    assert TOKEN not in repr(load_settings(env={"FEEDSVC_ADMIN_TOKEN": TOKEN}))


def test_public_healthz_shows_websub_state_without_hub_urls(newsroom: None, make_app: MakeApp) -> None:
    app = make_app(admin_token=TOKEN)
    hubs = ("https://hub.internal.example/publish?key=s3cret", "https://hub.example.net/")
    notifier = app.extensions["feedsvc.websub"] = WebSubNotifier(hubs)  # not started: its state is all we read
    error = "HTTP 500 from https://hub.internal.example/publish?key=s3cret"
    notifier.outcomes.by_hub, notifier.outcomes.last_error, notifier.outcomes.failed = {hubs[0]: error}, error, 1
    client = app.test_client()
    public = client.get("/healthz")
    assert "hub.internal" not in public.text and "s3cret" not in public.text
    assert public.json["websub"] == {"hubs_ok": 0, "hubs_failing": 1, "hubs_idle": 1, "sent": 0, "retried": 0,
                                     "failed": 1, "pending": 0}
    operator = client.get("/healthz", headers=OPERATOR).json["websub"]
    assert operator["hubs"] == {hubs[0]: error, hubs[1]: "idle"}
    assert "HTTP 500" in operator["last_error"]


def test_check_still_prints_every_problem(embargoed: None, content_dir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--content", str(content_dir)]) == 1
    assert capsys.readouterr().out.startswith("drafts/ceo-resigns-embargoed.md:4: ")


# --- the static export -----------------------------------------------------------------------------

def build(content_dir: Path, out: Path, base_url: str = BASE_URL) -> None:
    assert main(["build", "--content", str(content_dir), "--out", str(out), "--base-url", base_url]) == 0


def exported(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


@pytest.mark.parametrize("cache", ["kept", "lost"])
def test_build_keeps_writing_the_empty_feeds_of_channels_it_knew(
        newsroom: None, content_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: str) -> None:
    out = tmp_path / "export"
    build(content_dir, out)
    first = exported(out)
    if cache == "lost":  # the feed files already there show which channels existed
        monkeypatch.setenv("FEEDSVC_CACHE_DIR", "off")
    (content_dir / "2025/match.md").unlink()
    build(content_dir, out)
    second = exported(out)
    assert set(second) == set(first)  # nothing removed
    for path in EMPTIED:
        for fmt in FORMATS:
            name = f"feeds/{path}.{fmt}"
            data = (out / name).read_bytes()
            assert gzip.decompress((out / f"{name}.gz").read_bytes()) == data
            if fmt == "json":
                assert b'"items": []' in data or b'"items":[]' in data, name
            else:
                parsed = feedparser.parse(data)
                assert not parsed.bozo and parsed.entries == [], name
            assert second[name] > first[name], name  # nginx's Last-Modified and ETag move with the bytes
    assert b"category/sport" not in (out / "feeds.opml").read_bytes()
    build(content_dir, out)
    third = exported(out)
    for path in EMPTIED:  # and stay put while nothing changes, with or without the cache
        assert {n: t for n, t in third.items() if n.startswith(f"feeds/{path}.")} == \
            {n: t for n, t in second.items() if n.startswith(f"feeds/{path}.")}
    if cache == "kept":
        assert third == second


def test_build_removes_renamed_and_retired_feeds_and_writes_nginx_rules(
        newsroom: None, content_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "export"
    build(content_dir, out)
    rules = (out / "nginx-redirects.conf").read_text("utf-8")
    assert "location" not in rules.replace("# ", "")  # nothing configured: no rules, but the file nginx includes
    config = tmp_path / "feedsvc.toml"
    config.write_text(RETIRED + RENAMED, "utf-8")
    monkeypatch.setenv("FEEDSVC_CONFIG", str(config))
    build(content_dir, out)
    names = set(exported(out))
    assert not {n for n in names if n.startswith(("feeds/category/sport.", "feeds/tag/football."))}
    assert {"feeds/author/ana-lopez.atom", "feeds/category/news.atom"} <= names
    rules = (out / "nginx-redirects.conf").read_text("utf-8")
    for fmt in FORMATS:
        assert (f'location = /feeds/category/sport.{fmt} {{ return 301 '
                f'"{BASE_URL}/feeds/category/sports.{fmt}$is_args$args"; }}') in rules
        assert f"location = /feeds/tag/football.{fmt} {{ return 410; }}" in rules


@pytest.mark.system
@pytest.mark.skipif(not VALIDATOR.exists(), reason="the W3C validator is not beside the project")
def test_an_empty_feed_is_valid_for_the_w3c_validator(newsroom: None, content_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    build(content_dir, out)
    (content_dir / "2025/match.md").unlink()
    build(content_dir, out)
    for path in EMPTIED:
        assert parse((out / f"feeds/{path}.atom").read_bytes()).entries == []  # the empty feeds are among them
    result = subprocess.run([str(VALIDATOR), "--export", str(out), "--base-url", BASE_URL],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    checked = len(list(out.rglob("*.atom"))) + len(list(out.rglob("*.rss")))
    summary = result.stdout.strip().splitlines()[-1]
    assert summary == f"w3c-validate: {checked} feeds, 0 not clean", result.stdout[-5000:]


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request, redirects not followed (urllib would)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.system
@pytest.mark.skipif(not NGINX, reason="nginx is not installed (.ci/run installs Debian's nginx)")
def test_nginx_serves_empty_renamed_and_retired_feeds_from_the_export(
        newsroom: None, content_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        write_post: WritePost) -> None:
    from test_nginx import render_server_conf

    out = tmp_path / "export"
    config = tmp_path / "feedsvc.toml"
    config.write_text(RETIRED + RENAMED, "utf-8")

    def block(port: int) -> str:  # the feeds' absolute URLs name this nginx, so feedparser can follow them
        base = f"http://127.0.0.1:{port}"
        build(content_dir, out, base)
        write_post("2025/match.md", title="Cup final", date="2025-01-11T18:00:00Z", categories="[sports]",
                   tags="[football]", author="Ana Lopez")  # the rename, in the posts
        (content_dir / "2025/ferry.md").unlink()  # news, harbour and sam-rivera have no posts now
        monkeypatch.setenv("FEEDSVC_CONFIG", str(config))
        build(content_dir, out, base)
        return render_server_conf(out, port)

    with run_nginx(tmp_path / "nginx", block) as static:
        for fmt in FORMATS:
            status, headers, body = fetch(f"{static}/feeds/category/news.{fmt}")
            assert status == 200, fmt
            if fmt != "json":
                parsed = feedparser.parse(body)
                assert not parsed.bozo and parsed.entries == [], fmt
            status, headers, _ = fetch(f"{static}/feeds/category/sport.{fmt}?before=x")
            assert (status, headers["location"]) == (301, f"{static}/feeds/category/sports.{fmt}?before=x")
            assert fetch(f"{static}/feeds/tag/football.{fmt}")[0] == 410, fmt
            assert fetch(f"{static}/feeds/tag/football.{fmt}")[1]["x-content-type-options"] == "nosniff"
        followed = feedparser.parse(f"{static}/feeds/category/sport.atom")
        assert (followed.status, followed.href) == (301, f"{static}/feeds/category/sports.atom")
        assert [e.title for e in followed.entries] == ["Cup final"]
        assert feedparser.parse(f"{static}/feeds/tag/football.rss").status == 410
        assert fetch(f"{static}/nginx-redirects.conf")[0] == 404  # the rules file is not served


# --- real readers against `feedsvc serve` and the export --------------------------------------------

def post_text(title: str, date: str, categories: str) -> str:
    return f"---\ntitle: {title}\ndate: {date}\ncategories: {categories}\n---\n{title}, in full.\n"


def served_titles(url: str) -> list[str]:
    parsed = feedparser.parse(url)
    assert parsed.get("status") == 200 and not parsed.bozo, (url, parsed.get("status"), parsed.get("bozo_exception"))
    return [e.title for e in parsed.entries]


class Readers:
    """Every installed reader subscribed to one feed, each behind its own recording proxy."""

    def __init__(self, stack: ExitStack, upstream: str, workdir: Path, feed: str) -> None:
        self.feed = feed
        self.upstream = upstream
        self.clients: dict[str, tuple[Client, RecordingProxy]] = {}
        for name in [n for n in ADAPTERS if not missing(n)]:
            proxy = stack.enter_context(RecordingProxy(upstream))
            client = make_client(name, workdir / name)
            stack.callback(client.close)
            client.subscribe(f"{proxy.url}{feed}")
            self.clients[name] = (client, proxy)
        self.seen: list[list[Entry]] = []
        self.last_poll = 0.0

    def move_to(self, upstream: str) -> None:
        """The service came back on another port: the readers keep their URLs (the proxies are their server)."""
        self.upstream = upstream
        for _, proxy in self.clients.values():
            parts = urlsplit(upstream)
            proxy.upstream_host, proxy.upstream_port, proxy.upstream_netloc = parts.hostname, parts.port, parts.netloc

    def poll(self, *, first: bool = False) -> dict[str, list[int]]:
        """Every reader polls; what each got (statuses) and any reader that went wrong fails the test."""
        parsed = feedparser.parse(f"{self.upstream}{self.feed}")
        assert parsed.get("status") == 200 and not parsed.bozo, (parsed.get("status"), parsed.get("bozo_exception"))
        self.seen.append([Entry(e.id, e.title) for e in parsed.entries])
        statuses, wrong = {}, []
        for name, (client, proxy) in self.clients.items():
            proxy.clear()
            for _ in range(client.unconditional_polls if first else 1):
                client.poll()
            statuses[name] = [x.status for x in proxy.exchanges if x.method == "GET"]
            got = sorted(next(iter(client.view().values())))
            want = expected_view(client, self.seen)
            if client.errors or got != want or any(s >= 400 for s in statuses[name]):
                wrong.append(f"{name}: statuses {statuses[name]} errors {client.errors} view {got} expected {want}")
        assert not wrong, "\n".join(wrong)
        self.last_poll = time.monotonic()
        return statuses

    def wait_a_second(self) -> None:
        """HTTP dates have whole seconds: keep a change out of the last poll's second, as minutes apart would."""
        wait_until(lambda: time.monotonic() - self.last_poll >= 1.05, 5.0, "a second after the last poll")


@pytest.fixture
def desk(tmp_path: Path) -> Path:
    content = tmp_path / "content"
    write_whole(content, "2025/ferry.md", post_text("Ferry returns", "2025-03-01T08:00:00Z", "[news]"))
    write_whole(content, "2025/match.md", post_text("Cup final", "2025-03-02T18:00:00Z", "[sport]"))
    return content


def restart(stack: ExitStack, served: Served, content: Path, workdir: Path, *, base_url: str | None,
            **env: str) -> Served:
    """The service stopped (SIGTERM: it writes its cache on the way out) and started again, on another port."""
    assert served.terminate() == 0, served.logs()
    workdir.mkdir()
    return stack.enter_context(serve(content, workdir, base_url=base_url, **env))


PUBLIC = "http://127.0.0.1"  # the base URL of both runs: a cache is for one base URL (it is in every feed)


@pytest.mark.system
def test_readers_keep_an_emptied_category_across_a_restart(desk: Path, tmp_path: Path) -> None:
    feed = "/feeds/category/sport.atom"
    with ExitStack() as stack:
        (tmp_path / "one").mkdir()
        served = stack.enter_context(serve(desk, tmp_path / "one", base_url=PUBLIC, FEEDSVC_CACHE_MAX_AGE="0"))
        readers = Readers(stack, served.url, tmp_path / "readers", feed)
        readers.poll(first=True)

        readers.wait_a_second()
        (desk / "2025/match.md").unlink()
        wait_until(lambda: served_titles(f"{served.url}{feed}") == [], 10.0, "the emptied feed")
        readers.poll()  # 200 with a valid empty feed for everyone: no reader reports an error

        unchanged = readers.poll()  # what each reader's validators get while nothing changes
        served = restart(stack, served, desk, tmp_path / "two", base_url=PUBLIC, FEEDSVC_CACHE_MAX_AGE="0")
        readers.move_to(served.url)
        assert readers.poll() == unchanged  # the restarted service answers them alike (304 where they can)
        assert unchanged["feedparser"] == [304]

        readers.wait_a_second()
        write_whole(desk, "2025/derby.md", post_text("Derby day", "2025-03-03T15:00:00Z", "[sport]"))
        wait_until(lambda: served_titles(f"{served.url}{feed}") == ["Derby day"], 10.0, "the post in the kept feed")
        readers.poll()


@pytest.mark.system
@pytest.mark.skipif(not NGINX, reason="nginx is not installed (.ci/run installs Debian's nginx)")
def test_readers_keep_an_emptied_category_in_the_export(desk: Path, tmp_path: Path) -> None:
    from test_nginx import render_server_conf

    feed, out = "/feeds/category/sport.rss", tmp_path / "export"

    def build_export() -> None:
        subprocess.run([sys.executable, "-m", "feedsvc", "build", "--content", str(desk), "--out", str(out),
                        "--base-url", "http://127.0.0.1"], check=True, capture_output=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")})

    build_export()
    with ExitStack() as stack:
        static = stack.enter_context(run_nginx(tmp_path / "nginx", lambda port: render_server_conf(out, port).replace(
            'add_header Cache-Control "max-age=300";', 'add_header Cache-Control "max-age=0";')))  # polls seconds apart
        readers = Readers(stack, static, tmp_path / "readers", feed)
        readers.poll(first=True)
        readers.wait_a_second()
        (desk / "2025/match.md").unlink()
        build_export()
        readers.poll()
        readers.wait_a_second()
        write_whole(desk, "2025/derby.md", post_text("Derby day", "2025-03-03T15:00:00Z", "[sport]"))
        build_export()
        readers.poll()


@pytest.mark.system
def test_feedparser_follows_a_rename_and_sees_a_retirement_after_a_restart(desk: Path, tmp_path: Path) -> None:
    with ExitStack() as stack:
        (tmp_path / "one").mkdir()
        served = stack.enter_context(serve(desk, tmp_path / "one"))
        assert served_titles(f"{served.url}/feeds/category/sport.atom") == ["Cup final"]
        assert served_titles(f"{served.url}/feeds/category/news.rss") == ["Ferry returns"]
        # The newsroom renames "sport" to "sports" in its posts and says so; "news" is retired.
        write_whole(desk, "2025/match.md", post_text("Cup final", "2025-03-02T18:00:00Z", "[sports]"))
        config = tmp_path / "feedsvc.toml"
        config.write_text('retired = ["category/news"]\n[redirects]\n"category/sport" = "category/sports"\n', "utf-8")
        # Its own URL as the base URL: feedparser follows the redirect's absolute Location.
        served = restart(stack, served, desk, tmp_path / "two", base_url=None, FEEDSVC_CONFIG=str(config))
        for fmt in ("atom", "rss", "json"):
            followed = feedparser.parse(f"{served.url}/feeds/category/sport.{fmt}")
            assert followed.status == 301, fmt
            assert followed.href == f"{served.url}/feeds/category/sports.{fmt}"
            if fmt != "json":
                assert [e.title for e in followed.entries] == ["Cup final"]
            assert feedparser.parse(f"{served.url}/feeds/category/news.{fmt}").status == 410
        status, headers, _ = fetch(f"{served.url}/feeds/category/sport")
        assert (status, headers["location"]) == (301, f"{served.url}/feeds/category/sports")


@pytest.mark.system
def test_files_are_never_named_in_public_by_a_running_service(desk: Path, tmp_path: Path) -> None:
    write_whole(desk, "drafts/ceo-resigns-embargoed.md", "---\ntitle: CEO resigns\ndate: [soon\n---\n")
    with serve(desk, tmp_path, FEEDSVC_ADMIN_TOKEN=TOKEN) as served:
        status, _, body = fetch(f"{served.url}/healthz")
        assert status == 200 and b"ceo-resigns" not in body
        status, _, body = fetch(f"{served.url}/healthz", OPERATOR)
        assert status == 200 and b"drafts/ceo-resigns-embargoed.md" in body

