"""Every figure of the performance targets, for 1,000, 10,000 and 100,000 posts, in one run.

    python bench/scale.py            # 1k, 10k, 100k (a few minutes; 100k needs ~1 GB of disk)
    python bench/scale.py --quick    # 1k only, seconds; the test suite runs this
    python bench/scale.py --sizes 10000

For each size: cold build (start to every feed servable), restart with unchanged content (with
the cache), one post added/edited/deleted -> visible in the feed served by `feedsvc serve`
(p50/p95), peak RSS, and HTTP rates from wrk (32 connections) on the all-posts feed: 304,
gzip 200, identity 200. A parse-everything baseline (python-frontmatter + feedgen over the
whole folder, every time) runs in the same run; our figures are also shown as ratios to it.
Shared, noisy machine: compare figures of one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import write_corpus  # noqa: E402
from load import free_port, parse_wrk, wait_for  # noqa: E402

BUILD = """
import json, resource, sys, time
from pathlib import Path
from feedsvc.config import load_settings
from feedsvc.publisher import Publisher
started = time.perf_counter()
settings = load_settings(env={}, content_dir=Path(sys.argv[1]), cache_dir=sys.argv[2])
publisher = Publisher(settings)
snapshot = publisher.rebuild()
seconds = time.perf_counter() - started
if sys.argv[3] == "persist":
    publisher.persist()
