"""The `feedsvc` command as a user runs it: check, build, bad settings, and a real `serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from conftest import BASE_URL, WritePost, parse

from feedsvc.app import create_app
from feedsvc.cli import main
from feedsvc.config import Settings

FEEDS = {f"{path}.{fmt}" for path in ("all", "category/latest", "category/news", "category/sport")
         for fmt in ("atom", "rss", "json")}


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Poll `predicate` every 50 ms until it is truthy; return the seconds it took."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        if elapsed >= timeout:
            pytest.fail(f"timed out after {elapsed:.2f}s (deadline {timeout}s) waiting for: {what}")
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_feedsvc_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command reads FEEDSVC_* variables; the tests say what they want explicitly."""
    for key in list(os.environ):
        if key.startswith("FEEDSVC_"):
            monkeypatch.delenv(key)


@pytest.fixture
def newsroom(write_post: WritePost) -> None:
    write_post("2025/ferry.md", title="Ferry returns", date="2025-01-10-08-00-00", categories="[latest, news]")
    write_post("2025/match.md", title="Cup final", date="2025-01-11T18:00:00Z", categories="Sport")


def run_cli(*argv: str) -> int:
    return main(list(argv))


def feed_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out / "feeds").as_posix(): p.read_bytes()
            for p in sorted((out / "feeds").rglob("*")) if p.is_file()}


# --- check -----------------------------------------------------------------------------------

