"""Cold build time and write-to-served latency, the two figures editors and operators feel.

    python bench/freshness.py            # 10,000 posts (about a minute with corpus generation)
    python bench/freshness.py --quick    # 1,000 posts, a few seconds; the test suite runs this

Prints medians of several runs. Timings on a shared machine are noisy: compare figures
from one run, not across machines.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import write_corpus

from feedsvc.config import load_settings
from feedsvc.publisher import Publisher


def cold_build(content: Path, runs: int) -> tuple[list[float], int, int]:
    """Seconds for a fresh Publisher to scan, parse, render every feed (start to servable)."""
    settings = load_settings(env={}, content_dir=content)
    times, posts, feeds = [], 0, 0
    for _ in range(runs):
        started = time.perf_counter()
        snapshot = Publisher(settings).rebuild()
        times.append(time.perf_counter() - started)
        posts, feeds = snapshot.post_count, len(snapshot.feeds)
    return times, posts, feeds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


def pickup(content: Path, runs: int) -> list[float]:
    """Seconds from writing a new post to seeing it in the feed served by `feedsvc serve`."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "feedsvc", "serve", "--content", str(content), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "FEEDSVC_REBUILD_INTERVAL": "3600", "FEEDSVC_DEBOUNCE": "0.1"},
    )
    try:
        _wait(lambda: _get(base + "/healthz"), 120)
        latencies = []
        for run in range(runs):
            marker = f"bench-pickup-{run}-{time.time_ns()}"
            text = (f"---\ntitle: {marker}\ndate: {datetime.now(UTC).isoformat()}\n"
                    f"categories: [latest]\n---\nNew post body.\n")
            path = content / f"{marker}.md"
            started = time.perf_counter()
            path.write_text(text, "utf-8")
            _wait(lambda m=marker: m.encode() in _get(base + "/feeds/all.atom") or None, 30)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.3)  # let the next write be a separate change, as an editor's would be
        return latencies
    finally:
        server.terminate()
        server.wait(timeout=20)


def _wait(probe, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise TimeoutError("gave up waiting")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 posts and fewer runs")
    parser.add_argument("--posts", type=int, help="corpus size (default 10,000; 1,000 with --quick)")
    args = parser.parse_args(argv)
    count = args.posts or (1_000 if args.quick else 10_000)
    runs = 3 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="feedsvc-bench-") as tmp:
        content = Path(tmp) / "content"
        started = time.perf_counter()
        write_corpus(content, count)
        print(f"corpus: {count} posts written in {time.perf_counter() - started:.1f}s")
        times, posts, feeds = cold_build(content, runs)
        print(f"cold build, {posts} posts -> {feeds} feeds: median {statistics.median(times):.3f}s "
              f"(min {min(times):.3f}s, {runs} runs)")
        latencies = pickup(content, runs)
        print(f"new post -> served feed: median {statistics.median(latencies):.3f}s "
              f"(max {max(latencies):.3f}s, {runs} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
