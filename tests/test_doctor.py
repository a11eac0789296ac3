"""`feedsvc doctor URL` finds every feed a site offers and says what readers will trip over.

The pure parts on tables; a small stdlib server for redirects, a bot wall that only one reader
meets and the proxy variables; then the real thing: `feedsvc serve` passes, and nginx serving a
`feedsvc build` export passes with deploy/nginx.conf and fails, naming the check, with each of
a few deliberate mistakes in it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
from conftest import WritePost
from serving import NGINX, free_port, http_get, run_nginx, serve

from feedsvc.cli import main
from feedsvc.doctor import (
    Fetched,
    conditional_check,
    content_type_check,
    feeds_in_index,
    feeds_in_opml,
    gzip_check,
    is_challenge,
    parse_feed,
    same_url,
    self_link_check,
    site_root,
)

ROOT = Path(__file__).resolve().parents[1]
SERVER_CONF = ROOT / "deploy" / "nginx.conf"
CHECKED = ("readers", "feed body", "content type", "parses", "self link", "if-none-match", "if-modified-since",
           "gzip", "cache-control", "time")
CHALLENGE = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>Checking...</body></html>"


# --- the pure parts -------------------------------------------------------------------------------------------

def test_feeds_in_index_are_its_feed_autodiscovery_links_resolved_against_the_page() -> None:
    page = """<!doctype html><html><head>
    <link rel="stylesheet" href="/static/site.css">
    <link rel="alternate" type="application/atom+xml" href="/feeds/all.atom">
    <LINK REL="Alternate" TYPE="application/rss+xml; charset=utf-8" HREF="feeds/all.rss" />
    <link rel="alternate" type="application/feed+json" href="https://cdn.example.net/all.json">
    <link rel="alternate" type="text/html" hreflang="de" href="/de/">
    <link rel="alternate" type="application/atom+xml" href="/feeds/all.atom">
    <link rel="alternate" type="application/atom+xml">
    </head><body><a rel="alternate" type="application/atom+xml" href="/not-a-link-element.atom">x</a></body></html>"""
    assert feeds_in_index(page, "https://feeds.example.org/site/") == [
        "https://feeds.example.org/feeds/all.atom", "https://feeds.example.org/site/feeds/all.rss",
        "https://cdn.example.net/all.json"]


def test_feeds_in_opml_are_the_xml_urls_of_its_outlines_at_any_depth() -> None:
    opml = b"""<?xml version="1.0"?><opml version="2.0"><head><title>t</title></head><body>
    <outline type="rss" text="All" xmlUrl="https://feeds.example.org/feeds/all.atom"/>
    <outline text="Categories">
      <outline type="rss" text="News" xmlUrl="feeds/category/news.atom" htmlUrl="https://feeds.example.org/x"/>
      <outline text="no feed here"/>
    </outline></body></opml>"""
    assert feeds_in_opml(opml, "https://feeds.example.org/feeds.opml") == [
        "https://feeds.example.org/feeds/all.atom", "https://feeds.example.org/feeds/category/news.atom"]
    with pytest.raises(ValueError, match="not XML"):
        feeds_in_opml(b"Not found\n", "https://feeds.example.org/feeds.opml")
    with pytest.raises(ValueError, match="not an OPML list"):
        feeds_in_opml(CHALLENGE, "https://feeds.example.org/feeds.opml")  # well-formed, but a bot wall's page


@pytest.mark.parametrize(("media_type", "body", "expected"), [
    ("application/atom+xml", b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"/>', False),
    ("application/feed+json", b'{"version": "https://jsonfeed.org/version/1.1"}', False),
    ("text/html", b'<?xml version="1.0"?><feed/>', True),  # a feed's bytes under an HTML type: browsers render it
    ("application/xhtml+xml", b"<feed/>", True),
    ("application/atom+xml", CHALLENGE, True),  # the right type, a bot wall's body
    ("", b"\xef\xbb\xbf\n  <html><body>Access denied</body></html>", True),
    ("application/octet-stream", b"<!doctype HTML>", True),
    ("application/rss+xml", b"<rss version='2.0'><channel><description>&lt;html&gt;</description></channel></rss>",
     False),
])
def test_is_challenge(media_type: str, body: bytes, expected: bool) -> None:
    assert is_challenge(media_type, body) is expected


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("https://feeds.example.org/feeds/all.atom", "https://feeds.example.org/feeds/all.atom", True),
    ("https://feeds.example.org/feeds/all.atom/", "https://feeds.example.org/feeds/all.atom", True),
    ("HTTPS://Feeds.Example.org/feeds/all.atom", "https://feeds.example.org/feeds/all.atom", True),
    ("http://feeds.example.org/feeds/all.atom", "https://feeds.example.org/feeds/all.atom", False),
    ("https://feeds.example.org/feeds/All.atom", "https://feeds.example.org/feeds/all.atom", False),
    ("http://127.0.0.1:8000/feeds/all.atom", "http://127.0.0.1:8001/feeds/all.atom", False),
    ("https://feeds.example.org/feeds/all.atom?limit=5", "https://feeds.example.org/feeds/all.atom", False),
])
def test_same_url_ignores_only_case_of_scheme_and_host_and_a_trailing_slash(a: str, b: str, expected: bool) -> None:
    assert same_url(a, b) is expected


@pytest.mark.parametrize(("self_url", "level"), [
    ("https://feeds.example.org/feeds/all.atom/", "ok"),
    ("http://localhost:8000/feeds/all.atom", "FAIL"),  # FEEDSVC_BASE_URL left at its default
    (None, "warn"),
])
def test_self_link_check(self_url: str | None, level: str) -> None:
    assert self_link_check(self_url, "https://feeds.example.org/feeds/all.atom").level == level


@pytest.mark.parametrize(("fmt", "media_type", "level"), [
    ("atom", "application/atom+xml", "ok"), ("rss", "application/rss+xml", "ok"),
    ("json", "application/feed+json", "ok"), ("atom", "application/xml", "warn"), ("rss", "text/xml", "warn"),
    ("json", "application/json", "warn"), ("atom", "text/html", "FAIL"), ("rss", "application/atom+xml", "FAIL"),
    ("json", "application/xml", "FAIL"), ("atom", "", "FAIL"), ("atom", "application/octet-stream", "FAIL"),
])
def test_content_type_check(fmt: str, media_type: str, level: str) -> None:
    assert content_type_check(fmt, media_type).level == level


def fetched(status: int = 200, body: bytes = b"<feed/>", encoding: str = "", **headers: str) -> Fetched:
    return Fetched(url="https://feeds.example.org/feeds/all.atom", status=status, headers=headers, body=body,
                   encoding=encoding, size=len(body), seconds=0.01, hops=())


@pytest.mark.parametrize(("answer", "level", "words"), [
    (fetched(304, b""), "ok", "304"),
    (fetched(200, b"<feed/>"), "FAIL", "validators not honoured"),
    (fetched(200, b"<feed>new</feed>"), "warn", "another body"),
    (fetched(412, b""), "FAIL", "412"),
    ("timed out", "FAIL", "timed out"),
], ids=["304", "same body", "another body", "412", "no answer"])
def test_conditional_check(answer: Fetched | str, level: str, words: str) -> None:
    check = conditional_check("if-modified-since", answer, fetched(200, b"<feed/>"))
    assert (check.level, words in check.detail) == (level, True), check


@pytest.mark.parametrize(("plain", "zipped", "levels"), [
    (fetched(body=b"x" * 5000), fetched(body=b"x" * 5000, encoding="gzip", vary="Accept-Encoding"), ["ok"]),
    (fetched(body=b"x" * 5000), fetched(body=b"x" * 5000, encoding="gzip"), ["ok", "warn"]),  # no Vary
    (fetched(body=b"x" * 5000), fetched(body=b"x" * 5000), ["FAIL"]),
    (fetched(body=b"x" * 500), fetched(body=b"x" * 500), ["note"]),  # too small to be worth it
    (fetched(body=b"x" * 5000, encoding="gzip"), fetched(body=b"x" * 5000, encoding="gzip"), ["FAIL"]),  # unasked
], ids=["gzip", "gzip without Vary", "not compressed", "small", "gzip unasked"])
def test_gzip_check(plain: Fetched, zipped: Fetched, levels: list[str]) -> None:
    assert [check.level for check in gzip_check(plain, zipped)] == levels


def test_parse_feed_finds_the_self_link_and_refuses_what_readers_refuse() -> None:
    rss = (b'<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
           b"<title>t</title><link>https://feeds.example.org/</link><description>d</description>"
           b'<atom:link rel="self" type="application/rss+xml" href="https://feeds.example.org/feeds/all.rss"/>'
           b"</channel></rss>")
    parsed = parse_feed("rss", rss)
    assert (parsed.level, parsed.self_url) == ("ok", "https://feeds.example.org/feeds/all.rss")
    json_feed = b'{"version": "https://jsonfeed.org/version/1.1", "title": "t", "feed_url": "https://x/f.json"}'
    assert parse_feed("json", json_feed).self_url == "https://x/f.json"
    assert parse_feed("json", b'{"version": "1.1", "items": []}').level == "FAIL"
    assert parse_feed("json", b"{").level == "FAIL"
    assert parse_feed("atom", CHALLENGE).level == "FAIL"  # feedparser: no bozo, but no feed either
    assert parse_feed("atom", rss[:-10]).level == "FAIL"  # cut short: bozo


@pytest.mark.parametrize("url", ["feeds.example.org", "ftp://feeds.example.org", "file:///srv/feedsvc", "https://"])
def test_site_root_is_an_http_url(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        site_root(url)
    assert site_root("HTTPS://feeds.example.org/news/?x#y") == "https://feeds.example.org/news"


def test_a_url_that_is_not_a_site_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "feeds.example.org"]) == 2
    assert main(["doctor", "https://feeds.example.org", "--timeout", "0"]) == 2
    assert "feedsvc: doctor:" in capsys.readouterr().err


# --- a small site of our own: redirects, a bot wall for one reader, a proxy ----------------------------------

INDEX = b"""<!doctype html><html><head>
<link rel="alternate" type="application/atom+xml" href="feeds/old.atom">
<link rel="alternate" type="application/atom+xml" href="feeds/ftp.atom">
</head><body></body></html>"""


class _Site(BaseHTTPRequestHandler):
    """An index page, a feed moved with 301, one moved to ftp:, and a feed behind a bot wall for Feedly alone."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path  # a proxy gets the absolute URL
        if path == "/":
            self._send(200, "text/html", INDEX)
        elif path in ("/feeds/old.atom", "/feeds/ftp.atom"):
            target = "/feeds/all.atom" if path == "/feeds/old.atom" else "ftp://127.0.0.1/feeds/all.atom"
            self._send(301, "text/plain", b"Moved\n", Location=target)
        elif path == "/feeds/all.atom" and "feedly" in self.headers.get("User-Agent", "").lower():
            self._send(200, "text/html", CHALLENGE)
        elif path == "/feeds/all.atom":
            self._feed()
        else:
            self._send(404, "text/plain", b"Not found\n")

    def _feed(self) -> None:
        if self.headers.get("If-None-Match") == '"v1"':
            self._send(304, "", b"", ETag='"v1"')
            return
        feed = (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><id>urn:t</id>'
                f'<title>t</title><updated>2025-01-01T00:00:00Z</updated><author><name>a</name></author>'
                f'<link rel="self" href="http://{self.headers["Host"]}/feeds/all.atom"/></feed>')
        self._send(200, "application/atom+xml", feed.encode(), ETag='"v1"', **{"Cache-Control": "max-age=60"})

    def _send(self, status: int, media_type: str, body: bytes, **headers: str) -> None:
        self.send_response(status)
        if media_type:
            self.send_header("Content-Type", media_type)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def doctor_report(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["doctor", url, "--json", "--timeout", "5"])
    return code, json.loads(capsys.readouterr().out)


