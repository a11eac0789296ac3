"""The reader lab: real feed clients that other people wrote follow a scripted story against a real server.

subscribe (from the OPML list) -> poll with nothing changed -> edit a title and body -> add a post
dated before the newest -> add a post in two categories -> delete a post -> poll. After each step
every client's view must equal what the server serves (as that client keeps history: see
lab.clients.expected_view), and the no-change poll must be a 304 for every client that sends
validators. Run against `feedsvc serve` (with a real WebSub hub and subscriber) and against the
static export behind nginx with deploy/nginx.conf. A failure prints the whole client x step table.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import feedparser
import pytest
from conftest import write_whole
from lab.clients import ADAPTERS, Client, Entry, expected_view, make_client, missing
from lab.proxy import RecordingProxy
from serving import NGINX, run_nginx, serve, wait_until

pytestmark = pytest.mark.system

# Subscribed through the OPML list: these two, one per XML format (the list names the Atom URL of each feed).
SUBSCRIBED = ("/feeds/all", "/feeds/category/news")
FORMAT = {"/feeds/all": "atom", "/feeds/category/news": "rss"}
# newsboat keeps one item per guid across all feeds (its cache's key), shown under the feed that had it first.
ONE_ITEM_PER_ID = {"newsboat"}
NGINX_CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"


def post_text(title: str, date: str, categories: str, body: str) -> str:
    """A post in the seed's static-site style (trailing spaces and all)."""
    return (f"---\nextends: _layouts.post\nsection: content\nimage: https://img.example.org/{date[:4]}/lead.jpg\n"
            f"title: {title} \ndescription: {title}, in short.\ndate: {date} \ncategories: {categories} \n"
            f"featured: false\n--- \n{body}\n")


def seed_content(content: Path) -> None:
    write_whole(content, "2025/harbour-ferry.txt", post_text("Harbour ferry returns", "2025-03-01-08-00-00",
                                                       "[latest, news]", "The ferry will peel off at nine."))
    write_whole(content, "2025/library-hours.md", post_text("Library opens late", "2025-03-03-09-30-00",
                                                      "[news]", "Open until ten on Thursdays."))
    write_whole(content, "2025/cup-final.md", post_text("Cup final tonight", "2025-03-05-18-00-00",
                                                  "[sport]", "Kick-off at eight."))


def edit_title_and_body(content: Path) -> None:
    # The same length and the same dates: only the bytes say it changed (nginx's ETag is mtime-size).
    write_whole(content, "2025/harbour-ferry.txt", post_text("Harbour ferry resumes", "2025-03-01-08-00-00",
                                                       "[latest, news]", "The ferry will peal off at nine."))


def add_backdated_post(content: Path) -> None:
    write_whole(content, "2024/archive-opens.md", post_text("Town archive opens", "2025-02-20-10-00-00",
                                                      "[news]", "Older than the newest post."))


def add_post_in_two_categories(content: Path) -> None:
    write_whole(content, "2025/stadium-bus.md", post_text("Stadium bus for the final", "2025-03-06-07-00-00",
                                                    "[news, sport]", "Buses every ten minutes."))


def delete_post(content: Path) -> None:
    (content / "2025/library-hours.md").unlink()


STORY: list[tuple[str, Callable[[Path], None] | None]] = [
    ("subscribe", None),
    ("no change", None),
    ("edit title+body", edit_title_and_body),
    ("backdated post", add_backdated_post),
    ("post in 2 categories", add_post_in_two_categories),
    ("delete post", delete_post),
    ("poll again", None),
]


def served_entries(url: str) -> list[Entry]:
    parsed = feedparser.parse(url)
    assert parsed.get("status") == 200 and not parsed.bozo, (url, parsed.get("status"), parsed.get("bozo_exception"))
    return [Entry(e.id, e.title) for e in parsed.entries]


def opml_feeds(url: str) -> list[str]:
    """The feed URLs a reader imports from the OPML list, as paths without the format."""
    with urllib.request.urlopen(url, timeout=10) as response:
        root = ET.fromstring(response.read())
    found = [outline.get("xmlUrl", "") for outline in root.iter("outline") if outline.get("xmlUrl")]
    listed = [path for path in SUBSCRIBED if any(f.endswith(f"{path}.atom") for f in found)]
    assert listed == list(SUBSCRIBED), found
    return listed


