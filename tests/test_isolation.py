"""Any step of loading or rendering one post may fail in a way no check foresaw: it costs that post, never a feed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import front_matter_post, parse, rebuild
from feedgen.entry import FeedEntry
from flask import Flask

# (module, function): the steps a post goes through, from its bytes to the bytes of a feed
STEPS = [
    ("feedsvc.content", "split_front_matter"),
    ("feedsvc.content", "_build_post"),
    ("feedsvc.content", "_terms"),
    ("feedsvc.bodies", "render_markdown"),
    ("feedsvc.bodies", "with_lead_image"),
    ("feedsvc.markup", "sanitize"),
    ("feedsvc.render", "_add_entry"),
    ("feedsvc.jsonfeed", "_item"),
]
LOAD_STEPS = {"split_front_matter", "_build_post", "_terms"}


def _failing_for_victim(real: Callable[..., Any]) -> Callable[..., Any]:
    def step(*args: Any, **kwargs: Any) -> Any:
        if "victim" in repr((args, kwargs)).lower():
            raise RuntimeError("a failure nobody foresaw")
        return real(*args, **kwargs)
    return step


def _write_posts(content_dir: Path) -> None:
    for name, title, day in (("first.md", "First", "01"), ("victim.md", "Victim", "02"), ("last.md", "Last", "03")):
        (content_dir / name).write_text(front_matter_post(
            title=title, date=f"2025-01-{day}-00-00-00", tags="[harbour]", author="Sam Rivera",
            description=f"{title} summary", body=f"{title} body with a [link](/x)."), "utf-8")


def _assert_every_feed_serves_the_others(app: Flask) -> None:
    client = app.test_client()
    for path in ("/feeds/all", "/feeds/category/news", "/feeds/tag/harbour", "/feeds/author/sam-rivera"):
        for ext in ("atom", "rss"):
            response = client.get(f"{path}.{ext}")
            assert response.status_code == 200, (path, ext)
            assert {"First", "Last"} <= {e.title for e in parse(response).entries}, (path, ext)
        items = json.loads(client.get(f"{path}.json").data)["items"]
        assert {"First", "Last"} <= {item["title"] for item in items}, path
    assert client.get("/posts/first").status_code == 200


@pytest.mark.parametrize(("module", "name"), STEPS, ids=[name for _, name in STEPS])
def test_a_step_that_raises_for_one_post_costs_only_that_post(
        module: str, name: str, content_dir: Path, make_app: Callable[..., Flask],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _write_posts(content_dir)
    target = __import__(module, fromlist=[name])
    monkeypatch.setattr(target, name, _failing_for_victim(getattr(target, name)))
    app = make_app()
    _assert_every_feed_serves_the_others(app)
    problems = {p.path: p.message for p in app.extensions["feedsvc"].snapshot.problems}
    if name in LOAD_STEPS:
        assert "cannot be read" in problems["victim.md"]
    (content_dir / "later.md").write_text(front_matter_post(title="Later", date="2025-02-01"), "utf-8")
    rebuild(app)  # and rebuilds go on
    assert "Later" in {e.title for e in parse(app.test_client().get("/feeds/all.atom")).entries}


@pytest.mark.parametrize("method", ["atom_entry", "rss_entry"])
def test_an_entry_lxml_refuses_on_writing_is_left_out(method: str, content_dir: Path,
                                                      make_app: Callable[..., Flask],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _write_posts(content_dir)
    real = getattr(FeedEntry, method)

    def refusing(self: FeedEntry, *args: Any, **kwargs: Any) -> Any:
        if "victim" in str(self.id()):
            raise ValueError("All strings must be XML compatible")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FeedEntry, method, refusing)
    app = make_app()
    _assert_every_feed_serves_the_others(app)