def checks_of(report: dict[str, Any], url: str) -> dict[str, tuple[str, str]]:
    """A feed's checks by name: (level, detail)."""
    feed = next(feed for feed in report["feeds"] if feed["url"] == url)
    return {check["name"]: (check["level"], check["detail"]) for check in feed["checks"]}


def failures(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(feed["url"], check["name"]) for feed in report["feeds"] for check in feed["checks"]
            if check["level"] == "FAIL"}


def test_a_redirect_is_named_its_target_checked_and_a_bot_wall_for_one_reader_found(
        site: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = doctor_report(site, capsys)
    assert code == 1
    moved = checks_of(report, f"{site}/feeds/old.atom")
    assert moved["redirect"] == ("warn", f"301 to {site}/feeds/all.atom")
    assert moved["self link"][0] == "ok"  # compared with where the redirect led
    assert moved["if-none-match"][0] == "ok"
    assert moved["validators"][0] == "warn"  # an ETag alone: newsboat revalidates by date only
    level, detail = moved["feed body"]
    assert level == "FAIL" and "Feedly" in detail and "newsboat" not in detail and "Miniflux" not in detail
    level, detail = checks_of(report, f"{site}/feeds/ftp.atom")["readers"]
    assert level == "FAIL" and "ftp://127.0.0.1/feeds/all.atom: not an http or https URL" in detail
    assert failures(report) == {(f"{site}/feeds/old.atom", "feed body"), (f"{site}/feeds/ftp.atom", "readers")}
    assert report["checks"][0]["name"] == "index" and report["checks"][0]["level"] == "ok"
    assert report["checks"][1]["name"] == "opml" and report["checks"][1]["level"] == "warn"  # 404: index enough


def test_requests_go_through_the_proxy_the_environment_names(
        site: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", site)
    _, report = doctor_report("http://feeds.invalid", capsys)  # .invalid never resolves (RFC 2606)
    assert [feed["url"] for feed in report["feeds"]] == ["http://feeds.invalid/feeds/old.atom",
                                                         "http://feeds.invalid/feeds/ftp.atom"]
    assert checks_of(report, "http://feeds.invalid/feeds/old.atom")["self link"][0] == "ok"


def test_a_site_with_no_feeds_to_find_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = doctor_report(f"http://127.0.0.1:{free_port()}", capsys)  # nothing listens there
    assert code == 1 and report["feeds"] == []
    assert [(c["name"], c["level"]) for c in report["checks"]] == [("index", "warn"), ("opml", "warn"),
                                                                  ("feeds", "FAIL")]


# --- the real servers ------------------------------------------------------------------------------------------

@pytest.fixture
def newsroom(write_post: WritePost) -> None:
    write_post("2025/ferry.md", title="Ferry returns to the harbour", date="2025-01-10-08-00-00",
               categories="[news]", tags="[harbour]", body="The ferry is back. " * 20)
    write_post("2025/match.md", title="Cup final in Zürich", date="2025-01-11T18:00:00Z",
               categories="[sport]", body="Über den Wolken, naïve café. " * 20)
    write_post("2025/storm.md", title="Storm warning", date="2025-01-12T06:30:00Z",
               categories="[news]", tags="[harbour]", body="Wind from the west. " * 20)


def outlines(opml: bytes) -> list[str]:
    return [str(e.get("xmlUrl")) for e in ElementTree.fromstring(opml).iter("outline") if e.get("xmlUrl")]


@pytest.mark.system
def test_feedsvc_serve_passes_and_every_listed_feed_is_checked(
        newsroom: None, content_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(content_dir, tmp_path) as served:
        status, _, opml = http_get(f"{served.url}/feeds.opml")
        assert status == 200
        run = subprocess.run([sys.executable, "-m", "feedsvc", "doctor", served.url], capture_output=True,
                             text=True, timeout=60)
        code, report = doctor_report(served.url, capsys)
    assert run.returncode == 0, run.stdout + run.stderr
    listed = [*outlines(opml), *(f"{served.url}/feeds/all.{fmt}" for fmt in ("atom", "rss", "json"))]
    assert len(set(listed)) == 6  # all in three formats; news, sport and harbour in Atom
    blocks = [line for line in run.stdout.splitlines() if line and not line.startswith(" ")]
    assert sorted(blocks[1:-1]) == sorted(set(listed)), run.stdout
    assert blocks[-1] == "6 feeds checked, 0 failing: 0 failures, 0 warnings", run.stdout
    assert code == 0 and sorted(feed["url"] for feed in report["feeds"]) == sorted(set(listed))
    for feed in report["feeds"]:
        levels = {check["name"]: check["level"] for check in feed["checks"]}
        assert {name: levels.get(name) for name in CHECKED} == dict.fromkeys(CHECKED, "ok"), feed


FEED_LOCATION = 'location ~ "^/feeds/[^.]+\\.(atom|rss|json)$" {'
BOT_WALL = ('\n        default_type text/html;\n        if ($http_user_agent ~* "feedly") {\n'
            f"            return 200 '{CHALLENGE.decode()}';\n        }}")
# (replacements in deploy/nginx.conf, the check that fails for the all-posts Atom feed, words in its detail)
MISTAKES: dict[str, tuple[list[tuple[str, str]], str | None, str]] = {
    "none: deploy/nginx.conf as it is": ([], None, ""),
    "Atom served as text/html": ([("application/atom+xml   atom;", "text/html   atom;")], "feed body",
                                 "served as text/html, for newsboat, NetNewsWire, Feedly, Miniflux, feedparser"),
    "a bot wall for Feedly": ([(FEED_LOCATION, FEED_LOCATION + BOT_WALL)], "feed body",
                              "an HTML page, not a feed (a CDN's bot wall?), for Feedly"),
    "no gzip": ([("gzip_static on;", "gzip_static off;")], "gzip", "not compressed"),
    "validators not honoured": ([("etag on;", "etag off;"), ("if_modified_since before;", "if_modified_since off;")],
                                "if-modified-since", "validators not honoured"),
    "no Cache-Control": ([('add_header Cache-Control "max-age=300";', "")], "cache-control", "missing"),
}


def server_conf(root: Path, port: int, replacements: list[tuple[str, str]]) -> str:
    """deploy/nginx.conf for this export and port, with `replacements` made in its directives (not comments)."""
    lines = SERVER_CONF.read_text("utf-8").splitlines(keepends=True)
    for old, new in [("listen 80;", f"listen 127.0.0.1:{port};"), ("root /srv/feedsvc;", f"root {root};"),
                     ("include /srv/feedsvc/nginx-redirects.conf;", f"include {root}/nginx-redirects.conf;"),
                     *replacements]:
        found = [i for i, line in enumerate(lines) if old in line.partition("#")[0]]
        assert len(found) == 1, f"deploy/nginx.conf should have {old!r} exactly once"
        lines[found[0]] = lines[found[0]].replace(old, new, 1)
    return "".join(lines)


@pytest.mark.system
@pytest.mark.skipif(not NGINX, reason="nginx is not installed (.ci/run installs Debian's nginx)")
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_nginx_over_an_export_fails_the_check_its_config_breaks(
        mistake: str, newsroom: None, content_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replacements, failing, words = MISTAKES[mistake]
    export = tmp_path / "export"

    def block(port: int) -> str:  # built for the address nginx will have: the self links must match it
        built = main(["build", "--content", str(content_dir), "--out", str(export),
                      "--base-url", f"http://127.0.0.1:{port}"])
        assert built == 0, capsys.readouterr().err
        return server_conf(export, port, replacements)

    with run_nginx(tmp_path / "nginx", block) as url:
        code, report = doctor_report(url, capsys)
    assert report["checks"][0]["level"] == "warn"  # an export has no index page: found through the OPML list
    assert sorted(feed["url"] for feed in report["feeds"]) == sorted(outlines((export / "feeds.opml").read_bytes()))
    if failing is None:
        assert (code, failures(report)) == (0, set()), json.dumps(report, indent=1)
        return
    assert code == 1
    level, detail = checks_of(report, f"{url}/feeds/all.atom")[failing]
    assert level == "FAIL" and words in detail, detail
