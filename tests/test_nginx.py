"""A `feedsvc build` export served by deploy/nginx.conf answers as `feedsvc serve` does.

The build's `.gz` files and mtimes are checked on their own; then a real nginx (Debian's package;
.ci/run installs it, the test skips without it) and a real `feedsvc serve` run over the same
content on 127.0.0.1, and every exported feed is fetched from both.
"""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import pytest
from conftest import WritePost
from serving import NGINX, http_get, run_nginx, serve

from feedsvc.cli import main

ROOT = Path(__file__).resolve().parents[1]
SERVER_CONF = ROOT / "deploy" / "nginx.conf"
BASE_URL = "https://feeds.example.org"
FEEDS = [f"feeds/{path}.{fmt}" for path in ("all", "category/news", "category/sport", "tag/harbour")
         for fmt in ("atom", "rss", "json")]



@pytest.fixture
def newsroom(write_post: WritePost) -> None:
    write_post("2025/ferry.md", title="Ferry returns to the harbour", date="2025-01-10-08-00-00",
               categories="[news]", tags="[harbour]")
    write_post("2025/match.md", title="Cup final in Zürich", date="2025-01-11T18:00:00Z",
               categories="[sport]", body="Über den Wolken, naïve café.")
    write_post("2025/storm.md", title="Storm warning", date="2025-01-12T06:30:00Z", updated="2025-01-13T09:15:00Z",
               categories="[news]", tags="[harbour]")


def render_server_conf(root: Path, port: int) -> str:
    """deploy/nginx.conf for this export and port: the three directives its header names, replaced."""
    lines = SERVER_CONF.read_text("utf-8").splitlines(keepends=True)
    for old, new in (("listen 80;", f"listen 127.0.0.1:{port};"), ("root /srv/feedsvc;", f"root {root};"),
                     ("include /srv/feedsvc/nginx-redirects.conf;", f"include {root}/nginx-redirects.conf;")):
        found = [i for i, line in enumerate(lines) if line.partition("#")[0].strip() == old]
        assert len(found) == 1, f"deploy/nginx.conf should have the directive {old!r} exactly once"
        lines[found[0]] = lines[found[0]].replace(old, new)
    return "".join(lines)


@contextmanager
def nginx(root: Path, workdir: Path) -> Iterator[str]:
    """nginx serving the export at `root` with deploy/nginx.conf."""
    with run_nginx(workdir, lambda port: render_server_conf(root, port)) as url:
        yield url


