"""Running it for real: metrics, logs, replicas that agree, one WebSub sender, clear startup errors."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs

import pytest
from conftest import front_matter_post
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from serving import http_get, serve, wait_until

from feedsvc.config import load_settings
from feedsvc.leader import LeaderLock
from feedsvc.logs import JsonLines


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics(write_post: Callable[..., Path], make_app: Callable[..., Flask]) -> None:
    write_post("a.md", title="A", categories="[news]")
    write_post("b.md", "---\ntitle: [broken\n---\n")
    client = make_app().test_client()
    etag = client.get("/feeds/all.atom").headers["ETag"]
    client.get("/feeds/all.atom", headers={"If-None-Match": etag})
    client.get("/feeds/all.atom", headers={"If-None-Match": etag})
    client.get("/feeds/category/news")
    client.get("/nope")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    found = samples(response.text)
    assert found[("feedsvc_http_requests_total", (("route", "feed"), ("status", "200")))] == 1
    assert found[("feedsvc_http_requests_total", (("route", "feed"), ("status", "304")))] == 2
    assert found[("feedsvc_http_requests_total", (("route", "preview"), ("status", "200")))] == 1
    assert found[("feedsvc_http_requests_total", (("route", "other"), ("status", "404")))] == 1
    assert found[("feedsvc_http_response_bytes_total", (("route", "feed"),))] > 1000
    assert found[("feedsvc_http_not_modified_ratio", ())] == pytest.approx(2 / 3)
    assert found[("feedsvc_posts", ())] == 1 and found[("feedsvc_problems", ())] == 1
    assert found[("feedsvc_builds_total", ())] >= 1 and found[("feedsvc_feeds", ())] == 2 * 3


def test_json_log_lines() -> None:
    record = logging.LogRecord("feedsvc.publisher", logging.WARNING, __file__, 1, "problem in %s", ("a.md: bad",),
                               None)
    line = json.loads(JsonLines().format(record))
    assert line["level"] == "warning" and line["logger"] == "feedsvc.publisher"
    assert line["message"] == "problem in a.md: bad" and line["time"].endswith("+00:00")


@pytest.mark.system
@pytest.mark.parametrize("access", ["true", "false"])
def test_server_logs_json_lines_and_access_log_toggles(content_dir: Path, tmp_path: Path, access: str) -> None:
    (content_dir / "a.md").write_text(front_matter_post(title="A"), "utf-8")
    (content_dir / "bad.md").write_text("---\ntitle: [\n---\n", "utf-8")
    with serve(content_dir, tmp_path, FEEDSVC_LOG_FORMAT="json", FEEDSVC_ACCESS_LOG=access) as served:
        assert http_get(f"{served.url}/feeds/all.atom?limit=1")[0] == 200
        assert served.terminate() == 0
    lines = [line for line in (served.stdout.read_text() + served.stderr.read_text()).splitlines()
             if line.startswith("{")]
    parsed = [json.loads(line) for line in lines]
    assert any("bad.md" in entry["message"] for entry in parsed), lines
    access_lines = [entry for entry in parsed if "/feeds/all.atom" in entry["message"]]
    assert bool(access_lines) is (access == "true"), lines


def test_one_leader_at_a_time(tmp_path: Path) -> None:
    lock = tmp_path / "shared" / "websub.lock"
    lock.parent.mkdir()
    first, second = LeaderLock(lock), LeaderLock(lock)
    assert first.is_leader() and not second.is_leader()
    first.release()
    assert second.is_leader() and not first.is_leader()
    assert LeaderLock(None).is_leader()


class _Hub(BaseHTTPRequestHandler):
    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        self.received.append(form["hub.url"][0])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[tuple[str, list[str]]]:
    received: ClassVar[list[str]] = []
    handler = type("Hub", (_Hub,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", received
    server.shutdown()


@pytest.mark.system
def test_two_replicas_agree_and_announce_once(content_dir: Path, tmp_path: Path,
                                              hub: tuple[str, list[str]]) -> None:
    hub_url, received = hub
    for i, category in enumerate(["news", "sport", "news"]):
        (content_dir / f"p{i}.md").write_text(
            front_matter_post(title=f"P{i}", date=f"2025-01-0{i + 1}", categories=f"[{category}]"), "utf-8")
    shared = {"FEEDSVC_WEBSUB_HUBS": hub_url, "FEEDSVC_LEADER_LOCK": str(tmp_path / "leader.lock"),
              "FEEDSVC_DEBOUNCE": "0.05"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    base = "https://feeds.example.org"
    with serve(content_dir, tmp_path / "a", base_url=base, **shared) as one, \
            serve(content_dir, tmp_path / "b", base_url=base, **shared) as two:
        for path in ("/feeds/all.atom", "/feeds/all.rss", "/feeds/all.json", "/feeds/category/news.atom",
                     "/feeds/category/sport.json", "/feeds.opml"):
            a, b = http_get(one.url + path), http_get(two.url + path)
            assert a[0] == b[0] == 200 and a[2] == b[2], path
            assert a[1]["ETag"] == b[1]["ETag"], path
        (content_dir / "new.md").write_text(
            front_matter_post(title="Fresh", date="2025-02-01", categories="[sport]"), "utf-8")
        expected = {f"{base}/feeds/{p}.{f}" for p in ("all", "category/sport") for f in ("atom", "rss", "json")}
        wait_until(lambda: set(received) >= expected, 10, "the hub to hear of the change")
        for served in (one, two):
            wait_until(lambda s=served: b"Fresh" in http_get(s.url + "/feeds/all.atom")[2], 10, "both replicas")
        assert sorted(received) == sorted(expected), "each changed feed announced once, by one replica"


@pytest.mark.system
def test_port_in_use_is_a_one_line_error(content_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "feedsvc", "serve", "--content", str(content_dir),
                                 "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"feedsvc: FEEDSVC_PORT: 127.0.0.1:{port} is in use"]


@pytest.mark.system
@pytest.mark.parametrize(("env", "named"), [({"FEEDSVC_COLOUR": "blue"}, "FEEDSVC_COLOUR"),
                                            ({"FEEDSVC_BASE_URL": "feeds.example.org"}, "FEEDSVC_BASE_URL"),
                                            ({"FEEDSVC_ACCESS_LOG": "maybe"}, "FEEDSVC_ACCESS_LOG"),
                                            ({"FEEDSVC_LOG_FORMAT": "xml"}, "FEEDSVC_LOG_FORMAT")])
def test_bad_configuration_is_a_one_line_error(content_dir: Path, env: dict[str, str], named: str) -> None:
    import os
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")} | env
    result = subprocess.run([sys.executable, "-m", "feedsvc", "serve", "--content", str(content_dir)],
                            capture_output=True, text=True, timeout=60, env=environment)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr


def test_settings_survive_the_trip_to_the_worker(tmp_path: Path) -> None:
    from feedsvc.config import to_env
    settings = load_settings(env={}, content_dir=tmp_path, websub_hubs="https://h.example/", access_log="false",
                             max_items=7)
    assert load_settings(env=to_env(settings)) == settings


@pytest.mark.system
def test_sigterm_stops_cleanly_and_keeps_the_cache(content_dir: Path, tmp_path: Path) -> None:
    """A real process, a real signal: exit 0 within seconds, the cache written whole, no temp files."""
    from feedsvc.parsecache import ParseCache

    (content_dir / "a.md").write_text(front_matter_post(title="Before"), "utf-8")
    cache = tmp_path / "cache"
    with serve(content_dir, tmp_path, FEEDSVC_CACHE_DIR=str(cache), FEEDSVC_DEBOUNCE="0.05") as served:
        (content_dir / "late.md").write_text(front_matter_post(title="Late arrival", date="2025-06-01"), "utf-8")
        wait_until(lambda: b"Late arrival" in http_get(served.url + "/feeds/all.atom")[2], 10, "the late post")
        started = time.monotonic()
        assert served.terminate(timeout=10) == 0, served.logs()
        assert time.monotonic() - started < 10
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []
    reader = ParseCache(load_settings(env={}, content_dir=content_dir, cache_dir=str(cache), base_url=served.url))
    assert [reader.path] == list(cache.glob("state-*.pickle"))  # one file per content folder
    cached = reader.load()
    assert {entry[1].title for entry in cached.files.values() if entry[1]} == {"Before", "Late arrival"}
    assert "Traceback" not in served.stderr.read_text()
