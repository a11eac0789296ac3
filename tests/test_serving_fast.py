"""The fast path's own parts: prepared feed headers, and the access log it writes without `logging`."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import WritePost, front_matter_post, rebuild
from flask import Flask
from serving import http_get, serve

from feedsvc.fastpath import FastFeeds
from feedsvc.logs import TEXT, AccessLog, TextLines, printable

# As granian's access log wrote them through TextLines: "<asctime> INFO granian.access: [<time>] <addr> -
# "<method> <path> <protocol>" <status> <ms>".
TEXT_LINE = re.compile(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO granian\.access: '
                       r'\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] (?P<addr>\S+) - '
                       r'"(?P<method>\S+) (?P<path>.+) (?P<protocol>HTTP/[\d.]+)" (?P<status>\d{3}) \d+\.\d{3}')


def environ(path: str, method: str = "GET") -> dict[str, str]:
    return {"REMOTE_ADDR": "192.0.2.7", "REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1"}


def logged(app: Flask, *, json_lines: bool = False) -> tuple[AccessLog, io.BytesIO]:
    stream = io.BytesIO()
    access_log = AccessLog(json_lines=json_lines, stream=stream)
    assert isinstance(app.wsgi_app, FastFeeds)
    app.wsgi_app.access_log = access_log
    return access_log, stream


def test_text_line_is_what_text_lines_formats() -> None:
    stream = io.BytesIO()
    access_log = AccessLog(json_lines=False, stream=stream)
    access_log.request(environ("/feeds/all.atom"), 304, time.perf_counter())
    access_log.flush()
    line = stream.getvalue().decode()
    assert line.endswith("\n") and line.count("\n") == 1
    match = TEXT_LINE.fullmatch(line.rstrip("\n"))
    assert match and match["status"] == "304" and match["path"] == "/feeds/all.atom", line
    record = logging.LogRecord("granian.access", logging.INFO, __file__, 1, "%s", (line.split(": ", 1)[1].strip(),),
                               None)
    record.created = time.time()
    ours, theirs = line.split(" INFO ", 1)[1], TextLines(fmt=TEXT).format(record).split(" INFO ", 1)[1]
    assert ours.rstrip("\n") == theirs


@pytest.mark.parametrize("path", ["/feeds/\x1b[31mred", "/a\nforged line", "/\u202eevil"])
def test_text_line_escapes_what_would_forge_or_recolour_a_line(path: str) -> None:
    stream = io.BytesIO()
    access_log = AccessLog(json_lines=False, stream=stream)
    access_log.request(environ(path), 404, time.perf_counter())
    access_log.flush()
    text = stream.getvalue().decode()
    assert text.count("\n") == 1 and "\x1b" not in text and "\u202e" not in text
    assert f'"GET {printable(path)} HTTP/1.1" 404' in text


def test_json_line_has_the_fields_of_json_lines() -> None:
    stream = io.BytesIO()
    access_log = AccessLog(json_lines=True, stream=stream)
    access_log.request(environ('/feeds/"quoted"\n', "HEAD"), 200, time.perf_counter())
    access_log.flush()
    [line] = stream.getvalue().decode().splitlines()
    entry = json.loads(line)
    assert list(entry) == ["time", "level", "logger", "message"]
    assert entry["level"] == "info" and entry["logger"] == "granian.access"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"]), entry["time"]
    assert '"HEAD /feeds/"quoted"\n HTTP/1.1" 200 ' in entry["message"]


def test_lines_are_written_by_the_writer_thread_and_at_close() -> None:
    stream = io.BytesIO()
    access_log = AccessLog(json_lines=False, stream=stream, interval=0.01)
    access_log.start()
    access_log.request(environ("/one"), 200, time.perf_counter())
    deadline = time.monotonic() + 5
    while b"/one" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b"/one" in stream.getvalue()
    access_log.request(environ("/two"), 200, time.perf_counter())
    access_log.close()
    assert stream.getvalue().count(b"\n") == 2 and b"/two" in stream.getvalue()


def test_every_request_gets_its_line(write_post: WritePost, make_app: Callable[..., Flask]) -> None:
    write_post("a.md", title="A", categories="[news]")
    app = make_app()
    access_log, stream = logged(app)
    client = app.test_client()
    etag = client.get("/feeds/all.atom").headers["ETag"]
    assert client.get("/feeds/all.atom", headers={"If-None-Match": etag}).status_code == 304
    assert client.head("/feeds/category/news.rss").status_code == 200
    assert client.get("/feeds/all").status_code == 200  # the preview, from Flask
    assert client.get("/nope").status_code == 404
    assert client.post("/feeds/all.atom").status_code == 405
    access_log.flush()
    found = [(m["method"], m["path"], m["status"]) for m in map(TEXT_LINE.fullmatch, stream.getvalue().decode()
                                                                .splitlines()) if m]
    assert found == [("GET", "/feeds/all.atom", "200"), ("GET", "/feeds/all.atom", "304"),
                     ("HEAD", "/feeds/category/news.rss", "200"), ("GET", "/feeds/all", "200"),
                     ("GET", "/nope", "404"), ("POST", "/feeds/all.atom", "405")]


def test_no_access_log_no_lines(write_post: WritePost, make_app: Callable[..., Flask]) -> None:
    write_post("a.md", title="A")
    app = make_app()
    assert isinstance(app.wsgi_app, FastFeeds) and app.wsgi_app.access_log is None
    assert app.test_client().get("/feeds/all.atom").status_code == 200


def test_prepared_headers_follow_the_snapshot(write_post: WritePost, make_app: Callable[..., Flask]) -> None:
    write_post("a.md", title="A", date="2025-01-01")
    app = make_app()
    client = app.test_client()
    first = client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip"})
    write_post("b.md", title="B", date="2025-01-02")
    rebuild(app)
    second = client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip"})
    assert second.headers["ETag"] != first.headers["ETag"]
    assert int(second.headers["Content-Length"]) == len(second.data)
    old = client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip", "If-None-Match": first.headers["ETag"]})
    assert old.status_code == 200
    again = client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip", "If-None-Match": second.headers["ETag"]})
    assert again.status_code == 304 and again.headers["ETag"] == second.headers["ETag"]


@pytest.mark.system
def test_served_text_access_log_is_on_stdout(content_dir: Path, tmp_path: Path) -> None:
    (content_dir / "a.md").write_text(front_matter_post(title="A"), "utf-8")
    with serve(content_dir, tmp_path) as served:
        status, headers, _ = http_get(f"{served.url}/feeds/all.atom")
        assert status == 200
        assert http_get(f"{served.url}/feeds/all.atom", {"If-None-Match": headers["ETag"]})[0] == 304
        assert http_get(f"{served.url}/feeds/all.atom?limit=1")[0] == 200
        metrics = http_get(f"{served.url}/metrics")[2].decode()
        assert served.terminate() == 0
    # The fast path's answers are counted as before (the ?limit= page is Flask's, also route "feed").
    assert 'feedsvc_http_requests_total{route="feed",status="304"} 1.0' in metrics
    assert 'feedsvc_http_requests_total{route="feed",status="200"} 2.0' in metrics
    found = [(m["path"], m["status"]) for m in map(TEXT_LINE.fullmatch, served.stdout.read_text().splitlines()) if m]
    assert found[-4:] == [("/feeds/all.atom", "200"), ("/feeds/all.atom", "304"), ("/feeds/all.atom", "200"),
                          ("/metrics", "200")]
    assert "granian.access" not in served.stderr.read_text()


def test_a_stalled_stdout_costs_lines_not_memory() -> None:
    stream = io.BytesIO()
    access_log = AccessLog(json_lines=False, stream=stream, limit=3)
    for number in range(5):
        access_log.request(environ(f"/{number}"), 200, time.perf_counter())
    access_log.flush()
    lines = stream.getvalue().decode().splitlines()
    assert [TEXT_LINE.fullmatch(line)["path"] for line in lines[:3]] == ["/0", "/1", "/2"]  # type: ignore[index]
    assert len(lines) == 4 and lines[3].endswith(" WARNING feedsvc.logs: access log: 2 lines dropped, "
                                                 "stdout was not keeping up"), lines
