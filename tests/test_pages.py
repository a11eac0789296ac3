"""Documents made on request: bounded in memory, and one client's renders never hold the others' threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import front_matter_post, parse
from flask import Flask

from feedsvc import publisher as publisher_module
from feedsvc.model import Channel, FeedFormat, RenderedFeed
from feedsvc.pages import Busy, PageCache

WHEN = datetime(2025, 1, 1, tzinfo=UTC)


def feed(size: int, started: threading.Event | None = None,
         release: threading.Event | None = None) -> Callable[[], RenderedFeed]:
    def make() -> RenderedFeed:
        if started is not None and release is not None:
            started.set()
            release.wait(5)
        return RenderedFeed(channel=Channel(kind="all", slug="", name="all"), format=FeedFormat.ATOM,
                            body=b"x" * size, etag='"a"', gzip_body=b"", gzip_etag='"a-gzip"', last_modified=WHEN)
    return make


def test_the_cache_is_bounded_by_bytes_not_documents() -> None:
    cache = PageCache(max_bytes=10_000)
    for n in range(100):
        cache.get(("all", n), feed(1000))
    assert cache.renders == 100
    cache.get(("all", 99), feed(1000))  # the newest are kept ...
    assert cache.renders == 100
    cache.get(("all", 0), feed(1000))  # ... the oldest made again
    assert cache.renders == 101


def test_a_second_render_at_once_is_refused_not_queued() -> None:
    started, release = threading.Event(), threading.Event()
    cache = PageCache()
    first = threading.Thread(target=cache.get, args=(("all", 1), feed(10, started, release)))
    first.start()
    assert started.wait(5)
    with pytest.raises(Busy):
        cache.get(("all", 2), feed(10))
    release.set()
    first.join(5)
    assert cache.get(("all", 1), feed(99)).body == b"x" * 10  # cached: no render, no refusal
    assert (cache.renders, cache.refused) == (1, 1)


def test_a_busy_server_says_when_to_come_back(content_dir: Path, make_app: Callable[..., Flask],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(5):
        (content_dir / f"p{n}.md").write_text(front_matter_post(title=f"Post {n}", date=f"2025-01-0{n + 1}",
                                                                tags="[ferry]"), "utf-8")
    app = make_app()
    started, release = threading.Event(), threading.Event()
    real = publisher_module.render_feed

    def slow(*args: Any, **kwargs: Any) -> RenderedFeed:
        started.set()
        release.wait(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(publisher_module, "render_feed", slow)
    client = app.test_client()
    worker = threading.Thread(target=client.get, args=("/feeds/tag/ferry.atom",))
    worker.start()
    assert started.wait(5)
    busy = app.test_client().get("/feeds/all.atom?limit=2")
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert busy.headers["Cache-Control"] == "no-store"
    assert app.test_client().get("/feeds/all.atom").status_code == 200  # made in the rebuild: never waits
    assert "feedsvc_pages_refused_total 1.0" in app.test_client().get("/metrics").text
    release.set()
    worker.join(5)
    assert [e.title for e in parse(app.test_client().get("/feeds/all.atom?limit=2")).entries] == ["Post 4", "Post 3"]
