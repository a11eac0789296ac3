"""REDbot (HTTP lint, written by others) on every kind of URL feedsvc serves: no BAD note and no WARN."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from lab.redbot_lint import lint_report
from serving import serve

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("redbot", reason="redbot is a test extra: pip install -e '.[test]'")


def test_redbot_finds_nothing_bad(tmp_path: Path) -> None:
    with serve(ROOT / "content", tmp_path) as served:
        with urllib.request.urlopen(f"{served.url}/feeds/all.json", timeout=10) as response:
            slug = json.loads(response.read())["items"][0]["url"].rsplit("/", 1)[1]
        paths = ["/", "/feeds/all.atom", "/feeds/category/news.rss", "/feeds/all.json", "/feeds.opml",
                 "/feeds/all", f"/posts/{slug}", "/healthz", "/metrics", "/static/feedsvc.css"]
        found = {}
        for path in paths:
            report = lint_report(served.url + path)
            assert report.status == 200, (path, report.status)
            found[path] = [str(n) for n in report.at("bad", "warning")]
            if path.startswith("/feeds"):  # what aggregators rely on: both validators and gzip
                assert report.support.get("inm") and report.support.get("gzip"), (path, report.support)
        print(json.dumps(found, indent=1))
        assert found == {path: [] for path in paths}
