"""Hostile paging flood against a real `feedsvc serve`: the server's memory over time, normal clients' latency.

    python bench/flood.py                        # 20,000 posts, 120 s
    python bench/flood.py --seconds 60
    python bench/flood.py --content DIR          # use the posts in DIR (written there first if DIR is empty)

A corpus of 20,000 posts (bench/corpus.py) is served by `feedsvc serve` on 127.0.0.1 (a free port,
FEEDSVC_CACHE_DIR=off, access log off unless --access-log). Once /healthz answers 200, for --seconds:

  * 3 hostile clients each ask, in a loop, for `/feeds/all.<atom|rss|json>?limit=500&before=<cursor>`
    with a random well-formed cursor (`20250110T080000Z-some-slug`): random times in the corpus's date
    range with random slugs, and cursors of real posts. Every such page is rendered on request.
  * 2 normal clients fetch `/feeds/all.atom`, `/feeds/category/<x>.rss` and `/healthz` at a steady
    rate (20 requests/s between them) and time each request (send to last byte).

The server's RSS (its process and its children: granian's worker) is sampled every second.
Printed: RSS at start, max, end and growth; the normal requests' count, median, p95, p99; the hostile
requests' count and statuses; PASS/FAIL against the goals (RSS growth < 50 MB, normal p99 < 50 ms).
It is a measurement, not a test: the exit code is 0 whatever the figures. Only the standard library
(and psutil, if installed) is used, plus feedsvc itself to read a sample of the posts for cursors.
Client threads use http.client keep-alive connections. Shared, noisy machine: compare figures of
one run, or of runs made back to back.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import math
import os
import random
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import write_corpus  # noqa: E402

GOAL_RSS_GROWTH_MB = 50.0
GOAL_NORMAL_P99_MS = 50.0
FORMATS = ("atom", "rss", "json")
_SLUG_CHARS = string.ascii_lowercase + string.digits


# --- the server --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float) -> float:
    """Seconds until `url` answers 200 (it is 503 while the first build runs)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found


def _vmrss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> dict[int, int]:
    """pid -> RSS in bytes, for `pid` and all its descendants."""
    try:
        import psutil  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            rss = {}
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    rss[proc.pid] = proc.memory_info().rss
            return rss
        except psutil.Error:
            return {}
    rss, todo = {}, [pid]
    while todo:
        current = todo.pop()
        rss[current] = _vmrss_kb(current) * 1024
        todo += _children(current)
    return rss


@dataclass
class Sampler:
    """Samples the server tree's RSS every `interval` seconds on its own thread."""

    pid: int
    interval: float = 1.0
    samples: list[tuple[float, int, dict[int, int]]] = field(default_factory=list)  # (t, total, per pid)
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> int:
        rss = tree_rss(self.pid)
        total = sum(rss.values())
        self.samples.append((time.monotonic(), total, rss))
        return total

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="rss-sampler", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


# --- what to ask for ---------------------------------------------------------------------------

@dataclass
class CorpusFacts:
    cursors: list[str]  # of real posts
    oldest: datetime
    newest: datetime
    categories: list[str]  # category slugs, most used first


def corpus_facts(content: Path, sample: int, rng: random.Random) -> CorpusFacts:
    """Real cursors, the date range and categories, from a random sample of the post files."""
    try:
        from feedsvc.config import load_settings
        from feedsvc.content import load_post
        from feedsvc.model import Post
        from feedsvc.paging import cursor
    except ImportError as exc:  # not run with feedsvc's environment: random cursors only
        print(f"note: cannot import feedsvc ({exc}); hostile cursors are all random", file=sys.stderr)
        return CorpusFacts([], datetime(2015, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), ["news"])
    settings = load_settings(env={}, content_dir=content, cache_dir="off")
    files = [p for p in content.rglob("*") if p.suffix in settings.extensions and p.is_file()]
    cursors, dates, used = [], [], Counter[str]()
    for path in rng.sample(files, min(sample, len(files))):
        post = load_post(path.relative_to(content).as_posix(), path.read_bytes(), settings)
        if isinstance(post, Post) and not post.draft:
            cursors.append(cursor(post))
            dates.append(post.date)
            used.update(term.slug for term in post.categories)
    if not dates:
        raise RuntimeError(f"no posts could be read in {content}")
    return CorpusFacts(cursors, min(dates), max(dates), [name for name, _ in used.most_common()])


