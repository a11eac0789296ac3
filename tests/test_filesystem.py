"""The filesystem misbehaves: vanishing and unreadable files, symlinks, a missing folder, a full disk."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import front_matter_post, parse, rebuild
from flask import Flask

from feedsvc import scan
from feedsvc.app import create_app, start_background
from feedsvc.cli import main
from feedsvc.config import Settings

GOOD = front_matter_post(title="Steady post", date="2025-01-01-00-00-00")
TOKEN = "operator-token-for-tests"  # FEEDSVC_ADMIN_TOKEN: /healthz names files only to the operator


def titles(app: Flask) -> list[str]:
    return [e.title for e in parse(app.test_client().get("/feeds/all.atom")).entries]


def problems(app: Flask) -> dict[str, str]:
    """What the operator sees (the public /healthz names no files); the app needs admin_token=TOKEN."""
    health = app.test_client().get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).json
    return {p["file"]: p["message"] for p in health["problems"]}


@pytest.fixture
def steady(content_dir: Path) -> Path:
    path = content_dir / "steady.txt"
    path.write_text(GOOD, "utf-8")
    return path


def test_file_that_vanishes_between_listing_and_reading(steady: Path, content_dir: Path,
                                                       make_app: Callable[..., Flask],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = content_dir / "ghost.md"
    ghost.write_text(front_matter_post(title="Ghost"), "utf-8")

    def vanishing_open(path: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if path.endswith("ghost.md"):
            ghost.unlink()  # gone after the listing, before the read
        return open(path, *args, **kwargs)

    monkeypatch.setattr(scan, "open", vanishing_open, raising=False)  # the scanner's open(), nobody else's
    app = make_app(admin_token=TOKEN)
    assert titles(app) == ["Steady post"]
    assert problems(app) == {}


def test_unreadable_file_is_reported(steady: Path, content_dir: Path, make_app: Callable[..., Flask],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    locked = content_dir / "locked.md"
    locked.write_text(front_matter_post(title="Locked"), "utf-8")

    def denying_open(path: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if path.endswith("locked.md"):  # chmod 000 does not stop root, so deny like the kernel would
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(scan, "open", denying_open, raising=False)
    app = make_app(admin_token=TOKEN)
    assert titles(app) == ["Steady post"]
    assert problems(app) == {"locked.md": "Permission denied"}


def test_symlinks(steady: Path, content_dir: Path, tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    secret = tmp_path / "outside.md"
    secret.write_text(front_matter_post(title="Outside the folder"), "utf-8")
    (content_dir / "escape.md").symlink_to(secret)
    (content_dir / "loop-a.md").symlink_to(content_dir / "loop-b.md")
    (content_dir / "loop-b.md").symlink_to(content_dir / "loop-a.md")
    (content_dir / "alias.txt").symlink_to(steady)  # inside the folder: an ordinary post
    (content_dir / "dir-loop").symlink_to(content_dir, target_is_directory=True)
    app = make_app(admin_token=TOKEN)
    assert "Outside the folder" not in titles(app)
    found = problems(app)
    assert "outside the content folder" in found["escape.md"]
    assert "loop-a.md" in found and "loop-b.md" in found
    assert all("dir-loop" not in name for name in found)
    assert titles(app).count("Steady post") == 2  # the alias is a post of its own (its slug differs)


def test_folder_that_disappears_keeps_the_last_good_feeds(steady: Path, content_dir: Path,
                                                         make_app: Callable[..., Flask]) -> None:
    app = make_app()
    hidden = content_dir.with_name("content-unmounted")
    content_dir.rename(hidden)
    rebuild(app)
    health = app.test_client().get("/healthz").json
    assert health["status"] == "degraded"
    assert titles(app) == ["Steady post"]
    hidden.rename(content_dir)
    rebuild(app)
    assert app.test_client().get("/healthz").json["status"] == "ok"


def test_build_on_a_full_disk_leaves_the_old_files(steady: Path, content_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["build", "--content", str(content_dir), "--out", str(out)]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    steady.write_text(GOOD.replace("Steady post", "Changed post"), "utf-8")

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    assert main(["build", "--content", str(content_dir), "--out", str(out)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # every file old, none partial, no temp files left behind


@pytest.mark.system
def test_a_file_written_in_chunks_never_shows_truncated(content_dir: Path,
                                                       make_settings: Callable[..., Settings]) -> None:
    """A slow writer (chunks 20 ms apart) while the service rebuilds on every event."""
    app = create_app(make_settings(rebuild_interval=3600, debounce=0.0, settle=0.2))
    background = start_background(app)
    client = app.test_client()
    body = " ".join(f"word{i}" for i in range(2000))
    text = front_matter_post(title="Slow writer", date="2025-01-01", body=body + " THE-END")
    seen: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for entry in parse(client.get("/feeds/all.atom")).entries:
                seen.append(entry.content[0].value)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        with (content_dir / "slow.md").open("w", encoding="utf-8") as f:
            for start in range(0, len(text), 1024):
                f.write(text[start:start + 1024])
                f.flush()
                time.sleep(0.02)
        deadline = time.monotonic() + 5
        while not any("THE-END" in s for s in seen) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        reader.join()
        background.stop()
    assert any("THE-END" in s for s in seen), "the finished post never appeared"
    assert all("THE-END" in s for s in seen), "a truncated version was served"




def test_a_restart_while_the_folder_is_unmounted_serves_what_the_cache_knew(
        steady: Path, content_dir: Path, make_app: Callable[..., Flask], tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    first = make_app(cache_dir=cache)
    before = first.test_client().get("/feeds/all.atom")
    first.extensions["feedsvc"].persist()
    hidden = content_dir.with_name("content-unmounted")
    content_dir.rename(hidden)
    app = make_app(cache_dir=cache)  # the volume is not there yet when the service starts
    client = app.test_client()
    assert client.get("/healthz").json["status"] == "degraded"
    assert titles(app) == ["Steady post"]
    again = client.get("/feeds/all.atom")
    assert (again.data, again.headers["ETag"]) == (before.data, before.headers["ETag"])  # not emptied, not redated
    hidden.rename(content_dir)
    rebuild(app)
    assert client.get("/healthz").json["status"] == "ok" and titles(app) == ["Steady post"]
