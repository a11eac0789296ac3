"""The folder and the cache as an attacker or an unlucky operator leaves them: nothing stops the service."""

from __future__ import annotations

import errno
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import front_matter_post, parse, rebuild
from flask import Flask

from feedsvc import scan
from feedsvc.app import start_background
from feedsvc.cli import main
from feedsvc.config import Settings
from feedsvc.files import sweep_temp_files
from feedsvc.logs import TEXT, TextLines
from feedsvc.parsecache import cache_file
from feedsvc.publisher import Publisher

REPO = Path(__file__).resolve().parent.parent


def titles(app: Flask, path: str = "/feeds/all.atom") -> list[str]:
    return [e.title for e in parse(app.test_client().get(path)).entries]


def problems(app: Flask) -> dict[str, str]:
    return {p.path: p.message for p in app.extensions["feedsvc"].snapshot.problems}


def test_a_folder_nested_a_thousand_deep_is_walked(content_dir: Path, make_app: Callable[..., Flask]) -> None:
    deep = content_dir
    for _ in range(1000):  # one at a time: makedirs itself recurses
        deep /= "d"
        deep.mkdir()
    (deep / "bottom.md").write_text(front_matter_post(title="At the bottom"), "utf-8")
    (content_dir / "top.md").write_text(front_matter_post(title="At the top", date="2025-01-01-00-00-00"), "utf-8")
    try:
        app = make_app()
        assert sorted(titles(app)) == ["At the bottom", "At the top"]
        assert problems(app) == {}
    finally:  # pytest's own clean-up (shutil.rmtree) recurses too
        (deep / "bottom.md").unlink()
        while deep != content_dir:
            deep.rmdir()
            deep = deep.parent


