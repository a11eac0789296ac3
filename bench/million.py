"""`feedsvc serve` on a million seed-format posts: cold start, restart, memory, pickup, validity.

    python bench/million.py                          # 1,000,000 posts in ./million-work (about 4 GB of disk)
    python bench/million.py --count 200000 --work /tmp/m
    python bench/million.py --validator PATH/w3c-validate   # also the W3C validator on a few served feeds

Not run in CI: the corpus alone takes minutes to write. Steps, each a whole process as a user runs it:

1. cold: `feedsvc serve` with an empty cache, from start until /healthz answers 200 (the first
   build is done: every feed servable);
2. every feed the OPML list names is fetched and parsed with feedparser (no bozo, entries present),
   and with --validator a few are put through the W3C validator;
3. pickup: a post added, edited, deleted in turn (--pickups times), each timed from the write
   until the served all-posts feed shows it (polled with If-None-Match, as an aggregator polls);
4. restart: once the service has written its cache (it does when the folder has been quiet for
   a while; the wait is printed), SIGTERM, then `feedsvc serve` again on the unchanged folder,
   until /healthz answers 200 (it serves the saved feeds: restart_s), and until it no longer says
   `warming` (the posts are read and the folder compared: restart_caught_up_s); the all-posts
   feed's ETag is compared with the first run's at both points.

Peak memory is the largest sum of the proportional set sizes of the server's processes
(server, worker, parse workers: shared pages counted once), sampled every 100 ms. Printed: each
figure beside its goal. Shared, noisy machine: one run's figures, medians where there are several.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import write_corpus  # noqa: E402
from load import free_port  # noqa: E402

GOALS = {"cold_s": 300.0, "restart_s": 20.0, "peak_mb": 2500.0, "pickup_p95_s": 1.0}


class Server:
    """One `feedsvc serve` in its own session, its memory sampled until it stops."""

    def __init__(self, content: Path, cache: Path, port: int) -> None:
        self.port = port  # the same for the restart: the base URL is part of what the cache was made with
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "FEEDSVC_CACHE_DIR": str(cache), "FEEDSVC_ACCESS_LOG": "false"}
        self.started = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "feedsvc", "serve", "--content", str(content),
                                         "--port", str(self.port), "--base-url", self.base], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def ready_after(self, timeout: float, *, caught_up: bool = False) -> float:
        """Seconds from start until /healthz answers 200 (and, with `caught_up`, no longer says warming)."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"feedsvc serve exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as response:
                    if response.status == 200 and not (caught_up and b'"warming"' in response.read()):
                        return time.perf_counter() - self.started
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"not servable within {timeout:.0f} s")

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=120)
        except ProcessLookupError:
            pass
        self._stop.set()
        self._sampler.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_mb = max(self.peak_mb, _session_pss_mb(self.process.pid))


