"""The `feedsvc` command as a user runs it: check, build, config, bad settings, and a real `serve`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BASE_URL, WritePost, parse
from serving import http_get, serve, wait_until

from feedsvc.app import create_app
from feedsvc.cli import main
from feedsvc.config import FIELDS, Settings
from feedsvc.settingsdoc import markdown_table

FEEDS = {f"{path}.{fmt}" for path in ("all", "category/latest", "category/news", "category/sport")
         for fmt in ("atom", "rss", "json")}


@pytest.fixture
def newsroom(write_post: WritePost) -> None:
    write_post("2025/ferry.md", title="Ferry returns", date="2025-01-10-08-00-00", categories="[latest, news]")
    write_post("2025/match.md", title="Cup final", date="2025-01-11T18:00:00Z", categories="Sport")


def run_cli(*argv: str) -> int:
    return main(list(argv))


def feed_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out / "feeds").as_posix(): p.read_bytes()
            for p in sorted((out / "feeds").rglob("*")) if p.is_file() and p.suffix != ".gz"}  # .gz: test_nginx


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

@pytest.mark.parametrize("command", ["check", "build", "serve", "config"])
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
    assert "FEEDSVC_CONTENT_DIR" in lines[0] and "no-such-folder" in lines[0] and "does not exist" in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.system  # python -m feedsvc in a subprocess
def test_missing_content_folder_from_the_shell(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "feedsvc", "check", "--content", str(tmp_path / "no-such-folder")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")},
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "FEEDSVC_CONTENT_DIR" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["check", "config"])
@pytest.mark.parametrize("bad", ["feeds.example.org", "ftp://feeds.example.org", "https://feeds.example.org/?x=1"])
def test_bad_base_url_exits_2_naming_the_variable(
        bad: str, command: str, newsroom: None, content_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FEEDSVC_BASE_URL", bad)
    code = run_cli(command, "--content", str(content_dir))
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "FEEDSVC_BASE_URL" in lines[0] and bad in lines[0]
    assert "Traceback" not in err


# --- config ----------------------------------------------------------------------------------

TOKEN = "s3cr3t-t0ken-that-must-not-leak"


@pytest.fixture
def layered(content_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One setting from each source: a TOML file, the environment (over the file), and a secret."""
    toml = tmp_path / "feedsvc.toml"
    toml.write_text('max_items = 10\nsite_title = "From TOML"\nretired = ["tag/old"]\n', "utf-8")
    monkeypatch.setenv("FEEDSVC_CONFIG", str(toml))
    monkeypatch.setenv("FEEDSVC_MAX_ITEMS", "20")
    monkeypatch.setenv("FEEDSVC_ADMIN_TOKEN", TOKEN)
    return toml