def random_cursor(facts: CorpusFacts, rng: random.Random) -> str:
    """A well-formed cursor: a real post's (1 in 4), a real time with another slug, or random time and slug."""
    roll = rng.random()
    if facts.cursors and roll < 0.25:
        return rng.choice(facts.cursors)
    if facts.cursors and roll < 0.35:
        return rng.choice(facts.cursors).split("Z-", 1)[0] + "Z-" + _random_slug(rng)
    span = (facts.newest - facts.oldest).total_seconds() + 2 * 86400
    moment = facts.oldest - timedelta(days=1) + timedelta(seconds=rng.uniform(0, span))
    fraction = f".{rng.randrange(1, 1_000_000):06d}" if rng.random() < 0.1 else ""
    return f"{moment:%Y%m%dT%H%M%S}{fraction}Z-{_random_slug(rng)}"


def _random_slug(rng: random.Random) -> str:
    common = ("some", "slug", "post", "news", "x", "the", "a1", "2024")
    words = ["-".join(rng.choice(common) for _ in range(rng.randint(1, 3))),
             "".join(rng.choice(_SLUG_CHARS) for _ in range(rng.randint(1, 16)))]
    return "-".join(rng.sample(words, rng.randint(1, 2)))


# --- the clients -------------------------------------------------------------------------------