def _session_pss_mb(session: int) -> float:
    """The proportional set size of every process in the session: pages a forked worker shares with
    its parent are counted once, not once per process as summed RSS would."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                if int(f.read().rpartition(b")")[2].split()[3]) != session:  # the session id (field 6)
                    continue
            with open(f"/proc/{entry.name}/smaps_rollup", "rb") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith(b"Pss:"))  # kB
        except (OSError, IndexError, ValueError, StopIteration):
            continue
    return total / 1024


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), b""


def check_feeds(base: str, validator: str | None) -> tuple[int, list[str]]:
    """Every feed in the OPML list parses cleanly with entries; the first few through the W3C validator."""
    import feedparser

    _, _, opml = fetch(base + "/feeds.opml")
    urls = [outline.get("xmlUrl", "") for outline in ET.fromstring(opml).iter("outline") if outline.get("xmlUrl")]
    failures = []
    for url in urls:
        local = base + url[url.index("/feeds/"):]
        status, _, body = fetch(local)
        parsed = feedparser.parse(body)
        if status != 200 or parsed.bozo or not parsed.entries:
            failures.append(f"{local}: status {status}, bozo {parsed.bozo}, {len(parsed.entries)} entries")
    if validator:
        for url in urls[:6]:
            local = base + url[url.index("/feeds/"):]
            result = subprocess.run([validator, local], capture_output=True, text=True, timeout=300)
            if result.returncode != 0:
                failures.append(f"{local}: W3C validator: {result.stdout[-500:]}")
    return len(urls), failures


def pickup(base: str, content: Path, runs: int) -> list[float]:
    """Seconds from a file change until the served all-posts feed shows it: add, edit, delete in turn."""
    feed = base + "/feeds/all.atom"
    etag = ""
    body = b""

    def shows(predicate) -> bool:  # type: ignore[no-untyped-def]
        nonlocal etag, body
        status, headers, got = fetch(feed, {"If-None-Match": etag} if etag else None)
        if status == 200:
            etag, body = headers.get("ETag", ""), got
        return bool(predicate(body))

    def timed(change, predicate) -> float:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        change()
        while not shows(predicate):
            if time.perf_counter() - started > 60:
                raise TimeoutError("a change did not show within 60 s")
            time.sleep(0.01)
        return time.perf_counter() - started

    folder = content / "million-bench"
    folder.mkdir(exist_ok=True)
    latencies = []
    for run in range(runs):
        marker = f"pickup-{run}-{time.time_ns()}"
        path = folder / f"{marker}.txt"
        text = (f"--- \ntitle: {marker}\ndate: {datetime.now(UTC):%Y-%m-%d-%H-%M-%S}\n"
                f"categories: [latest, news]\n--- \nA new post.\n")
        edited = text.replace(marker, marker + "-edited", 1)
        latencies.append(timed(functools.partial(path.write_text, text, "utf-8"),
                               lambda b, m=marker: m.encode() in b))
        latencies.append(timed(functools.partial(path.write_text, edited, "utf-8"),
                               lambda b, m=marker: (m + "-edited").encode() in b))
        latencies.append(timed(path.unlink, lambda b, m=marker: m.encode() not in b))
        time.sleep(0.3)  # an editor's changes are apart
    folder.rmdir()
    return latencies


def cache_written(cache: Path, *, since: float, timeout: float) -> float:
    """Seconds until the service has written its cache after the last change (it does so once
    the folder has been quiet a while), so the restart measures a restart with a cache."""
    started = time.time()
    while time.time() - started < timeout:
        if any(path.stat().st_mtime > since for path in cache.glob("state-*.pickle")):
            return time.time() - started
        time.sleep(0.5)
    raise TimeoutError("the cache was not written")


def all_posts_etag(base: str) -> str | None:
    with urllib.request.urlopen(base + "/feeds/all.atom", timeout=30) as response:
        return response.headers.get("ETag")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("million-work"))
    parser.add_argument("--pickups", type=int, default=7, help="add/edit/delete rounds (3 timings each)")
    parser.add_argument("--validator", help="the W3C validator's command, run on the first feeds")
    args = parser.parse_args(argv)

    content, cache = args.work / f"corpus-{args.count}", args.work / f"cache-{args.count}"
    marker = content / ".complete"
    if not (marker.exists() and marker.read_text() == str(args.count)):
        started = time.perf_counter()
        write_corpus(content, args.count)
        marker.write_text(str(args.count))
        print(f"corpus: {args.count} posts written in {time.perf_counter() - started:.0f} s", flush=True)
    for stale in cache.glob("*") if cache.exists() else ():
        stale.unlink()
    cache.mkdir(parents=True, exist_ok=True)

    figures: dict[str, float] = {}
    port = free_port()
    server = Server(content, cache, port)
    try:
        figures["cold_s"] = server.ready_after(timeout=1800)
        print(f"cold: servable after {figures['cold_s']:.1f} s", flush=True)
        feeds, failures = check_feeds(server.base, args.validator)
        print(f"feeds: {feeds} checked, {len(failures)} failing", *failures, sep="\n  ", flush=True)
        latencies = pickup(server.base, content, args.pickups)
        figures["pickup_p50_s"], figures["pickup_p95_s"] = statistics.median(latencies), p95(latencies)
        figures["cache_written_s"] = cache_written(cache, since=time.time(), timeout=900)
        etag = all_posts_etag(server.base)
    finally:
        server.stop()
    figures["cold_peak_mb"] = server.peak_mb
    restart = Server(content, cache, port)
    try:
        figures["restart_s"] = restart.ready_after(timeout=600)
        served_first = all_posts_etag(restart.base)
        figures["restart_caught_up_s"] = restart.ready_after(timeout=600, caught_up=True)
        print(f"restart: serving after {figures['restart_s']:.1f} s, caught up after "
              f"{figures['restart_caught_up_s']:.1f} s; all-posts ETag the same as before the restart: "
              f"{served_first == etag} at first, {all_posts_etag(restart.base) == etag} once caught up", flush=True)
    finally:
        restart.stop()
    figures["restart_peak_mb"] = restart.peak_mb
    figures["peak_mb"] = max(server.peak_mb, restart.peak_mb)

    print(f"\n{args.count} posts, {os.cpu_count()} cores")
    print(f"{'figure':<16}{'measured':>12}{'goal':>10}")
    for name, value in figures.items():
        goal = GOALS.get(name)
        verdict = "" if goal is None else ("  ok" if value <= goal else "  over")
        print(f"{name:<16}{value:>12.2f}{'' if goal is None else f'{goal:>10.0f}'}{verdict}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