print(json.dumps({"seconds": seconds, "posts": snapshot.post_count, "feeds": len(snapshot.feeds),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BASELINE = """
import json, resource, sys, time
from collections import defaultdict
from pathlib import Path
import cmarkgfm, frontmatter
from feedgen.feed import FeedGenerator
started = time.perf_counter()
posts = []
for path in sorted(Path(sys.argv[1]).rglob("*.txt")):
    post = frontmatter.load(path)
    posts.append((str(post["date"]), post["title"], post.get("categories", []), path.stem, post.content))
posts.sort(reverse=True)
groups = defaultdict(list)
for post in posts:
    groups["all"].append(post)
    for category in post[2]:
        groups[category].append(post)
for name, members in groups.items():
    for kind in ("atom", "rss"):
        fg = FeedGenerator()
        fg.id(f"https://example.org/{name}"); fg.title(name); fg.link(href="https://example.org/")
        fg.description(name); fg.author({"name": "x"})
        for date, title, _, slug, body in members[:50]:
            entry = fg.add_entry()
            entry.id(f"https://example.org/{slug}"); entry.title(title); entry.link(href=f"https://example.org/{slug}")
            entry.content(cmarkgfm.github_flavored_markdown_to_html(body), type="html")
            entry.published(datetime.strptime(date, "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC))
        fg.atom_str() if kind == "atom" else fg.rss_str()
print(json.dumps({"seconds": time.perf_counter() - started,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""".replace("import cmarkgfm", "from datetime import UTC, datetime\nimport cmarkgfm")


def run_json(code: str, *args: str) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def get(url: str, headers: dict[str, str] | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
        return bytes(response.read())


def shows(url: str, predicate) -> bool:  # type: ignore[no-untyped-def]
    """Poll as an aggregator does, with If-None-Match, so polling does not load the server much."""
    request = urllib.request.Request(url, headers={"If-None-Match": _etags.get(url, '"none"')})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            _etags[url] = response.headers["ETag"]
            _bodies[url] = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code != 304:
            raise
    return bool(predicate(_bodies.get(url, b"")))


_etags: dict[str, str] = {}
_bodies: dict[str, bytes] = {}


def pickup(base: str, content: Path, runs: int) -> list[float]:
    """Seconds from a file change to the served all-posts feed showing it: add, edit, delete in turn."""
    latencies = []
    feed = base + "/feeds/all.atom"
    for run in range(runs):
        marker = f"pickup-{run}-{time.time_ns()}"
        path = content / "bench" / f"{marker}.md"
        path.parent.mkdir(exist_ok=True)
        text = f"---\ntitle: {marker}\ndate: {datetime.now(UTC).isoformat()}\ncategories: [latest]\n---\nBody.\n"
        started = time.perf_counter()
        path.write_text(text, "utf-8")
        wait(lambda m=marker, feed=feed: shows(feed, lambda body: m.encode() in body))
        latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        path.write_text(text.replace(marker, marker + "-edited", 1), "utf-8")
        wait(lambda m=marker, feed=feed: shows(feed, lambda body: (m + "-edited").encode() in body))
        latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        path.unlink()
        wait(lambda m=marker, feed=feed: shows(feed, lambda body: m.encode() not in body))
        latencies.append(time.perf_counter() - started)
        time.sleep(0.3)  # separate changes, as an editor's are
    return latencies


def wait(probe, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError("the change never showed")
        time.sleep(0.005)


def http_rates(base: str, seconds: int) -> dict[str, float]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return {}
    url = base + "/feeds/all.atom"
    identity = get(url)
    zipped = get(url, {"Accept-Encoding": "gzip"})
    rates = {"feed_kb": len(identity) / 1024, "gzip_kb": len(zipped) / 1024}
    with urllib.request.urlopen(url, timeout=10) as response:
        etag = response.headers["ETag"]
    for name, headers in (("304", ["-H", f"If-None-Match: {etag}"]),
                          ("gzip", ["-H", "Accept-Encoding: gzip"]), ("identity", [])):
        out = subprocess.run([wrk, "-t2", "-c32", f"-d{seconds}s", *headers, url],
                             capture_output=True, text=True, timeout=seconds + 60).stdout
        figures = parse_wrk(out)
        rates[name] = figures["requests_per_second"]
        rates[name + "_errors"] = figures["errors"]
    return rates


def serve(content: Path, cache: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "FEEDSVC_REBUILD_INTERVAL": "3600", "FEEDSVC_CACHE_DIR": str(cache),
           "XDG_RUNTIME_DIR": str(cache)}
    process = subprocess.Popen([sys.executable, "-m", "feedsvc", "serve", "--content", str(content),
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    wait_for(base + "/healthz", 600)
    return process, base


def measure(size: int, work: Path, *, runs: int, wrk_seconds: int, baseline: bool) -> dict[str, float]:
    content = work / f"corpus-{size}"
    if not content.exists():
        write_corpus(content, size)
    cache = work / f"cache-{size}"
    shutil.rmtree(cache, ignore_errors=True)
    cold = [run_json(BUILD, str(content), "off", "-") for _ in range(runs)]
    run_json(BUILD, str(content), str(cache), "persist")
    warm = [run_json(BUILD, str(content), str(cache), "-") for _ in range(runs)]
    figures: dict[str, float] = {
        "posts": size,
        "cold_s": statistics.median(r["seconds"] for r in cold),
        "restart_s": statistics.median(r["seconds"] for r in warm),
        "rss_mb": max(r["rss_mb"] for r in cold + warm),
    }
    process, base = serve(content, cache)
    try:
        latencies = sorted(pickup(base, content, max(3, runs * 3)))
        figures["pickup_p50_s"] = statistics.median(latencies)
        figures["pickup_p95_s"] = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
        figures.update(http_rates(base, wrk_seconds))
    finally:
        process.terminate()
        process.wait(timeout=30)
    if baseline:
        base_runs = [run_json(BASELINE, str(content)) for _ in range(1 if size >= 100_000 else runs)]
        figures["baseline_s"] = statistics.median(r["seconds"] for r in base_runs)
        figures["baseline_rss_mb"] = max(r["rss_mb"] for r in base_runs)
    return figures


def table(results: list[dict[str, float]]) -> str:
    rows = [("posts", "posts", "{:,.0f}"), ("cold build, s", "cold_s", "{:.2f}"),
            ("baseline (parse everything), s", "baseline_s", "{:.2f}"),
            ("cold build / baseline", "ratio_cold", "{:.2f}x"), ("restart, unchanged, s", "restart_s", "{:.2f}"),
            ("one post -> served, p50 s", "pickup_p50_s", "{:.2f}"),
            ("one post -> served, p95 s", "pickup_p95_s", "{:.2f}"),
            ("peak RSS, MB", "rss_mb", "{:.0f}"), ("baseline peak RSS, MB", "baseline_rss_mb", "{:.0f}"),
            ("feed size identity / gzip, KB", "sizes", "{}"), ("304 req/s", "304", "{:,.0f}"),
            ("gzip 200 req/s", "gzip", "{:,.0f}"), ("identity 200 req/s", "identity", "{:,.0f}"),
            ("HTTP errors", "errors", "{:.0f}")]
    for r in results:
        if "baseline_s" in r:
            r["ratio_cold"] = r["cold_s"] / r["baseline_s"]
        if "feed_kb" in r:
            r["sizes"] = f"{r['feed_kb']:.0f} / {r['gzip_kb']:.0f}"  # type: ignore[assignment]
            r["errors"] = r["304_errors"] + r["gzip_errors"] + r["identity_errors"]
    lines = ["| figure | " + " | ".join(f"{r['posts']:,.0f} posts" for r in results) + " |",
             "|---|" + "---|" * len(results)]
    for label, key, fmt in rows[1:]:
        cells = [fmt.format(r[key]) if key in r else "—" for r in results]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 posts, one run each")
    parser.add_argument("--sizes", type=int, nargs="*", help="corpus sizes (default 1000 10000 100000)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--work", type=Path, help="keep corpora here between runs (default: a temp folder)")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([1000] if args.quick else [1000, 10_000, 100_000])
    with tempfile.TemporaryDirectory(prefix="feedsvc-scale-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = [measure(size, work, runs=1 if args.quick else 3, wrk_seconds=1 if args.quick else 5,
                           baseline=not args.no_baseline) for size in sizes]
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
