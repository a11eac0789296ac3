"""Last-Modified moves whenever a document's bytes do, and only then (stamps): what `If-Modified-Since` clients see."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import NOW, WritePost, parse, rebuild
from flask import Flask
from flask.testing import FlaskClient

from feedsvc.model import Post
from feedsvc.stamps import Stamp, restamp

FEEDS = ["/feeds/all.atom", "/feeds/all.rss", "/feeds/all.json", "/feeds/category/news.atom",
         "/feeds/category/news.rss", "/feeds/category/news.json"]


def post(slug: str, *, updated: datetime, modified: datetime) -> Post:
    return Post(source=f"{slug}.md", slug=slug, id=f"tag:x,2025:{slug}", url=f"https://x/{slug}", title=slug,
                date=updated, updated=updated, modified=modified)


T = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_same_posts_keep_their_stamp() -> None:
    posts = (post("a", updated=T, modified=T),)
    first = restamp(None, posts, removed_at=None, now=NOW)
    assert restamp(first, posts, removed_at=None, now=NOW + timedelta(days=9)) is first


@pytest.mark.parametrize(("case", "expected"), [
    ("edit, newer file", T + timedelta(hours=2)),
    ("removed, folder changed", T + timedelta(hours=3)),
    ("file dated in the past (cp -p, restore)", T + timedelta(hours=1, seconds=1)),
    ("file dated in the future (clock skew)", NOW),
])
def test_a_change_moves_the_stamp_forward(case: str, expected: datetime) -> None:
    a, b = post("a", updated=T, modified=T), post("b", updated=T, modified=T)
    before = Stamp(posts=(a, b), at=T + timedelta(hours=1))
    modified = {"edit, newer file": T + timedelta(hours=2, microseconds=5),
                "file dated in the past (cp -p, restore)": T - timedelta(days=30),
                "file dated in the future (clock skew)": NOW + timedelta(days=300)}.get(case)
    posts = (a,) if modified is None else (post("a", updated=T, modified=modified), b)
    removed_at = T + timedelta(hours=3) if modified is None else None
    after = restamp(before, posts, removed_at=removed_at, now=NOW)
    assert after.at == expected
    assert after.at.microsecond == 0  # HTTP dates have whole seconds: the document says the same


@pytest.fixture
def newsroom(write_post: WritePost) -> None:
    write_post("2025/ferry.md", title="Ferry returns", date="2025-01-10-08-00-00", categories="[latest, news]",
               body="Boats peel in.")
    write_post("2025/clinic.md", title="Clinic hours", date="2025-01-12T09:30:00Z", categories="[news]")


def validators(client: FlaskClient, path: str) -> tuple[str, str]:
    response = client.get(path)
    return response.headers["ETag"], response.headers["Last-Modified"]


def moved_everywhere(client: FlaskClient, before: dict[str, tuple[str, str]]) -> None:
    """Every document has new bytes, a later Last-Modified, and answers `If-Modified-Since: <old>` with 200."""
    for path, (etag, modified) in before.items():
        response = client.get(path)
        assert response.headers["ETag"] != etag, path
        assert response.last_modified > datetime.strptime(modified, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
        assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 200, path
        if not path.endswith(".json"):  # the document tells the same time as the header
            feed = parse(response).feed
            assert datetime(*feed.updated_parsed[:6], tzinfo=UTC) == response.last_modified, path


@pytest.mark.parametrize("change", ["edit keeping updated and length", "backdated post", "deleted post"])
def test_every_change_moves_last_modified(newsroom: None, make_app: Callable[..., Flask], write_post: WritePost,
                                          content_dir: Path, change: str) -> None:
    app = make_app()
    client = app.test_client()
    before = {path: validators(client, path) for path in FEEDS}
    if change == "edit keeping updated and length":
        write_post("2025/ferry.md", title="Ferry returns", date="2025-01-10-08-00-00",
                   categories="[latest, news]", body="Boats peal in.")  # the same size: nginx's ETag would not move
    elif change == "backdated post":
        write_post("2024/archive.md", title="From the archive", date="2024-06-01", categories="[news]")
    else:
        (content_dir / "2025/clinic.md").unlink()
    rebuild(app)
    moved_everywhere(client, before)


def test_nothing_changed_is_304_also_after_a_restart(newsroom: None, make_app: Callable[..., Flask],
                                                      content_dir: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    app = make_app(cache_dir=cache)
    client = app.test_client()
    (content_dir / "2025/clinic.md").unlink()  # a change dated by its folder: the one a cold start cannot see
    rebuild(app)
    before = {path: validators(client, path) for path in FEEDS}
    rebuild(app)
    app.extensions["feedsvc"].persist()
    restarted = make_app(now=NOW + timedelta(days=1), cache_dir=cache).test_client()
    for path, (etag, modified) in before.items():
        assert validators(restarted, path) == (etag, modified), path
        assert restarted.get(path, headers={"If-Modified-Since": modified}).status_code == 304, path
        assert restarted.get(path, headers={"If-None-Match": etag}).status_code == 304, path


def test_replicas_date_the_same_changes_alike(newsroom: None, make_app: Callable[..., Flask],
                                              write_post: WritePost, content_dir: Path) -> None:
    # Real clocks (after every file's change), a few minutes apart, as two machines have.
    now = datetime.now(UTC) + timedelta(minutes=1)
    one, two = make_app(now=now), make_app(now=now + timedelta(minutes=5))
    write_post("2025/ferry.md", title="Ferry returns late", date="2025-01-10-08-00-00", categories="[latest, news]")
    (content_dir / "2025/clinic.md").unlink()
    for app in (one, two):
        rebuild(app)
    for path in FEEDS:
        a, b = one.test_client().get(path), two.test_client().get(path)
        assert (a.data, a.headers["ETag"], a.last_modified) == (b.data, b.headers["ETag"], b.last_modified), path


def test_a_post_that_came_due_while_stopped_moves_last_modified_after_a_restart(
        newsroom: None, make_app: Callable[..., Flask], write_post: WritePost, tmp_path: Path) -> None:
    """Every file is as the cache left it, yet a channel holds another post: its time came meanwhile."""
    cache = str(tmp_path / "cache")
    due = NOW + timedelta(hours=1)
    write_post("2026/embargo.md", title="Embargoed", date=due.strftime("%Y-%m-%d-%H-%M-%S"), categories="[news]")
    app = make_app(cache_dir=cache)
    before = {path: validators(app.test_client(), path) for path in FEEDS}
    assert "Embargoed" not in app.test_client().get("/feeds/all.atom").get_data(as_text=True)
    app.extensions["feedsvc"].persist()
    restarted = make_app(now=due + timedelta(hours=1), cache_dir=cache).test_client()
    assert parse(restarted.get("/feeds/all.atom")).entries[0].title == "Embargoed"
    moved_everywhere(restarted, before)


def test_a_restart_with_nothing_changed_does_not_go_through_every_post_again(
        newsroom: None, make_app: Callable[..., Flask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cached stamps are trusted as they are: at a million posts, checking them took seconds."""
    cache = str(tmp_path / "cache")
    make_app(cache_dir=cache).extensions["feedsvc"].persist()
    import feedsvc.build

    checked: list[str] = []
    real = feedsvc.build.fingerprints
    monkeypatch.setattr(feedsvc.build, "fingerprints", lambda channels: checked.extend(channels) or real(channels))
    before = validators(make_app(cache_dir=cache).test_client(), "/feeds/all.atom")
    assert checked == []
    make_app(cache_dir=cache).extensions["feedsvc"].persist()  # unchanged: the same validators again
    assert validators(make_app(now=NOW + timedelta(days=3), cache_dir=cache).test_client(), "/feeds/all.atom") == before
    assert checked == []