class Lab:
    """Each client behind its own recording proxy, so what it sent and got is its own."""

    def __init__(self, stack: ExitStack, upstream: str, workdir: Path, names: list[str]) -> None:
        self.upstream = upstream
        self.clients: dict[str, tuple[Client, RecordingProxy]] = {}
        for name in names:
            proxy = stack.enter_context(RecordingProxy(upstream))
            client = make_client(name, workdir / name)
            stack.callback(client.close)
            self.clients[name] = (client, proxy)
        self.seen: dict[str, list[list[Entry]]] = {path: [] for path in SUBSCRIBED}
        self.table: dict[str, dict[str, str]] = {name: {} for name in names}
        self.last_poll = 0.0

    def subscribe(self, paths: list[str]) -> None:
        for client, proxy in self.clients.values():
            for path in paths:
                client.subscribe(f"{proxy.url}{path}.{FORMAT[path]}")

    def poll(self, step: str, *, times: Callable[[Client], int] = lambda c: 1) -> None:
        for path in SUBSCRIBED:
            self.seen[path].append(served_entries(f"{self.upstream}{path}.{FORMAT[path]}"))
        for name, (client, proxy) in self.clients.items():
            for _ in range(times(client)):
                proxy.clear()
                client.poll()
            self.table[name][step] = self._judge(client, proxy, step)
        self.last_poll = time.monotonic()

    def _judge(self, client: Client, proxy: RecordingProxy, step: str) -> str:
        problems = [f"error: {e}" for e in client.errors]
        if step == "no change" and client.sends_validators:
            statuses = [x.status for x in proxy.exchanges if x.method == "GET"]
            if statuses != [304] * len(SUBSCRIBED):
                problems.append(f"no-change poll got {statuses}")
        view = client.view()
        pairs = []
        for path in SUBSCRIBED:
            url = next(u for u in view if u.endswith(f"{path}.{FORMAT[path]}"))
            pairs.append((path, sorted(view[url]), expected_view(client, self.seen[path])))
        if client.name in ONE_ITEM_PER_ID:  # an entry in two feeds is listed under one of them
            pairs = [("all feeds", sorted(e for _, got, _ in pairs for e in got),
                      sorted({e for _, _, want in pairs for e in want}))]
        for where, got, want in pairs:
            if got != want:
                problems.append(f"{where}: missing {sorted(set(want) - set(got))} extra {sorted(set(got) - set(want))}"
                                + (" (twice)" if len(got) > len(set(got)) else ""))
        return "ok" if not problems else "; ".join(problems)

    def wait_a_second(self) -> None:
        """Readers poll minutes apart; HTTP dates have whole seconds, so keep a change out of the poll's second."""
        wait_until(lambda: time.monotonic() - self.last_poll >= 1.05, 5.0, "a second after the last poll")

    def report(self) -> str:
        steps = [step for step, _ in STORY]
        width = max(len(s) for s in steps)
        lines = [f"{'client':<11} " + " ".join(f"{s:<{width}}" for s in steps)]
        for name, row in self.table.items():
            lines.append(f"{name:<11} " + " ".join(f"{('ok' if row.get(s) == 'ok' else 'DIFF'):<{width}}"
                                                  for s in steps))
        details = [f"  {name} / {step}: {verdict}" for name, row in self.table.items()
                   for step, verdict in row.items() if verdict != "ok"]
        return "\n".join(lines + details)

    def assert_all_ok(self) -> None:
        assert all(v == "ok" for row in self.table.values() for v in row.values()), "\n" + self.report()


def available_clients() -> list[str]:
    names = [name for name in ADAPTERS if not missing(name)]
    if len(names) < len(ADAPTERS):
        print("reader lab: skipping clients that are not installed:",
              {n: missing(n) for n in ADAPTERS if missing(n)})
    return names


def run_story(lab: Lab, content: Path, publish: Callable[[], None], served: str) -> None:
    lab.subscribe(opml_feeds(f"{served}/feeds.opml"))
    for step, change in STORY:
        if change is not None:
            lab.wait_a_second()
            change(content)
            publish()
        first = step == "subscribe"
        lab.poll(step, times=(lambda c: c.unconditional_polls) if first else (lambda c: 1))


def feed_etag(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.headers["ETag"])


@pytest.fixture
def content(tmp_path: Path) -> Path:
    folder = tmp_path / "content"
    seed_content(folder)
    return folder


def test_every_reader_sees_every_change_from_feedsvc_serve(content: Path, tmp_path: Path) -> None:
    from lab.hub import Subscriber, run_hub

    names = available_clients()
    with ExitStack() as stack:
        hub = stack.enter_context(run_hub())
        served = stack.enter_context(serve(content, tmp_path, FEEDSVC_WEBSUB_HUBS=hub.url,
                                           FEEDSVC_CACHE_MAX_AGE="0"))  # polls seconds apart, not minutes
        subscriber = stack.enter_context(Subscriber(hub.url))
        subscriber.subscribe(f"{served.url}/feeds/all.atom")
        lab = Lab(stack, served.url, tmp_path / "clients", names)

        def publish() -> None:  # the running service notices by itself; wait until it has
            before = {path: feed_etag(f"{served.url}{path}.atom") for path in SUBSCRIBED}
            wait_until(lambda: any(feed_etag(f"{served.url}{p}.atom") != e for p, e in before.items()),
                       10.0, "the service to publish the change")

        run_story(lab, content, publish, served.url)
        print("\n" + lab.report())
        # The hub was told, fetched the feed and pushed it to its subscriber: the last change is in it.
        wait_until(lambda: any(b"Stadium bus for the final" in d.body for d in subscriber.deliveries), 15.0,
                   "the hub to deliver the feed with the new post")
        assert hub.errors == [], hub.errors
        lab.assert_all_ok()


@pytest.mark.skipif(not NGINX, reason="nginx is not installed (.ci/run installs Debian's nginx)")
def test_every_reader_sees_every_change_from_the_static_export(content: Path, tmp_path: Path) -> None:
    out, base = tmp_path / "export", "http://127.0.0.1"
    names = available_clients()

    def build() -> None:
        subprocess.run([sys.executable, "-m", "feedsvc", "build", "--content", str(content), "--out", str(out),
                        "--base-url", base], check=True, capture_output=True, timeout=60)

    build()
    config = NGINX_CONF.read_text("utf-8").replace("root /srv/feedsvc;", f"root {out};").replace(
        "include /srv/feedsvc/nginx-redirects.conf;", f"include {out}/nginx-redirects.conf;")
    config = config.replace('add_header Cache-Control "max-age=300";', 'add_header Cache-Control "max-age=0";')
    with ExitStack() as stack:
        static = stack.enter_context(run_nginx(tmp_path / "nginx", lambda port: config.replace(
            "listen 80;", f"listen 127.0.0.1:{port};")))
        lab = Lab(stack, static, tmp_path / "clients", names)
        run_story(lab, content, build, static)
        print("\n" + lab.report())
        lab.assert_all_ok()
