"""Readers hammering feeds while an editor adds, edits and deletes posts every few milliseconds."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import front_matter_post
from lxml import etree

from feedsvc.app import create_app, start_background
from feedsvc.config import Settings

pytestmark = pytest.mark.system

SECONDS = 3.0
PATHS = ["/feeds/all.atom", "/feeds/all.rss", "/feeds/all.json", "/feeds/category/news.atom",
         "/feeds/category/sport.rss"]


def test_readers_always_get_whole_feeds_with_matching_etags(content_dir: Path,
                                                            make_settings: Callable[..., Settings]) -> None:
    for i in range(10):
        (content_dir / f"seed-{i}.md").write_text(
            front_matter_post(title=f"Seed {i}", date=f"2025-01-{i + 1:02d}", categories="[news, sport]"), "utf-8")
    app = create_app(make_settings(rebuild_interval=3600, debounce=0.0, settle=0.0, max_items=8))
    background = start_background(app)
    stop = threading.Event()
    failures: list[str] = []
    counts = {"responses": 0, "edits": 0}

    def edit() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            path = content_dir / f"churn-{rng.randrange(20)}.md"
            if path.exists() and rng.random() < 0.3:
                path.unlink()
            else:
                text = front_matter_post(title=f"Churn {rng.random():.6f}", date=f"2025-02-{rng.randrange(1, 28):02d}",
                                         categories=rng.choice(["[news]", "[sport]", "[news, sport]"]),
                                         body="Paragraph. " * rng.randrange(1, 200))
                tmp = path.with_name(f".{path.name}.tmp")
                tmp.write_text(text, "utf-8")
                tmp.replace(path)  # as editors save
            counts["edits"] += 1
            time.sleep(0.003)

    def read(seed: int) -> None:
        rng = random.Random(seed)
        client = app.test_client()
        while not stop.is_set():
            path = rng.choice(PATHS)
            zipped = rng.random() < 0.5
            response = client.get(path, headers={"Accept-Encoding": "gzip"} if zipped else {})
            counts["responses"] += 1
            if response.status_code != 200:
                failures.append(f"{path}: HTTP {response.status_code}")
                continue
            body = gzip.decompress(response.data) if zipped else response.data
            digest = hashlib.sha256(body).hexdigest()[:32]
            expected = f'"{digest}-gzip"' if zipped else f'"{digest}"'
            if response.headers["ETag"] != expected:
                failures.append(f"{path}: ETag {response.headers['ETag']} does not match the body")
            try:
                if path.endswith(".json"):
                    json.loads(body)
                else:
                    etree.fromstring(body)
            except ValueError as exc:
                failures.append(f"{path}: not well-formed: {exc}")

    threads = [threading.Thread(target=edit)] + [threading.Thread(target=read, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(SECONDS)  # the length of the storm, not a wait for a result
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        background.stop()
    assert counts["edits"] > 50 and counts["responses"] > 50, counts
    assert failures == [], failures[:5]