def test_the_first_change_after_a_restart_dates_its_channels_without_going_through_their_posts(
        newsroom: None, write_post: WritePost, make_app: Callable[..., Flask], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache keeps each stamp's bound (no post it holds changed later), so a post added after a
    restart dates its channels by itself, as the run before the restart would: at a million posts,
    going through every post of the channels it is in took 0.4 s of that change."""
    import feedsvc.stamps

    cache = str(tmp_path / "cache")
    now = datetime.now(UTC) + timedelta(days=1)  # after the files' own times, which date the channels too
    first = make_app(now=now, cache_dir=cache)
    first.extensions["feedsvc"].rebuild()  # a change's rebuild: the stamps now know their bounds
    first.extensions["feedsvc"].persist()
    restarted = make_app(now=now, cache_dir=cache)
    publisher = restarted.extensions["feedsvc"]
    path = write_post("2025/late.md", title="Late news", date="2025-01-13T10:00:00Z", categories="[news]")
    gone_through: list[object] = []
    real = feedsvc.stamps._UPDATED
    monkeypatch.setattr(feedsvc.stamps, "_UPDATED", lambda post: gone_through.append(post) or real(post))
    publisher.rebuild([str(path)])
    assert gone_through == []
    first.extensions["feedsvc"].rebuild([str(path)])  # the same change, seen by the run that was never stopped
    for feed in ("/feeds/all.atom", "/feeds/category/news.atom"):
        assert parse(restarted.test_client().get(feed)).entries[0].title == "Late news"
        assert validators(restarted.test_client(), feed) == validators(first.test_client(), feed), feed