def test_check_passes_quietly_on_good_content(newsroom: None, content_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("check", "--content", str(content_dir))
    out, err = capsys.readouterr()
    assert code == 0
    assert out == ""
    assert "2 posts" in err and "0 problems" in err


def test_check_names_each_broken_file_and_line(newsroom: None, write_post: WritePost, content_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write_post("drafts/half-saved.md", "---\ntitle: Half saved\ndate: [unclosed\n---\nBody\n")
    code = run_cli("check", "--content", str(content_dir))
    out, err = capsys.readouterr()
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("drafts/half-saved.md:4: invalid YAML"), lines[0]
    assert "2 posts" in err and "1 problems" in err


# --- build -----------------------------------------------------------------------------------

def test_build_writes_the_bytes_the_server_serves(
        newsroom: None, content_dir: Path, tmp_path: Path, make_settings: Callable[..., Settings],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The same settings make_settings() gives the app, reached through the environment and flags.
    monkeypatch.setenv("FEEDSVC_SITE_TITLE", "Example News")
    monkeypatch.setenv("FEEDSVC_AUTHOR", "Example Newsroom")
    out = tmp_path / "out"
    code = run_cli("build", "--content", str(content_dir), "--out", str(out), "--base-url", BASE_URL + "/")
    assert code == 0, capsys.readouterr().err
    assert f"wrote {len(FEEDS)} feeds and an OPML list for 2 posts" in capsys.readouterr().out

    files = feed_files(out)
    assert set(files) == FEEDS
    client = create_app(make_settings()).test_client()
    for name, data in files.items():
        served = client.get(f"/feeds/{name}")
        assert served.status_code == 200, name
        assert data == served.data, f"{name}: the built file differs from what /feeds/{name} serves"

    atom, rss = parse(files["all.atom"]), parse(files["all.rss"])
    assert [e.title for e in atom.entries] == [e.title for e in rss.entries] == ["Cup final", "Ferry returns"]
    assert atom.feed.title == "Example News"
    assert [e.link for e in atom.entries] == [f"{BASE_URL}/posts/match", f"{BASE_URL}/posts/ferry"]
    assert [e.title for e in parse(files["category/sport.rss"]).entries] == ["Cup final"]


def test_build_twice_gives_identical_files_and_no_temp_files(
        newsroom: None, content_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ("build", "--content", str(content_dir), "--out", str(out), "--base-url", BASE_URL)
    assert run_cli(*argv) == 0
    first = feed_files(out)
    assert run_cli(*argv) == 0
    second = feed_files(out)
    assert set(first) == FEEDS
    assert second == first
    leftovers = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


# --- bad settings ----------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["check", "build", "serve"])
def test_missing_content_folder_exits_2_naming_the_setting(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-folder"
    extra = ["--out", str(tmp_path / "out")] if command == "build" else []
    code = run_cli(command, "--content", str(missing), *extra)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "FEEDSVC_CONTENT_DIR" in lines[0] and "no-such-folder" in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_missing_content_folder_from_the_shell(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "feedsvc", "check", "--content", str(tmp_path / "no-such-folder")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=_environment(),
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "FEEDSVC_CONTENT_DIR" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("bad", ["feeds.example.org", "ftp://feeds.example.org", "https://feeds.example.org/?x=1"])
def test_bad_base_url_exits_2_naming_the_variable(
        bad: str, newsroom: None, content_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FEEDSVC_BASE_URL", bad)
    code = run_cli("check", "--content", str(content_dir))
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "FEEDSVC_BASE_URL" in lines[0] and bad in lines[0]
    assert "Traceback" not in err


# --- serve -----------------------------------------------------------------------------------

def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, Mapping[str, str], bytes]:
    """(status, headers, body); status 0 while nothing listens yet."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:  # 304 and errors land here
        return exc.code, exc.headers, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, {}, b""


def test_serve_answers_over_http_and_follows_the_folder(
        newsroom: None, write_post: WritePost, content_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    runtime_dir = tmp_path / "run"  # gunicorn >= 25.1 puts a control socket here, not in ~/.gunicorn
    runtime_dir.mkdir(mode=0o700)
    env = _environment(FEEDSVC_REBUILD_INTERVAL="3600", FEEDSVC_DEBOUNCE="0.1", FEEDSVC_THREADS="2",
                       XDG_RUNTIME_DIR=str(runtime_dir))
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "feedsvc", "serve", "--content", str(content_dir),
             "--port", str(port), "--base-url", BASE_URL],
            stdout=stdout, stderr=stderr, env=env, cwd=tmp_path,
        )

    def logs() -> str:
        return f"\n--- stdout ---\n{stdout_path.read_text()}\n--- stderr ---\n{stderr_path.read_text()}"

    try:
        def healthy() -> bool:
            if process.poll() is not None:
                pytest.fail(f"feedsvc serve exited with {process.returncode}{logs()}")
            return _get(f"{url}/healthz")[0] == 200

        wait_until(healthy, 20.0, f"{url}/healthz to answer 200")
        first_line = stdout_path.read_text().splitlines()[0]
        assert f"{url}/" in first_line, logs()

        status, headers, body = _get(f"{url}/feeds/all.atom")
        assert status == 200
        assert headers["Content-Type"].startswith("application/atom+xml")
        assert [e.title for e in parse(body).entries] == ["Cup final", "Ferry returns"]
        etag = headers["ETag"]
        assert etag
        status, _, body = _get(f"{url}/feeds/all.atom", {"If-None-Match": etag})
        assert status == 304 and body == b""

        write_post("2025/tram.md", title="Tram line opens", date="2025-01-12T07:00:00Z", categories="[news]")

        def published() -> bool:
            status, _, body = _get(f"{url}/feeds/category/news.rss")
            return status == 200 and "Tram line opens" in [e.title for e in parse(body).entries]

        wait_until(published, 10.0, "the new post in the served news feed (watcher in the worker)")
        status, headers, _ = _get(f"{url}/feeds/all.atom", {"If-None-Match": etag})
        assert status == 200 and headers["ETag"] != etag

        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"feedsvc serve did not exit within 15 s of SIGTERM{logs()}")
        assert code == 0, logs()
        assert "Traceback" not in stderr_path.read_text(), logs()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_build_removes_feeds_the_content_no_longer_has(write_post: WritePost, content_dir: Path,
                                                       tmp_path: Path) -> None:
    write_post("a.md", title="A", date="2025-01-01", categories="[news]")
    match = write_post("b.md", title="B", date="2025-01-02", categories="[sport]")
    out = tmp_path / "out"
    assert run_cli("build", "--content", str(content_dir), "--out", str(out)) == 0
    assert (out / "feeds/category/sport.atom").exists()
    match.unlink()
    assert run_cli("build", "--content", str(content_dir), "--out", str(out)) == 0
    assert not (out / "feeds/category/sport.atom").exists()
    assert sorted(feed_files(out)) == [f"{path}.{fmt}" for path in ("all", "category/news")
                                       for fmt in ("atom", "json", "rss")]
