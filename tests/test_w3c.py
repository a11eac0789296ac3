"""Every Atom and RSS document feedsvc can serve, judged by the W3C Feed Validation Service's own code.

Zero errors and zero warnings: the subscription documents of every feed (static export) and every
`?before=` page of every feed (a running server), over the bundled content plus the real seed
post. The validator lives beside the project (../shared/tools/w3c-feedvalidator); without it these skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from lxml import etree
from serving import serve

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
VALIDATOR = SHARED / "tools" / "w3c-feedvalidator" / "w3c-validate"
ATOM = "{http://www.w3.org/2005/Atom}"

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(not VALIDATOR.exists(), reason=f"the W3C validator is not beside the project "
                                                                f"({VALIDATOR.relative_to(ROOT.parent)})")]


@pytest.fixture
def content(tmp_path: Path) -> Path:
    """The bundled content plus the real seed post, as a newsroom would have them."""
    folder = tmp_path / "content"
    shutil.copytree(ROOT / "content", folder)
    for seed in sorted((SHARED / "seeds").glob("*.txt")):
        shutil.copy(seed, folder / seed.name)
    return folder


def validate(*args: str) -> str:
    result = subprocess.run([str(VALIDATOR), *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    return result.stdout


def test_every_subscription_document_is_valid(content: Path, tmp_path: Path) -> None:
    out, base = tmp_path / "export", "https://feeds.example.org"
    subprocess.run([sys.executable, "-m", "feedsvc", "build", "--content", str(content), "--out", str(out),
                    "--base-url", base], check=True, capture_output=True, timeout=120)
    documents = list(out.rglob("*.atom")) + list(out.rglob("*.rss"))
    assert len(documents) > 20  # all posts, categories, tags and authors, in both formats
    summary = validate("--export", str(out), "--base-url", base).strip().splitlines()[-1]
    assert summary == f"w3c-validate: {len(documents)} feeds, 0 not clean", summary
    assert "0 errors, 0 warnings" in validate(str(out / "feeds.opml"), "--base", f"{base}/feeds.opml")


def every_page(url: str) -> list[str]:
    """The subscription document and each older page it leads to, by rel="next"."""
    pages = []
    while url and len(pages) < 50:
        pages.append(url)
        with urllib.request.urlopen(url, timeout=10) as response:
            root = etree.fromstring(response.read())
        url = next((link.get("href") for link in root.iter(f"{ATOM}link") if link.get("rel") == "next"), None)
    return pages


def test_every_archive_page_is_valid(content: Path, tmp_path: Path) -> None:
    with serve(content, tmp_path, FEEDSVC_MAX_ITEMS="2") as served:  # small pages: every feed has older ones
        with urllib.request.urlopen(f"{served.url}/feeds.opml", timeout=10) as response:
            opml = etree.fromstring(response.read())
        atom_feeds = [outline.get("xmlUrl") for outline in opml.iter("outline") if outline.get("xmlUrl")]
        urls = [page for feed in atom_feeds for fmt in ("atom", "rss")
                for page in every_page(feed.removesuffix(".atom") + f".{fmt}")]
        assert sum("?before=" in url for url in urls) >= 10, urls
        out = validate("-q", *urls).strip().splitlines()[-1]
        assert out == f"w3c-validate: {len(urls)} feeds, 0 not clean", out


def test_configured_feeds_in_every_content_policy_are_valid(content: Path, tmp_path: Path) -> None:
    """deploy/feedsvc.toml's feeds (a filter, summary and excerpt policies, a byte budget), `featured`,
    per-language feeds, the icon and logo, <ttl> and the browser stylesheet line."""
    out, base = tmp_path / "export", "https://feeds.example.org"
    subprocess.run([sys.executable, "-m", "feedsvc", "build", "--content", str(content), "--out", str(out),
                    "--base-url", base], check=True, capture_output=True, timeout=120,
                   env={**os.environ, "FEEDSVC_CONFIG": str(ROOT / "deploy" / "feedsvc.toml")})
    shapes = [out / "feeds" / name for name in ("harbour.atom", "digest.rss", "teasers.atom", "featured.rss",
                                                "lang/fr.atom")]
    assert all(shape.exists() for shape in shapes), sorted(p.name for p in (out / "feeds").iterdir())
    documents = list(out.rglob("*.atom")) + list(out.rglob("*.rss"))
    summary = validate("--export", str(out), "--base-url", base).strip().splitlines()[-1]
    assert summary == f"w3c-validate: {len(documents)} feeds, 0 not clean", summary