def test_config_prints_each_value_and_its_source_aligned(
        layered: Path, content_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("config", "--content", str(content_dir), "--base-url", BASE_URL + "/")
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    lines = out.splitlines()
    rows = {line.split()[0]: line for line in lines}
    assert len(rows) == len(lines) == len(FIELDS)  # one line per setting
    assert rows["FEEDSVC_CONTENT_DIR"].split()[1:] == [str(content_dir), "flag", "--content"]
    assert rows["FEEDSVC_BASE_URL"].split()[1:] == [BASE_URL, "flag", "--base-url"]  # as used: no trailing /
    assert rows["FEEDSVC_MAX_ITEMS"].split()[1:] == ["20", "env", "FEEDSVC_MAX_ITEMS"]
    assert rows["FEEDSVC_SITE_TITLE"].split(maxsplit=1)[1].split("  ")[0] == "From TOML"
    assert rows["FEEDSVC_SITE_TITLE"].endswith(f"file {layered}")
    assert rows["FEEDSVC_RETIRED"].split()[1:] == ["tag/old", "file", str(layered)]
    assert rows["FEEDSVC_PORT"].split()[1:] == ["8000", "default"]
    assert rows["FEEDSVC_ADMIN_TOKEN"].split()[1:] == ["(set)", "env", "FEEDSVC_ADMIN_TOKEN"]
    assert TOKEN not in out
    # aligned: every value starts in one column, and so does every source after a value of 40 characters or less
    parts = [re.fullmatch(r"(\S+ +)(.*?) +((?:default|env|file|flag)\b.*)", line) for line in lines]
    matched = [part for part in parts if part]
    assert len(matched) == len(lines), lines
    assert len({part.start(2) for part in matched}) == 1
    assert len({part.start(3) for part in matched if len(part[2]) <= 40}) == 1


def test_config_json_is_for_scripts(layered: Path, content_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("config", "--json", "--content", str(content_dir))
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads(out)
    assert report["max_items"] == {"variable": "FEEDSVC_MAX_ITEMS", "value": 20, "source": "env FEEDSVC_MAX_ITEMS"}
    assert report["retired"] == {"variable": "FEEDSVC_RETIRED", "value": ["tag/old"], "source": f"file {layered}"}
    assert report["content_dir"]["value"] == str(content_dir)
    assert report["content_dir"]["source"] == "flag --content"
    assert report["access_log"]["value"] is True and report["rebuild_interval"]["value"] == 60
    assert report["redirects"]["value"] == {}
    assert report["admin_token"]["value"] == "(set)"
    assert TOKEN not in out


def test_config_says_when_the_token_is_not_set(content_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("config", "--json", "--content", str(content_dir)) == 0
    assert json.loads(capsys.readouterr().out)["admin_token"] == {
        "variable": "FEEDSVC_ADMIN_TOKEN", "value": "(not set)", "source": "default"}


def test_config_markdown_prints_the_readme_table_whatever_the_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FEEDSVC_BASE_URL", "ftp://not-a-web-address")  # documentation needs no working settings
    monkeypatch.chdir(tmp_path)  # nor a content folder
    assert run_cli("config", "--markdown") == 0
    out = capsys.readouterr().out
    assert out == markdown_table()
    assert out.startswith("| variable | default | meaning |\n")


def test_config_json_and_markdown_do_not_mix(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run_cli("config", "--json", "--markdown")
    assert exited.value.code == 2
    assert "not allowed" in capsys.readouterr().err


# --- serve -----------------------------------------------------------------------------------

@pytest.mark.system  # a real `feedsvc serve`
def test_serve_answers_over_http_and_follows_the_folder(
        newsroom: None, write_post: WritePost, content_dir: Path, tmp_path: Path) -> None:
    with serve(content_dir, tmp_path, base_url=BASE_URL, FEEDSVC_DEBOUNCE="0.1", FEEDSVC_THREADS="2") as served:
        first_line = served.stdout.read_text().splitlines()[0]
        assert f"{served.url}/" in first_line, served.logs()

        status, headers, body = http_get(f"{served.url}/feeds/all.atom")
        assert status == 200
        assert headers["Content-Type"].startswith("application/atom+xml")
        assert [e.title for e in parse(body).entries] == ["Cup final", "Ferry returns"]
        etag = headers["ETag"]
        assert etag
        status, _, body = http_get(f"{served.url}/feeds/all.atom", {"If-None-Match": etag})
        assert status == 304 and body == b""

        write_post("2025/tram.md", title="Tram line opens", date="2025-01-12T07:00:00Z", categories="[news]")

        def published() -> bool:
            status, _, body = http_get(f"{served.url}/feeds/category/news.rss")
            return status == 200 and "Tram line opens" in [e.title for e in parse(body).entries]

        wait_until(published, 10.0, "the new post in the served news feed (watcher in the worker)")
        status, headers, _ = http_get(f"{served.url}/feeds/all.atom", {"If-None-Match": etag})
        assert status == 200 and headers["ETag"] != etag

        assert served.terminate() == 0, served.logs()
        assert "Traceback" not in served.stderr.read_text(), served.logs()


def test_build_keeps_emptied_feeds_and_removes_retired_ones(write_post: WritePost, content_dir: Path,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_post("a.md", title="A", date="2025-01-01", categories="[news]")
    match = write_post("b.md", title="B", date="2025-01-02", categories="[sport]")
    out = tmp_path / "out"
    assert run_cli("build", "--content", str(content_dir), "--out", str(out)) == 0
    assert (out / "feeds/category/sport.atom").exists()
    match.unlink()
    assert run_cli("build", "--content", str(content_dir), "--out", str(out)) == 0
    assert parse((out / "feeds/category/sport.atom").read_bytes()).entries == []  # its readers keep a feed
    monkeypatch.setenv("FEEDSVC_RETIRED", "category/sport")  # until it is retired (test_subscriptions)
    assert run_cli("build", "--content", str(content_dir), "--out", str(out)) == 0
    assert not (out / "feeds/category/sport.atom").exists()
    assert sorted(feed_files(out)) == [f"{path}.{fmt}" for path in ("all", "category/news")
                                       for fmt in ("atom", "json", "rss")]


def test_output_cut_short_by_a_pipe_is_no_error(tmp_path: Path) -> None:
    """`feedsvc check | head -1`: the reader stopped reading; no traceback on stderr."""
    content = tmp_path / "content"
    content.mkdir()
    for number in range(2000):
        (content / f"broken-{number}.md").write_text("---\ntitle: [\n---\n", "utf-8")
    with (tmp_path / "stderr.txt").open("wb") as stderr:  # a file: 2,000 logged problems would fill a pipe
        check = subprocess.Popen([sys.executable, "-m", "feedsvc", "check", "--content", str(content)],
                                 stdout=subprocess.PIPE, stderr=stderr, env={**os.environ, "FEEDSVC_CACHE_DIR": "off"})
        assert check.stdout is not None
        check.stdout.readline()
        check.stdout.close()  # as `head -1` does
        assert check.wait(timeout=60) == 1
    errors = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors[-2000:]