def _deny(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """chmod 000 does not stop root (the tests' user), so refuse the listing as the kernel would."""
    real = os.scandir

    def scandir(path: str) -> object:
        if Path(path) == denied.resolve():
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(scan.os, "scandir", scandir)


@pytest.mark.parametrize("where", ["root", "subfolder"])
def test_an_unreadable_folder_keeps_its_last_posts_and_says_degraded(
        where: str, content_dir: Path, make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch) -> None:
    (content_dir / "desk").mkdir()
    (content_dir / "desk" / "inside.md").write_text(front_matter_post(title="Inside", categories="[desk]"), "utf-8")
    (content_dir / "outside.md").write_text(front_matter_post(title="Outside", date="2025-01-01-00-00-00"), "utf-8")
    app = make_app()
    denied = content_dir if where == "root" else content_dir / "desk"
    _deny(monkeypatch, denied)
    rebuild(app)
    client = app.test_client()
    assert sorted(titles(app)) == ["Inside", "Outside"]
    assert titles(app, "/feeds/category/desk.atom") == ["Inside"]
    assert client.get("/healthz").json["status"] == "degraded"
    assert any("unreadable" in message and "Permission denied" in message for message in problems(app).values())
    monkeypatch.undo()
    rebuild(app)
    assert client.get("/healthz").json["status"] == "ok"
    assert problems(app) == {}


def test_an_unreadable_folder_after_a_restart_keeps_what_the_cache_knew(
        content_dir: Path, make_settings: Callable[..., Settings], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (content_dir / "desk").mkdir()
    (content_dir / "desk" / "inside.md").write_text(front_matter_post(title="Inside"), "utf-8")
    settings = make_settings(cache_dir=str(tmp_path / "cache"))
    first = Publisher(settings)
    first.rebuild()
    first.persist()
    _deny(monkeypatch, content_dir / "desk")
    snapshot = Publisher(settings).rebuild()
    assert [p.title for p in snapshot.posts.values()] == ["Inside"]
    assert snapshot.status == "degraded"


def test_a_file_from_the_future_is_published_and_reported_without_a_rebuild_loop(
        content_dir: Path, make_app: Callable[..., Flask]) -> None:
    skewed = content_dir / "skewed.md"
    skewed.write_text(front_matter_post(title="Written by a fast clock"), "utf-8")
    ahead = time.time() + 86400
    os.utime(skewed, (ahead, ahead))
    app = make_app(settle=0.5)  # a settle window, as a real service has
    publisher = app.extensions["feedsvc"]
    for _ in range(2):  # the second scan is not the first: the settle rule applies
        (content_dir / "other.md").write_text(front_matter_post(title="Other", date="2025-01-01-00-00-00"), "utf-8")
        os.utime(content_dir / "other.md", (time.time() - 60, time.time() - 60))
        rebuild(app)
    assert "Written by a fast clock" in titles(app)
    assert "in the future" in problems(app)["skewed.md"]
    assert publisher.next_due is None  # nothing is waiting to settle, so no rebuild is scheduled


def _swap_target(target: Path, replacement: Callable[[Path], None]) -> None:
    target.unlink()
    replacement(target)


def _get_with_deadline(app: Flask, path: str, seconds: float = 5.0) -> tuple[int, bytes]:
    result: list[tuple[int, bytes]] = []
    worker = threading.Thread(target=lambda: result.append(
        (lambda r: (r.status_code, r.data))(app.test_client().get(path))), daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, f"GET {path} still waiting after {seconds}s"
    return result[0]


def test_a_fifo_swapped_in_never_holds_a_request(content_dir: Path, make_app: Callable[..., Flask]) -> None:
    real = content_dir / "real" / "story.md"
    real.parent.mkdir()
    real.write_text(front_matter_post(title="Story", body="The real body.", tags="[deep]",
                                      description="The summary."), "utf-8")
    (content_dir / "story.md").symlink_to(real)
    (content_dir / "newer.md").write_text(front_matter_post(title="Newer", date="2025-06-01-00-00-00"), "utf-8")
    app = make_app(max_items=1)  # the story is in no feed rendered in the rebuild: its body is read on request
    _swap_target(real, lambda path: os.mkfifo(path))
    status, body = _get_with_deadline(app, "/posts/story")
    assert status == 200 and b"The real body." not in body and b"The summary." in body
    status, body = _get_with_deadline(app, "/feeds/tag/deep.atom")  # rendered on request
    assert status == 200
    assert _get_with_deadline(app, "/healthz")[0] == 200


def test_a_symlink_repointed_after_the_scan_never_serves_the_file_outside(
        content_dir: Path, tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text(front_matter_post(title="Secret", body="TOP SECRET"), "utf-8")
    inside = content_dir / "inside.md"
    inside.write_text(front_matter_post(title="Alias", body="Public body."), "utf-8")
    (content_dir / "link.md").symlink_to(inside)
    app = make_app()
    (content_dir / "link.md").unlink()
    (content_dir / "link.md").symlink_to(secret)  # swapped after the scan, before any request
    for path in ("/posts/link", "/feeds/tag/none.atom", "/feeds/all.atom?limit=5"):
        assert b"TOP SECRET" not in app.test_client().get(path).data
    rebuild(app)  # the next scan sees the symlink and refuses it
    assert "outside the content folder" in problems(app)["link.md"]


def test_an_edit_between_scan_and_render_never_pairs_new_body_with_old_metadata(
        content_dir: Path, make_app: Callable[..., Flask]) -> None:
    post = content_dir / "edited.md"
    post.write_text(front_matter_post(title="Old title", body="Old body.", description="Old summary."), "utf-8")
    app = make_app()
    post.write_text(front_matter_post(title="New title", body="New body."), "utf-8")
    page = app.test_client().get("/posts/edited").data
    assert b"Old title" in page and b"New body." not in page
    rebuild(app)
    page = app.test_client().get("/posts/edited").data
    assert b"New title" in page and b"New body." in page


def test_a_broken_post_after_a_restart_never_shows_the_broken_file(
        content_dir: Path, make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    post = content_dir / "fragile.md"
    post.write_text(front_matter_post(title="Fragile", body="The good body."), "utf-8")
    settings = make_settings(cache_dir=str(tmp_path / "cache"))
    first = Publisher(settings)
    first.rebuild()
    first.persist()
    post.write_text("---\ntitle: [unclosed\n---\nHALF WRITTEN GARBAGE\n", "utf-8")
    first.rebuild()
    first.persist()
    restarted = Publisher(settings)
    snapshot = restarted.rebuild()
    kept = snapshot.posts["fragile"]
    assert kept.title == "Fragile" and any(p.path == "fragile.md" for p in snapshot.problems)
    html = restarted.bodies.html(kept)
    assert "HALF WRITTEN" not in html
    assert "The good body." in html  # its rendering was saved with the cache


def _plant(path: Path, marker: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {marker}",))

    path.write_bytes(pickle.dumps(Payload()))


@pytest.mark.parametrize("how", ["folder writable by others", "file writable by others", "file not ours"])
def test_a_planted_cache_never_runs(how: str, content_dir: Path, make_settings: Callable[..., Settings],
                                    tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (content_dir / "p.md").write_text(front_matter_post(title="Post"), "utf-8")
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    settings = make_settings(cache_dir=str(folder))
    path = cache_file(settings)
    assert path is not None
    marker = tmp_path / "pwned"
    _plant(path, marker)
    os.chmod(path, 0o600)
    if how == "folder writable by others":
        os.chmod(folder, 0o777)
    elif how == "file writable by others":
        os.chmod(path, 0o666)
    else:
        os.chown(path, 65534, 65534)
    with caplog.at_level(logging.ERROR):
        snapshot = Publisher(settings).rebuild()
    assert not marker.exists()
    assert snapshot.post_count == 1  # built from the files instead
    assert "not loaded" in caplog.text


def test_cache_survives_runtime_settings_and_one_file_per_folder(
        content_dir: Path, make_settings: Callable[..., Settings], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (content_dir / "p.md").write_text(front_matter_post(title="Post"), "utf-8")
    folder = tmp_path / "cache"
    first = Publisher(make_settings(cache_dir=str(folder), port=8000))
    first.rebuild()
    first.persist()
    reads: list[str] = []
    real = scan.load_file
    monkeypatch.setattr(scan, "load_file", lambda source, *a: reads.append(source) or real(source, *a))
    Publisher(make_settings(cache_dir=str(folder), port=9999, threads=4)).rebuild()
    assert reads == []  # another port is not another cache
    retitled = Publisher(make_settings(cache_dir=str(folder), site_title="Another title"))
    retitled.rebuild()
    retitled.persist()
    assert reads == ["p.md"]  # a setting that shapes feeds starts cold ...
    assert len(list(folder.glob("state-*.pickle"))) == 1  # ... in the same file, no orphan left


def test_saving_prunes_old_caches_and_killed_writers_temp_files(
        content_dir: Path, make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    month_ago = time.time() - 40 * 86400
    orphan, recent = folder / "state-0123456789abcdef.pickle", folder / "state-fedcba9876543210.pickle"
    killed, writing = folder / ".state-x.pickle.ab12cd34.tmp", folder / ".state-y.pickle.ef56gh78.tmp"
    for path in (orphan, recent, killed, writing):
        path.write_bytes(b"x")
    os.utime(orphan, (month_ago, month_ago))
    os.utime(killed, (month_ago, month_ago))
    (content_dir / "p.md").write_text(front_matter_post(title="Post"), "utf-8")
    publisher = Publisher(make_settings(cache_dir=str(folder)))
    publisher.rebuild()
    publisher.persist()
    left = {p.name for p in folder.iterdir()}
    assert orphan.name not in left and killed.name not in left
    assert {recent.name, writing.name} <= left
    assert sweep_temp_files(folder, older_than=0) == 1  # the young one, once it is old enough


def test_file_names_cannot_forge_log_lines_or_check_output(content_dir: Path, capsys: pytest.CaptureFixture[str],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    evil = "evil\n2026-01-01 00:00:00 INFO feedsvc: all good\x1b[32m.md"
    (content_dir / evil).write_text("---\ntitle: [broken\n---\n", "utf-8")
    assert main(["check", "--content", str(content_dir)]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out and "\\n2026" in out
    record = logging.LogRecord("feedsvc", logging.WARNING, __file__, 1, "problem in %s", (evil,), None)
    line = TextLines(fmt=TEXT).format(record)
    assert "\n" not in line and "\x1b" not in line


def test_a_watch_that_cannot_start_falls_back_to_the_rescan(
        make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from feedsvc import watch

    def no_inotify(self: object) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watch.FolderWatch, "start", no_inotify)
    app = make_app()
    with caplog.at_level(logging.WARNING):
        background = start_background(app)
    try:
        assert "file events unavailable" in caplog.text and "rescan" in caplog.text
        assert app.test_client().get("/healthz").status_code == 200
    finally:
        background.stop()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.system
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_build_leaves_no_parse_workers(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    subprocess.run([sys.executable, str(REPO / "bench" / "corpus.py"), "--count", "20000", str(corpus)],
                   check=True, capture_output=True)
    env = {**os.environ, "FEEDSVC_CACHE_DIR": "off"}
    build = subprocess.Popen([sys.executable, "-m", "feedsvc", "build", "--content", str(corpus),
                              "--out", str(tmp_path / "out")], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    workers: list[int] = []
    deadline = time.monotonic() + 60
    while not workers and time.monotonic() < deadline and build.poll() is None:
        workers = [pid for pid in _children(build.pid) if _alive(pid)]
        time.sleep(0.02)
    if not workers:
        build.wait()
        pytest.skip("the build finished before its parse workers could be seen")
    os.kill(build.pid, signal.SIGKILL)
    build.wait()
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "parse workers outlived the killed build"


def test_a_renamed_slug_is_checked_for_clashes_again(content_dir: Path, make_app: Callable[..., Flask]) -> None:
    import hashlib

    renamed_to = "same-" + hashlib.sha256(b"c.md").hexdigest()[:8]  # what c.md's clash would rename it to
    (content_dir / "a.md").write_text(front_matter_post(title="A", slug=renamed_to), "utf-8")
    (content_dir / "b.md").write_text(front_matter_post(title="B", slug="same"), "utf-8")
    (content_dir / "c.md").write_text(front_matter_post(title="C", slug="same"), "utf-8")
    app = make_app()
    snapshot = app.extensions["feedsvc"].snapshot
    assert len(snapshot.posts) == 3  # three posts, three URLs
    entries = parse(app.test_client().get("/feeds/all.atom")).entries
    assert len({e.link for e in entries}) == 3 and len({e.id for e in entries}) == 3


def test_build_removes_what_a_killed_build_left(content_dir: Path, tmp_path: Path) -> None:
    (content_dir / "p.md").write_text(front_matter_post(title="Post"), "utf-8")
    out = tmp_path / "out"
    (out / "feeds").mkdir(parents=True)
    left, fresh = out / "feeds" / ".all.atom.k1ll3d00.tmp", out / "feeds" / ".all.rss.wr1t1ng0.tmp"
    left.write_bytes(b"<half")
    fresh.write_bytes(b"<half")
    old = time.time() - 7200
    os.utime(left, (old, old))
    assert main(["build", "--content", str(content_dir), "--out", str(out)]) == 0
    assert not left.exists() and fresh.exists()
