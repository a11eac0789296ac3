"""Documents made on request: bounded in memory, and one client's renders never hold the others' threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import front_matter_post, parse
from flask import Flask

from feedsvc.model import Channel, FeedFormat, Page, PageLinks, RenderedFeed
from feedsvc.pages import Busy, PageCache

WHEN = datetime(2025, 1, 1, tzinfo=UTC)


def page(n: int) -> Page:
    url = f"https://example.org/feeds/all.atom?before={n}"
    return Page(channel=Channel(kind="all", slug="", name="all"), posts=(), links=PageLinks(self=url, first=url))


def fake_render(size: int, started: threading.Event | None = None,
                release: threading.Event | None = None) -> Callable[[Page, FeedFormat, datetime], RenderedFeed]:
    def render(p: Page, fmt: FeedFormat, updated: datetime) -> RenderedFeed:
        if started is not None and release is not None:
            started.set()
            release.wait(5)
        return RenderedFeed(channel=p.channel, format=fmt, body=b"x" * size, etag='"a"', gzip_body=b"",
                            gzip_etag='"a-gzip"', last_modified=updated)
    return render


def test_the_cache_is_bounded_by_bytes_not_documents() -> None:
    cache = PageCache(fake_render(1000), max_bytes=10_000)
    for n in range(100):
        cache.get(page(n), FeedFormat.ATOM, WHEN)
    assert cache.renders == 100
    cache.get(page(99), FeedFormat.ATOM, WHEN)  # the newest are kept ...
    assert cache.renders == 100
    cache.get(page(0), FeedFormat.ATOM, WHEN)  # ... the oldest made again
    assert cache.renders == 101


def test_a_second_render_at_once_is_refused_not_queued() -> None:
    started, release = threading.Event(), threading.Event()
    cache = PageCache(fake_render(10, started, release))
    first = threading.Thread(target=cache.get, args=(page(1), FeedFormat.ATOM, WHEN))
    first.start()
    assert started.wait(5)
    with pytest.raises(Busy):
        cache.get(page(2), FeedFormat.ATOM, WHEN)
    release.set()
    first.join(5)
    assert cache.get(page(1), FeedFormat.ATOM, WHEN).body == b"x" * 10  # cached: no render, no refusal
    assert (cache.renders, cache.refused) == (1, 1)


def test_a_busy_server_says_when_to_come_back(content_dir: Path, make_app: Callable[..., Flask]) -> None:
    for n in range(5):
        (content_dir / f"p{n}.md").write_text(front_matter_post(title=f"Post {n}", date=f"2025-01-0{n + 1}",
                                                                tags="[ferry]"), "utf-8")
    app = make_app()
    started, release = threading.Event(), threading.Event()
    pages = app.extensions["feedsvc"].pages
    real = pages._render

    def slow(p: Page, fmt: FeedFormat, updated: datetime) -> RenderedFeed:
        started.set()
        release.wait(5)
        return real(p, fmt, updated)

    pages._render = slow
    client = app.test_client()
    worker = threading.Thread(target=client.get, args=("/feeds/tag/ferry.atom",))
    worker.start()
    assert started.wait(5)
    busy = app.test_client().get("/feeds/all.atom?limit=2")
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert busy.headers["Cache-Control"] == "no-store"
    assert app.test_client().get("/feeds/all.atom").status_code == 200  # made in the rebuild: never waits
    release.set()
    worker.join(5)
    assert [e.title for e in parse(app.test_client().get("/feeds/all.atom?limit=2")).entries] == ["Post 4", "Post 3"]
