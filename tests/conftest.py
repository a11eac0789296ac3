"""Shared fixtures: a temporary content folder, settings for it, and an app over it."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient

from feedsvc.app import create_app
from feedsvc.config import Settings, load_settings
from feedsvc.websub import WebSubNotifier

BASE_URL = "https://feeds.example.org"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)

WritePost = Callable[..., Path]


_QUICK = False  # set by pytest_configure: the quick loop (-m "not system") is running


def pytest_configure(config: pytest.Config) -> None:
    global _QUICK
    _QUICK = "not system" in (config.getoption("markexpr") or "")


def examples(full: int) -> int:
    """Hypothesis examples for a property: all of them in the whole suite, a fifth in the quick loop."""
    return max(20, full // 5) if _QUICK else full


@pytest.fixture(autouse=True)
def private_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No FEEDSVC_* setting of the developer's leaks in; every test (and server) gets its own cache."""
    for key in [k for k in os.environ if k.startswith("FEEDSVC_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture(autouse=True)
def logging_left_as_found() -> Iterator[None]:
    """`main()` configures logging onto the test's captured stderr, which pytest closes afterwards."""
    import logging

    handlers = {name: list(logging.getLogger(name).handlers) for name in ("", "_granian")}
    yield
    for name, kept in handlers.items():
        logging.getLogger(name).handlers[:] = kept


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "content"
    folder.mkdir()
    return folder


def front_matter_post(*, title: str = "A post", date: str = "2025-01-02-03-04-05",
                      categories: str = "[latest, news]", body: str = "Body text.", **extra: str) -> str:
    """A post in the static-site style of the real content: trailing spaces and all."""
    lines = ["---", "extends: _layouts.post", "section: content", f"title: {title} ",
             f"date: {date} ", f"categories: {categories} "]
    lines += [f"{key}: {value} " for key, value in extra.items()]
    return "\n".join([*lines, "--- ", body, ""])


@pytest.fixture
def write_post(content_dir: Path) -> WritePost:
    def write(name: str, text: str | None = None, **fields: str) -> Path:
        path = content_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text) if text is not None else front_matter_post(**fields), "utf-8")
        return path
    return write


@pytest.fixture
def make_settings(content_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        # settle=0: tests that write a file and call rebuild() at once mean "the file is complete".
        values: dict[str, object] = {"content_dir": content_dir, "base_url": BASE_URL, "settle": 0,
                                     "site_title": "Example News", "author": "Example Newsroom"}
        values.update(overrides)
        return load_settings(env={}, **values)
    return make


@pytest.fixture
def make_app(make_settings: Callable[..., Settings]) -> Callable[..., Flask]:
    def make(now: datetime = NOW, **overrides: object) -> Flask:
        return create_app(make_settings(**overrides), clock=lambda: now)
    return make


@pytest.fixture
def client(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app().test_client()


def write_whole(content: Path, name: str, text: str) -> None:
    """Written elsewhere and renamed in, as editors and sync tools do: a reader never sees half a post."""
    target = content / name
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(text, "utf-8")
    temporary.replace(target)


def rebuild(app: Flask) -> None:
    app.extensions["feedsvc"].rebuild()


def run_together(work: Callable[[], None], threads: int) -> None:
    """`work` in `threads` threads started at once, switching between them as often as the interpreter can."""
    start = threading.Barrier(threads)

    def started() -> None:
        start.wait()
        work()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        workers = [threading.Thread(target=started) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)


def parse(response_or_bytes: object) -> feedparser.FeedParserDict:
    data = getattr(response_or_bytes, "data", response_or_bytes)
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


@pytest.fixture
def notifiers() -> Iterator[Callable[..., WebSubNotifier]]:
    """Started notifiers, all stopped at the end of the test."""
    started: list[WebSubNotifier] = []

    def make(hubs: list[str], **options: Any) -> WebSubNotifier:
        notifier = WebSubNotifier(hubs, **options)
        notifier.start()
        started.append(notifier)
        return notifier

    yield make
    for notifier in started:
        notifier.stop()