class Client:
    """One keep-alive connection; reconnects after an error or a `Connection: close`."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int | str, int]:
        """(status or error name, body bytes)."""
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.conn.request("GET", path, headers={"User-Agent": "feedsvc-flood"})
            response = self.conn.getresponse()
            body = response.read()
            if response.will_close:
                self.close()
            return response.status, len(body)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return type(exc).__name__, 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Tally:
    statuses: Counter[int | str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds
    bytes: int = 0
    late: int = 0  # normal clients: requests sent > 50 ms after their scheduled time
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int | str, seconds: float, size: int) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies.append(seconds)
            self.bytes += size


def hostile(port: int, facts: CorpusFacts, seed: int, limit: int, stop: threading.Event, tally: Tally) -> None:
    rng = random.Random(seed)
    client = Client(port, timeout=120)
    n = 0
    while not stop.is_set():
        path = f"/feeds/all.{FORMATS[n % 3]}?limit={limit}&before={random_cursor(facts, rng)}"
        started = time.perf_counter()
        status, size = client.get(path)
        tally.add(status, time.perf_counter() - started, size)
        n += 1
        if isinstance(status, str):
            stop.wait(0.1)  # an error: do not spin
    client.close()


def normal(port: int, paths: list[str], rate: float, offset: int, stop: threading.Event, tally: Tally) -> None:
    """Requests at fixed times (every 1/rate s); a late one goes at once, without a catch-up burst."""
    client = Client(port, timeout=30)
    interval = 1.0 / rate
    due = time.perf_counter()
    n = offset
    while not stop.is_set():
        now = time.perf_counter()
        if due > now:
            if stop.wait(due - now):
                break
        elif now - due > 0.05:
            with tally.lock:
                tally.late += 1
        started = time.perf_counter()
        status, size = client.get(paths[n % len(paths)])
        tally.add(status, time.perf_counter() - started, size)
        n += 1
        due = max(due + interval, time.perf_counter() - interval)
    client.close()


# --- figures -----------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


def statuses(counter: Counter[int | str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=lambda kv: str(kv[0]))) or "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120, help="duration of the flood (default 120)")
    parser.add_argument("--posts", type=int, default=20_000, help="posts in the corpus it writes (default 20,000)")
    parser.add_argument("--content", type=Path, help="corpus folder to use (written there first if empty or missing)")
    parser.add_argument("--hostile", type=int, default=3, help="hostile clients (default 3)")
    parser.add_argument("--normal", type=int, default=2, help="normal clients (default 2)")
    parser.add_argument("--rate", type=float, default=20, help="normal requests per second, all clients (default 20)")
    parser.add_argument("--limit", type=int, default=500, help="?limit= of hostile requests (default 500)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the clients' random choices (default 1)")
    parser.add_argument("--access-log", action="store_true", help="leave the server's access log on")
    parser.add_argument("--keep-log", type=Path, help="copy the server's output to this file")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.hostile < 0 or args.normal < 0 or args.rate <= 0 or args.posts < 1:
        parser.error("--seconds, --rate and --posts must be positive; --hostile and --normal not negative")

    with tempfile.TemporaryDirectory(prefix="feedsvc-flood-") as tmp:
        content = args.content or Path(tmp) / "content"
        if not content.is_dir() or not any(content.iterdir()):
            started = time.perf_counter()
            write_corpus(content, args.posts)
            print(f"wrote {args.posts} posts to {content} in {time.perf_counter() - started:.1f} s", flush=True)
        rng = random.Random(args.seed)
        facts = corpus_facts(content, 2000, rng)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "FEEDSVC_CACHE_DIR": "off", "XDG_RUNTIME_DIR": tmp,
               "FEEDSVC_ACCESS_LOG": "true" if args.access_log else "false"}
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "feedsvc", "serve", "--content", str(content), "--host", "127.0.0.1",
                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            return run(args, server, base, port, facts)
        except (RuntimeError, TimeoutError) as exc:
            print(f"flood: {exc}", file=sys.stderr)
            print("FAIL: no measurement (the server did not come up)")
            return 0
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            output = log_path.read_text("utf-8", "replace")
            if args.keep_log:
                shutil.copyfile(log_path, args.keep_log)
            if server.returncode not in (0, -15) or "Traceback" in output:
                tail = "\n".join(output.splitlines()[-30:])
                print(f"server exit code {server.returncode}; last lines of its output:\n{tail}", file=sys.stderr)


def run(args: argparse.Namespace, server: subprocess.Popen[bytes], base: str, port: int, facts: CorpusFacts) -> int:
    ready = wait_healthy(base + "/healthz", server, timeout=600)
    paths = ["/feeds/all.atom", *[f"/feeds/category/{c}.rss" for c in facts.categories[:6]], "/healthz"]
    for path in list(paths):  # only what exists: a taken corpus may have other categories
        status, _ = Client(port, 30).get(path)
        if status != 200:
            paths.remove(path)
    time.sleep(1.0)  # let the first build's garbage settle before the baseline
    sampler = Sampler(server.pid)
    start_rss = sampler.sample()
    start_pids = sorted(sampler.samples[-1][2])
    print(f"server ready in {ready:.1f} s (pid {server.pid}, {len(start_pids)} processes), posts dated "
          f"{facts.oldest:%Y-%m-%d} .. {facts.newest:%Y-%m-%d}; {len(facts.cursors)} real cursors sampled", flush=True)
    print(f"flood: {args.seconds:g} s, {args.hostile} hostile clients (/feeds/all.{{atom,rss,json}}?limit="
          f"{args.limit}&before=<random cursor>), {args.normal} normal clients at {args.rate:g} req/s in all over "
          f"{len(paths)} paths", flush=True)

    stop = threading.Event()
    hostile_tally, normal_tally = Tally(), Tally()
    threads = [threading.Thread(target=hostile, name=f"hostile-{i}", daemon=True,
                                args=(port, facts, args.seed * 100 + i, args.limit, stop, hostile_tally))
               for i in range(args.hostile)]
    threads += [threading.Thread(target=normal, args=(port, paths, args.rate / args.normal, i, stop, normal_tally),
                                 name=f"normal-{i}", daemon=True) for i in range(args.normal)]
    sampler_thread = sampler.start()
    began = time.monotonic()
    for thread in threads:
        thread.start()
    last_report = began
    while (elapsed := time.monotonic() - began) < args.seconds:
        time.sleep(min(1.0, args.seconds - elapsed))
        if server.poll() is not None:
            print(f"the server exited with code {server.returncode} during the flood", file=sys.stderr)
            break
        if time.monotonic() - last_report >= 15 and sampler.samples:
            last_report = time.monotonic()
            with hostile_tally.lock, normal_tally.lock:
                counts = (len(hostile_tally.latencies), len(normal_tally.latencies))
            print(f"  t={time.monotonic() - began:5.0f} s  RSS {mb(sampler.samples[-1][1])}  "
                  f"hostile {counts[0]}  normal {counts[1]}", flush=True)
    stop.set()
    ran = time.monotonic() - began
    deadline = time.monotonic() + 120  # a hostile request in flight may take a while to finish
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stragglers = sum(thread.is_alive() for thread in threads)
    time.sleep(1.0)
    sampler.stop()
    sampler_thread.join(timeout=5)
    end_rss = sampler.sample() if server.poll() is None else sampler.samples[-1][1]
    during = [total for t, total, _ in sampler.samples]
    max_rss = max(during)
    growth = end_rss - start_rss

    by_pid = sampler.samples[-1][2]
    print()
    print(f"RSS of the server (process + children, {len(sampler.samples)} samples, "
          f"{'psutil' if _has_psutil() else '/proc VmRSS'}):")
    print(f"  start {mb(start_rss)}   max {mb(max_rss)}   end {mb(end_rss)}   growth {growth / 2**20:+.1f} MB"
          f"   (max - start {(max_rss - start_rss) / 2**20:+.1f} MB)")
    print("  per process at end: " + ", ".join(f"pid {pid} {mb(rss)}" for pid, rss in sorted(by_pid.items())))
    step = max(1, len(sampler.samples) // 12)
    print("  over time: " + "  ".join(f"{max(0.0, t - began):.0f}s={total / 2**20:.0f}"
                                      for t, total, _ in sampler.samples[::step] if t >= began - 2) + " (MB)")
    lat = [s * 1000 for s in normal_tally.latencies]
    p50, p95, p99 = (percentile(lat, q) for q in (0.50, 0.95, 0.99))
    print(f"normal clients: {len(lat)} requests in {ran:.0f} s ({len(lat) / ran:.1f}/s), "
          f"median {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, max {max(lat, default=0):.1f} ms; "
          f"statuses {statuses(normal_tally.statuses)}; sent >50 ms late: {normal_tally.late}")
    hlat = hostile_tally.latencies
    print(f"hostile clients: {len(hlat)} requests ({len(hlat) / ran:.1f}/s), statuses "
          f"{statuses(hostile_tally.statuses)}; median {percentile(hlat, 0.5) * 1000:.0f} ms, "
          f"max {max(hlat, default=0) * 1000:.0f} ms, {mb(hostile_tally.bytes)} received"
          + (f"; {stragglers} still running at the end" if stragglers else ""))
    normal_ok = normal_tally.statuses.get(200, 0) == len(lat) and lat
    print(f"{'PASS' if growth < GOAL_RSS_GROWTH_MB * 2**20 else 'FAIL'}: RSS growth {growth / 2**20:+.1f} MB "
          f"(goal < {GOAL_RSS_GROWTH_MB:g} MB)")
    print(f"{'PASS' if p99 < GOAL_NORMAL_P99_MS and normal_ok else 'FAIL'}: normal p99 {p99:.1f} ms "
          f"(goal < {GOAL_NORMAL_P99_MS:g} ms{'' if normal_ok else '; and some normal requests were not 200'})")
    return 0


def _has_psutil() -> bool:
    try:
        import psutil  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
