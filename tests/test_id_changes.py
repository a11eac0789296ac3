"""An edit that changes a published post's entry id (its date or slug) is warned about, with the fix."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import WritePost, parse
from flask import Flask

from feedsvc.config import Settings
from feedsvc.publisher import Publisher

TOKEN = "operator-token-for-tests"


def test_a_changed_date_warns_with_the_id_line_and_adding_it_keeps_the_old_id(
        write_post: WritePost, make_settings: Callable[..., Settings]) -> None:
    write_post("2025/ferry.txt", title="Ferry returns", date="2025-01-10-08-00-00")
    publisher = Publisher(make_settings(cache_dir="off"))
    first = parse(publisher.rebuild().feeds["all.atom"].body).entries[0].id
    write_post("2025/ferry.txt", title="Ferry returns", date="2025-01-11-08-00-00")
    snapshot = publisher.rebuild()
    [warning] = snapshot.warnings
    assert warning.path == "2025/ferry.txt" and f"id: {first}" in warning.message
    assert snapshot.problems == () and parse(snapshot.feeds["all.atom"].body).entries[0].id != first
    write_post("2025/ferry.txt", title="Ferry returns", date="2025-01-11-08-00-00", id=first)
    snapshot = publisher.rebuild()
    assert snapshot.warnings == () and parse(snapshot.feeds["all.atom"].body).entries[0].id == first


def test_a_title_edit_or_a_draft_gives_no_warning(write_post: WritePost,
                                                  make_settings: Callable[..., Settings]) -> None:
    write_post("a.txt", title="A", date="2025-01-10-08-00-00")
    write_post("b.txt", title="B", date="2025-01-10-08-00-00", draft="true")
    publisher = Publisher(make_settings(cache_dir="off"))
    publisher.rebuild()
    write_post("a.txt", title="A, corrected", date="2025-01-10-08-00-00")
    write_post("b.txt", title="B", date="2025-02-10-08-00-00", draft="true")
    assert publisher.rebuild().warnings == ()


def test_check_and_healthz_show_it_across_a_restart(write_post: WritePost, content_dir: Path, tmp_path: Path,
                                                   make_app: Callable[..., Flask]) -> None:
    write_post("2025/ferry.txt", title="Ferry returns", date="2025-01-10-08-00-00")
    env = {"PATH": "/usr/bin:/bin", "FEEDSVC_CACHE_DIR": str(tmp_path / "cache"), "FEEDSVC_SETTLE": "0"}

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "feedsvc", "check", "--content", str(content_dir)],
                              capture_output=True, text=True, env=env, timeout=60)

    assert check().returncode == 0
    write_post("2025/ferry.txt", title="Ferry returns", date="2025-01-11-08-00-00", slug="ferry-back")
    result = check()
    assert result.returncode == 0, result.stderr  # a warning, not a problem: the post is published
    assert "warning: 2025/ferry.txt: its entry id changed" in result.stdout and "id: tag:" in result.stdout
    again = check()  # a later run (its cache) still knows
    assert "warning: 2025/ferry.txt" in again.stdout and "1 warnings" in again.stderr
    app = make_app(cache_dir=str(tmp_path / "cache"), admin_token=TOKEN)
    public = json.loads(app.test_client().get("/healthz").data)
    assert public["warning_count"] == 1 and "warnings" not in public
    operator = json.loads(app.test_client().get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).data)
    assert operator["warnings"][0]["file"] == "2025/ferry.txt"
