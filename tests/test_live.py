"""The running rebuilder: real watchdog events and a real APScheduler, with the real clock.

The full rescan runs only once an hour here, so every pickup below is explained by a file
event (or, for a future-dated post, by the job that fires when it goes live).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import BASE_URL, WritePost, front_matter_post, parse
from flask import Flask
from flask.testing import FlaskClient
from serving import wait_until

from feedsvc.app import Background, create_app, start_background
from feedsvc.config import Settings
from feedsvc.schedule import RebuildSchedule

TOKEN = "operator-token-for-tests"  # FEEDSVC_ADMIN_TOKEN: /healthz names files and hubs only to the operator
PICKUP_DEADLINE = 5.0  # the target is under 2 s; the slack is for loaded CI machines


@dataclass(slots=True)
class Live:
    app: Flask
    client: FlaskClient
    background: Background
    content_dir: Path

    def entries(self, feed: str = "all.atom") -> list[Any]:
        response = self.client.get(f"/feeds/{feed}")
        assert response.status_code == 200, f"/feeds/{feed} answered {response.status_code}"
        return list(parse(response).entries)

    def titles(self, feed: str = "all.atom") -> list[str]:
        return [e.title for e in self.entries(feed)]

    def ids_by_title(self, feed: str = "all.atom") -> dict[str, str]:
        return {e.title: e.id for e in self.entries(feed)}

    def health(self) -> dict[str, Any]:
        response = self.client.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"})  # the operator's view
        assert response.status_code == 200
        body: dict[str, Any] = response.json
        return body


@pytest.fixture
def live(write_post: WritePost, make_settings: Callable[..., Settings], content_dir: Path) -> Iterator[Live]:
    """The app with its background rebuilder running; one post is there from the start.

    Its tests are marked `system`: they wait on real file events and the real clock.
    """
    write_post("standing.md", title="Standing post", date="2025-01-01", categories="[archive]")
    app = create_app(make_settings(rebuild_interval=3600, debounce=0.1, settle=0.2, admin_token=TOKEN))
    client = app.test_client()
    first_build = client.get("/healthz").json["last_build"]
    background = start_background(app)
    try:
        live = Live(app, client, background, content_dir)
        # start_background() rebuilds once by itself; let that pass, so that from here on
        # only file events (and due times) can explain a change.
        wait_until(lambda: live.health()["last_build"] != first_build, 5.0,
                   "the rebuild start_background() schedules")
        yield live
    finally:
        background.stop()


@pytest.mark.system
def test_new_post_shows_up_in_all_and_category_feeds(
        live: Live, write_post: WritePost, record_property: Callable[[str, object], None]) -> None:
    assert live.titles() == ["Standing post"]
    assert live.client.get("/feeds/category/local-news.atom").status_code == 404

    write_post("breaking.md", title="Bridge reopens", date="2025-03-01T10:00:00Z",
               categories="[Local News]")

    def visible() -> bool:
        if live.client.get("/feeds/category/local-news.atom").status_code != 200:
            return False
        return "Bridge reopens" in live.titles() and live.titles("category/local-news.atom") == ["Bridge reopens"]

    elapsed = wait_until(visible, PICKUP_DEADLINE, "the new post in all.atom and category/local-news.atom")
    record_property("pickup_seconds", round(elapsed, 3))
    assert live.titles() == ["Bridge reopens", "Standing post"]
    assert live.titles("all.rss") == ["Bridge reopens", "Standing post"]


@pytest.mark.system
def test_editing_a_title_keeps_the_entry_id(live: Live, write_post: WritePost) -> None:
    fields = {"date": "2025-03-02T09:00:00Z", "categories": "[news]"}
    write_post("council.md", title="Council votes on budget", **fields)
    wait_until(lambda: "Council votes on budget" in live.titles(), PICKUP_DEADLINE, "the first version")
    original_id = live.ids_by_title()["Council votes on budget"]

    write_post("council.md", title="Council passes budget", **fields)
    wait_until(lambda: "Council passes budget" in live.titles(), PICKUP_DEADLINE, "the edited title")

    ids = live.ids_by_title()
    assert ids["Council passes budget"] == original_id
    assert "Council votes on budget" not in ids
    assert live.ids_by_title("category/news.rss") == {"Council passes budget": original_id}


@pytest.mark.system
@pytest.mark.parametrize("how", ["rename", ".final-name.md.swp", "final-name.md.tmp~"])
def test_renamed_post_replaces_the_old_name(live: Live, write_post: WritePost, how: str) -> None:
    text = front_matter_post(title="Harbour story", date="2025-03-03T08:00:00Z", categories="[news]")
    old = write_post("draft-name.md", text)
    wait_until(lambda: "Harbour story" in live.titles(), PICKUP_DEADLINE, "the post under its first name")
    assert [e.link for e in live.entries() if e.title == "Harbour story"] == [f"{BASE_URL}/posts/draft-name"]

    def links() -> list[str]:
        return sorted(e.link for e in live.entries())

    new = live.content_dir / "final-name.md"
    if how == "rename":
        os.replace(old, new)
    else:  # an editor's "save as": write a temp file beside the target, rename it over, drop the old name
        temp = live.content_dir / how
        temp.write_text(text, "utf-8")
        os.replace(temp, new)  # the rename is the only event that names a post file
        both = sorted([f"{BASE_URL}/posts/draft-name", f"{BASE_URL}/posts/final-name", f"{BASE_URL}/posts/standing"])
        wait_until(lambda: links() == both, PICKUP_DEADLINE, f"the saved file beside the old one: {both}")
        old.unlink()

    expected = sorted([f"{BASE_URL}/posts/final-name", f"{BASE_URL}/posts/standing"])
    wait_until(lambda: links() == expected, PICKUP_DEADLINE, f"only {expected} in all.atom")
    assert [e.link for e in live.entries("category/news.atom")] == [f"{BASE_URL}/posts/final-name"]
    assert live.health()["problems"] == []


@pytest.mark.system
def test_deleted_post_leaves_the_feeds(live: Live, write_post: WritePost) -> None:
    path = write_post("retracted.md", title="Retracted story", date="2025-03-04T08:00:00Z", categories="[news]")
    wait_until(lambda: "Retracted story" in live.titles(), PICKUP_DEADLINE, "the post before deleting it")

    path.unlink()
    wait_until(lambda: "Retracted story" not in live.titles(), PICKUP_DEADLINE, "the deleted post to go")
    assert live.titles() == ["Standing post"]
    assert live.titles("category/news.atom") == []  # its subscribers keep a feed, empty (test_subscriptions)
    assert live.client.get("/posts/retracted").status_code == 404


@pytest.mark.system
def test_future_post_goes_live_by_itself(live: Live, write_post: WritePost) -> None:
    due = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)  # 2 to 3 s from now
    write_post("embargoed.md", title="Embargoed report", date=due.strftime("%Y-%m-%dT%H:%M:%SZ"),
               categories="[news]")
    written = datetime.now(UTC)

    def built_after_write() -> bool:
        last = live.health()["last_build"]
        return last is not None and datetime.fromisoformat(last) >= written

    wait_until(built_after_write, PICKUP_DEADLINE, "a rebuild that scanned the new file")
    titles = live.titles()
    checked = datetime.now(UTC)
    assert checked < due, f"too slow to check before the post's time ({checked} >= {due}); rerun"
    assert titles == ["Standing post"]

    wait_until(lambda: "Embargoed report" in live.titles(), 8.0, f"the post to go live at {due}")
    assert datetime.now(UTC) >= due
    assert live.titles("category/news.atom") == ["Embargoed report"]


@pytest.mark.system
def test_broken_post_is_reported_and_fixing_it_publishes_it(live: Live, write_post: WritePost) -> None:
    write_post("sound.md", title="Sound post", date="2025-03-05T08:00:00Z", categories="[news]")
    wait_until(lambda: "Sound post" in live.titles(), PICKUP_DEADLINE, "the good post")

    write_post("sub/half-saved.md", "---\ntitle: Half saved\ndate: [unclosed\n---\nBody\n")

    def problem_files() -> list[str]:
        return [p["file"] for p in live.health()["problems"]]

    wait_until(lambda: problem_files() == ["sub/half-saved.md"], PICKUP_DEADLINE, "the problem in /healthz")
    problem = live.health()["problems"][0]
    assert problem["line"] == 4 and "invalid YAML" in problem["message"]
    assert live.titles() == ["Sound post", "Standing post"]
    assert live.health()["posts"] == 2

    write_post("sub/half-saved.md", title="Half saved", date="2025-03-06T08:00:00Z", categories="[news]")
    wait_until(lambda: "Half saved" in live.titles(), PICKUP_DEADLINE, "the fixed post")
    assert live.titles() == ["Half saved", "Sound post", "Standing post"]
    assert live.health()["problems"] == []


@pytest.mark.parametrize("how", ["run", "nudge"])
def test_a_nudge_during_a_rebuild_is_not_lost(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    calls: list[float] = []

    def rebuild(paths: set[str] | None) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            release.wait(timeout=30)

    schedule = RebuildSchedule(rebuild, interval=3600, debounce=0.05)
    schedule.start()
    try:
        first = threading.Thread(target=schedule.run, name="first-rebuild", daemon=True)
        first.start()
        wait_until(lambda: len(calls) == 1, 5.0, "the first rebuild to start")

        if how == "run":  # a second caller, as the interval job would be
            second = threading.Thread(target=schedule.run, name="second-run", daemon=True)
            second.start()
            second.join(timeout=5)
            assert not second.is_alive(), "run() waited for the running rebuild instead of leaving it the work"
        else:  # a file event's nudge: its job fires debounce seconds later, on the scheduler's thread
            returned = threading.Event()
            run = schedule.run

            def observed_run() -> None:
                run()
                returned.set()

            monkeypatch.setattr(schedule, "run", observed_run)
            schedule.nudge()
            wait_until(returned.is_set, 5.0, "the nudge's job to run while the rebuild is blocked")

        assert len(calls) == 1, "the nudge started a second rebuild beside the running one"
        release.set()
        wait_until(lambda: len(calls) >= 2, 5.0, "the rebuild the nudge asked for")
        first.join(timeout=5)
        assert not first.is_alive()
        assert len(calls) == 2, f"expected one follow-up rebuild, got {len(calls) - 1}"
    finally:
        release.set()
        schedule.shutdown()


@pytest.mark.system
def test_only_one_rebuilder_per_app(live: Live, write_post: WritePost) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        start_background(live.app)
    write_post("after.md", title="Still watching", date="2025-03-07T08:00:00Z")
    wait_until(lambda: "Still watching" in live.titles(), PICKUP_DEADLINE, "the first rebuilder to keep working")


@pytest.mark.parametrize(("name", "nudged"), [
    ("post.md", True), ("notes/post.txt", True), (".post.md.swp", False), ("post.md~", False),
    ("#post.md#", False), ("notes.bak", False), ("image.jpg", False),
])
def test_watch_ignores_files_that_are_not_posts(content_dir: Path, name: str, nudged: bool) -> None:
    from feedsvc.watch import FolderWatch

    (content_dir / "notes").mkdir()
    named: list[str] = []  # every path a nudge named
    watch = FolderWatch(content_dir, named.extend, extensions=(".md", ".txt"))
    watch.start()
    try:
        (content_dir / name).write_text("x", "utf-8")
        # A post written next: its nudge comes after any for `name` (watchdog keeps the events' order).
        after = content_dir / "written-after.md"
        after.write_text("x", "utf-8")
        wait_until(lambda: str(after.resolve()) in named, 5.0, "the nudge for the post written after it")
        assert (str((content_dir / name).resolve()) in named) is nudged, named
    finally:
        watch.stop()
