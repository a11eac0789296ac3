"""A real headless chromium against a real `feedsvc serve`, on a phone-sized screen.

Skipped when chromium is missing; .ci/run installs Debian's chromium when it can.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import pytest
from conftest import front_matter_post
from serving import http_get, serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.system,
              pytest.mark.skipif(CHROMIUM is None,
                                 reason="chromium is not installed; .ci/run installs it (apt-get install chromium)")]

PHONE = (412, 915)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SITE_TITLE = "Harbour Town News"
SHOWCASE = Path("/tmp/feedsvc-index.png")  # for a person to look at
BROWSER_TIMEOUT = 60.0
POSTS = {  # file -> (title, date, categories)
    "ferry.md": ("Ferry returns", "2025-01-10T08:00:00Z", "[Local News]"),
    "tram.md": ("Tram line opens", "2025-01-12T07:00:00Z", "[Local News]"),
    "match.md": ("Cup final", "2025-01-11T18:00:00Z", "[Sport]"),
    "regatta.md": ("Regatta weekend", "2025-01-09T10:00:00Z", "[Sport]"),
}
CHANNELS = ("all", "category/local-news", "category/sport")


class Anchors(HTMLParser):
    """(href, text) of every <a>, and the text of the <h1>."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.h1 = ""
        self._open: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a" and (href := dict(attrs).get("href")):
            self.links.append((href, ""))
            self._open = "a"
        elif tag == "h1":
            self._open = "h1"

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open == "a":
            href, text = self.links[-1]
            self.links[-1] = (href, text + data)
        elif self._open == "h1":
            self.h1 += data


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a running `feedsvc serve` over a few posts in two categories."""
    root = tmp_path_factory.mktemp("browser-site")
    content = root / "content"
    content.mkdir()
    for name, (title, date, categories) in POSTS.items():
        (content / name).write_text(front_matter_post(title=title, date=date, categories=categories), "utf-8")
    with serve(content, root, FEEDSVC_SITE_TITLE=SITE_TITLE) as served:
        yield served.url


def run_chromium(tmp_path: Path, *args: str) -> bytes:
    """Run headless chromium with a fresh profile; its stdout. Fails (never hangs) if it does not finish."""
    assert CHROMIUM is not None
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--window-size={PHONE[0]},{PHONE[1]}", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=BROWSER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the browser and its helpers, all in the session started above
        process.communicate()
        pytest.fail(f"chromium did not finish within {BROWSER_TIMEOUT:.0f}s: {' '.join(args)}")
    assert process.returncode == 0, f"chromium exited with {process.returncode}:\n{stderr.decode()[-3000:]}"
    return stdout


@pytest.mark.parametrize(("name", "path"), [("index", "/"), ("category", "/feeds/category/local-news")])
def test_pages_render_on_a_phone_screen(site: str, tmp_path: Path, name: str, path: str) -> None:
    assert http_get(site + path)[0] == 200, path
    shot = tmp_path / f"{name}.png"
    run_chromium(tmp_path, f"--screenshot={shot}", site + path)
    assert shot.is_file(), f"chromium wrote no screenshot of {path}"
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == PHONE
    assert len(data) > 8 * 1024, f"{len(data)} bytes: a blank page?"  # a nearly blank 412x915 page is ~3 KB
    if name == "index":
        shutil.copyfile(shot, SHOWCASE)


def same_origin(site: str, page_url: str, links: list[tuple[str, str]]) -> set[str]:
    absolute = {urljoin(page_url, href).partition("#")[0] for href, _ in links}
    return {url for url in absolute if url.startswith(site + "/")}


def test_every_link_on_the_rendered_index_answers(site: str, tmp_path: Path) -> None:
    dom = run_chromium(tmp_path, "--dump-dom", site + "/").decode("utf-8")
    page = Anchors(dom)
    assert page.h1 == SITE_TITLE
    assert {"All posts", "Local News", "Sport"} <= {text.strip() for _, text in page.links}

    urls = same_origin(site, site + "/", page.links)
    expected = {f"{site}/feeds.opml"}
    expected |= {f"{site}/feeds/{channel}{suffix}" for channel in CHANNELS for suffix in ("", ".atom", ".rss", ".json")}
    assert urls == expected
    broken = {url: status for url in sorted(urls) if (status := http_get(url)[0]) != 200}
    assert broken == {}


def test_every_link_on_the_rendered_preview_answers(site: str, tmp_path: Path) -> None:
    page_url = f"{site}/feeds/category/sport"
    dom = run_chromium(tmp_path, "--dump-dom", page_url).decode("utf-8")
    page = Anchors(dom)
    assert page.h1 == f"{SITE_TITLE}: Sport"
    assert [text for href, text in page.links if "/posts/" in href] == ["Cup final", "Regatta weekend"]

    urls = same_origin(site, page_url, page.links)
    assert urls == {f"{site}/", f"{site}/posts/match", f"{site}/posts/regatta",
                    *(f"{site}/feeds/category/sport.{fmt}" for fmt in ("atom", "rss", "json"))}
    broken = {url: status for url in sorted(urls) if (status := http_get(url)[0]) != 200}
    assert broken == {}


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_a_feed_opened_in_the_browser_is_a_readable_page(site: str, tmp_path: Path, fmt: str) -> None:
    """A browser navigation (Sec-Fetch-Dest: document) gets the feed's page at the feed's own address."""
    dom = run_chromium(tmp_path, "--dump-dom", f"{site}/feeds/category/sport.{fmt}").decode("utf-8")
    page = Anchors(dom)
    assert page.h1 == f"{SITE_TITLE}: Sport", dom[:2000]
    assert "paste one of these addresses into your feed reader" in dom
    titles = [text for _, text in page.links]
    assert "Cup final" in titles and "Regatta weekend" in titles and "Tram line opens" not in titles
    status, _, raw = http_get(f"{site}/feeds/category/sport.{fmt}")
    assert status == 200 and raw.lstrip().startswith(b"<?xml")  # readers get the feed itself