@pytest.fixture
def export(newsroom: None, content_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "export"
    code = main(["build", "--content", str(content_dir), "--out", str(out), "--base-url", BASE_URL])
    assert code == 0, capsys.readouterr().err
    return out


def test_build_writes_gzip_variants_dated_with_the_feed(export: Path, content_dir: Path) -> None:
    files = sorted(p.relative_to(export).as_posix() for p in export.rglob("*") if p.is_file())
    assert files == sorted([*(name + gz for name in [*FEEDS, "feeds.opml"] for gz in ("", ".gz")),
                            "nginx-redirects.conf"])
    for name in [*FEEDS, "feeds.opml"]:
        document, compressed = export / name, export / f"{name}.gz"
        assert gzip.decompress(compressed.read_bytes()) == document.read_bytes(), name
        assert compressed.stat().st_mtime == document.stat().st_mtime, name
    # When the all-posts feed last changed: its newest file (written after every post's own `updated`).
    newest = max(max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) // 10**9 for p in content_dir.rglob("*.md"))
    assert (export / "feeds/all.atom").stat().st_mtime == newest


def test_rebuild_removes_stale_gzip_variants_and_redates_only_what_changed(export: Path, content_dir: Path) -> None:
    def build() -> dict[str, int]:
        assert main(["build", "--content", str(content_dir), "--out", str(export), "--base-url", BASE_URL]) == 0
        return {p.relative_to(export).as_posix(): p.stat().st_mtime_ns for p in export.rglob("*") if p.is_file()}

    first = {p.relative_to(export).as_posix(): p.stat().st_mtime_ns for p in export.rglob("*") if p.is_file()}
    time.sleep(0.01)
    assert build() == first  # nothing changed: no validator changes either

    (content_dir / "2025/match.md").unlink()
    (export / "feeds/tag/orphan.atom.gz").write_bytes(gzip.compress(b"<feed/>"))  # no document beside it
    time.sleep(0.01)
    after = build()
    assert set(after) == set(first)  # the sport feed stays for its subscribers, empty; the orphan goes
    for fmt in ("atom", "rss", "json"):
        sport = f"feeds/category/sport.{fmt}"
        assert after[sport] > first[sport] and after[f"{sport}.gz"] == after[sport]
        assert b"Cup final" not in (export / sport).read_bytes()
    assert after["feeds.opml"] > first["feeds.opml"]  # the list lost its sport feed
    assert after["feeds.opml"] == after["feeds.opml.gz"]
    assert after["feeds/category/news.atom"] == first["feeds/category/news.atom"]


@pytest.mark.system
@pytest.mark.skipif(not NGINX, reason="nginx is not installed (.ci/run installs Debian's nginx)")
def test_nginx_serves_the_export_as_feedsvc_serves_the_content(
        export: Path, content_dir: Path, tmp_path: Path) -> None:
    with serve(content_dir, tmp_path, base_url=BASE_URL) as served, nginx(export, tmp_path / "nginx") as static:
        for name in [*FEEDS, "feeds.opml"]:
            is_feed = name != "feeds.opml"
            status, ours, expected = http_get(f"{served.url}/{name}")
            assert status == 200, name
            status, headers, body = http_get(f"{static}/{name}")
            assert status == 200, name
            assert body == expected, f"{name}: nginx sends other bytes than feedsvc serve"
            assert "Content-Encoding" not in headers, name
            for header in ("Content-Type", "Cache-Control", "X-Content-Type-Options",
                           *(("Last-Modified",) if is_feed else ())):
                assert headers[header] == ours[header], (name, header)
            assert headers["Content-Type"].endswith("; charset=utf-8"), name
            assert "Accept-Encoding" in headers["Vary"], name
            etag, modified = headers["ETag"], headers["Last-Modified"]

            status, zipped, compressed = http_get(f"{static}/{name}", {"Accept-Encoding": "gzip"})
            assert status == 200 and zipped["Content-Encoding"] == "gzip", name
            assert gzip.decompress(compressed) == expected, name
            if is_feed:  # feedsvc serves the OPML list uncompressed
                ours_zipped = http_get(f"{served.url}/{name}", {"Accept-Encoding": "gzip"})[2]
                assert compressed == ours_zipped, f"{name}: other gzip bytes than feedsvc serve"
            assert zipped["Content-Type"] == headers["Content-Type"], name
            assert zipped["Cache-Control"] == headers["Cache-Control"], name
            assert zipped["Last-Modified"] == modified, name
            assert "Accept-Encoding" in zipped["Vary"], name
            assert zipped["ETag"] != etag, f"{name}: one ETag for two encodings"

            for conditional in ({"If-None-Match": etag}, {"If-Modified-Since": modified},
                                {"If-None-Match": zipped["ETag"], "Accept-Encoding": "gzip"}):
                status, not_modified, body = http_get(f"{static}/{name}", conditional)
                assert (status, body) == (304, b""), (name, conditional)
                assert not_modified["Cache-Control"] == headers["Cache-Control"], (name, conditional)
            earlier = format_datetime(parsedate_to_datetime(modified) - timedelta(seconds=1), usegmt=True)
            assert http_get(f"{static}/{name}", {"If-Modified-Since": earlier})[0] == 200, name
            assert http_get(f"{static}/{name}", {"If-None-Match": '"other"'})[0] == 200, name

        for missing in ("/", "/feeds/", "/feeds/category/news", "/feeds/no-such.atom", "/feeds/all.atom.gz",
                        "/feeds/all.xml", "/healthz", "/feeds/all.atom?before=x"):
            status, headers, _ = http_get(f"{static}{missing}")
            assert status == 404, missing
            assert headers["X-Content-Type-Options"] == "nosniff", missing
        for temp in export.rglob(".*"):
            pytest.fail(f"the build left {temp}")


@pytest.mark.parametrize("change", ["delete the newest file", "restore an older copy"])
def test_export_without_its_cache_still_dates_changed_files_later(
        export: Path, content_dir: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """A build that does not know the last one's stamps (cache off or lost) still moves every changed file's
    mtime forward, so nginx's Last-Modified and "mtime-size" ETag both change with the bytes."""
    monkeypatch.setenv("FEEDSVC_CACHE_DIR", "off")
    before = {name: ((export / name).stat().st_mtime, (export / name).read_bytes()) for name in FEEDS}
    newest = max(content_dir.rglob("*.md"), key=lambda p: max(p.stat().st_mtime, p.stat().st_ctime))
    if change == "delete the newest file":
        newest.unlink()  # what is left is older than the files already written
    else:
        newest.write_text(newest.read_text("utf-8").replace("title: ", "title: Restored "), "utf-8")
        old = newest.stat().st_mtime - 86400 * 365
        os.utime(newest, (old, old))  # cp -p of last year's copy: only the ctime is new
    assert main(["build", "--content", str(content_dir), "--out", str(export), "--base-url", BASE_URL]) == 0
    changed = [name for name in FEEDS if (export / name).exists() and (export / name).read_bytes() != before[name][1]]
    assert "feeds/all.atom" in changed
    for name in changed:
        assert (export / name).stat().st_mtime > before[name][0], name
