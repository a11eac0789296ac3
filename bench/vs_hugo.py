"""Cold `feedsvc build` against Hugo's feeds-only build, as whole processes, side by side in one run.

    python bench/vs_hugo.py                      # 10,000 posts, 5 runs each
    python bench/vs_hugo.py --count 100000 --work /tmp/vs-hugo --runs 3
    python bench/vs_hugo.py --hugo-rss-limit -1  # Hugo's own default: every post in every feed
    python bench/vs_hugo.py --before-src /tmp/old/src  # also another feedsvc tree, e.g. before a change

One-time setup, outside the timing: a corpus in the seed format (bench/corpus.py), and a Hugo
copy of it. The copy differs from the corpus in two ways only, because Hugo cannot read the
seed format: the seed's `date: 2020-09-06-22-23-29` becomes `date: 2020-09-06T22:23:29Z` (Hugo
refuses the dashed form), and `.txt` files become `.md` (Hugo reads no `.txt` content). The Hugo
site builds only RSS feeds, for the home page (all posts) and for each category, with the pages
themselves never rendered (`_build.render = "link"`); `rssLimit` is feedsvc's `max_items` (50)
unless `--hugo-rss-limit` says otherwise.

Then, alternately (who goes first swaps each run), with fresh output folders:
`feedsvc build --content C --out O` cold (FEEDSVC_CACHE_DIR=off, no other FEEDSVC_ setting)
and `hugo --quiet -s SITE -d OUT`. Each is timed as a whole process, start to exit; peak RSS is
the largest single process of its tree (wait4's ru_maxrss), CPU is user + system of the tree.
It prints medians and the ratio; it asserts nothing. Shared, noisy machine: compare figures of
one run, not across runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import write_corpus  # noqa: E402

_SEED_DATE = re.compile(rb"^date:[ \t]*(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})[ \t]*$", re.MULTILINE)
HUGO_CONFIG = """\
baseURL = "http://127.0.0.1:8000/"
title = "bench"
# Feeds only: the home page's RSS (every post) and each category's; no pages, sections, sitemap.
disableKinds = ["section", "taxonomy", "sitemap", "robotsTXT", "404"]
ignoreErrors = ["error-disable-taxonomy"]
rssLimit = {rss_limit}
[taxonomies]
category = "categories"
[outputs]
home = ["RSS"]
term = ["RSS"]
page = []
[[cascade]]
[cascade._build]
render = "link"
list = "always"
[cascade._target]
kind = "page"
"""


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    cpu_seconds: float
    rss_mb: float


def make_corpus(folder: Path, count: int) -> None:
    marker = folder / ".complete"
    if marker.exists() and marker.read_text() == str(count):
        return
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    write_corpus(folder, count)
    marker.write_text(str(count))
    print(f"setup: wrote {count:,} posts to {folder} in {time.perf_counter() - started:.1f}s", flush=True)


def make_hugo_site(corpus: Path, site: Path, count: int, rss_limit: int) -> None:
    """Hugo's copy of the corpus: seed dates as ISO 8601, `.txt` as `.md`; nothing else changes."""
    (site / "config.toml").parent.mkdir(parents=True, exist_ok=True)
    (site / "config.toml").write_text(HUGO_CONFIG.format(rss_limit=rss_limit))
    marker = site / ".complete"
    if marker.exists() and marker.read_text() == str(count):
        return
    posts = site / "content" / "posts"
    shutil.rmtree(posts, ignore_errors=True)
    started = time.perf_counter()
    for path in sorted(corpus.rglob("*.txt")):
        data = _SEED_DATE.sub(rb"date: \1-\2-\3T\4:\5:\6Z", path.read_bytes(), count=1)
        target = posts / path.relative_to(corpus).with_suffix(".md")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    marker.write_text(str(count))
    print(f"setup: Hugo copy (dates converted) in {site} in {time.perf_counter() - started:.1f}s", flush=True)


def feedsvc_command() -> list[str]:
    script = Path(sys.executable).with_name("feedsvc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "feedsvc"]


def timed(command: list[str], out: Path, env: dict[str, str]) -> Run:
    """Run `command` once with `out` fresh; wall time, and the tree's peak RSS and CPU from wait4."""
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"{command[0]} failed ({process.returncode}): {errors.read()[-2000:].decode()}")
    return Run(seconds=seconds, cpu_seconds=usage.ru_utime + usage.ru_stime, rss_mb=usage.ru_maxrss / 1024)


def timed_serve(command: list[str], port: int, env: dict[str, str]) -> Run:
    """`feedsvc serve` from start until /healthz answers 200 (the first build is done: every feed servable)."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=errors,
                                   env=env, start_new_session=True)
        try:
            while not _healthy(port):
                if process.poll() is not None:
                    errors.seek(0)
                    raise RuntimeError(f"feedsvc serve exited ({process.returncode}): {errors.read()[-2000:].decode()}")
                time.sleep(0.01)
            seconds = time.perf_counter() - started
        finally:
            os.killpg(process.pid, signal.SIGTERM)
        _, _, usage = os.wait4(process.pid, 0)
    return Run(seconds=seconds, cpu_seconds=usage.ru_utime + usage.ru_stime, rss_mb=usage.ru_maxrss / 1024)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def summary(name: str, runs: list[Run]) -> str:
    wall = sorted(r.seconds for r in runs)
    return (f"{name:8} median {statistics.median(wall):6.2f}s  (min {wall[0]:.2f}, max {wall[-1]:.2f})  "
            f"CPU median {statistics.median(r.cpu_seconds for r in runs):6.2f}s  "
            f"peak RSS {max(r.rss_mb for r in runs):5.0f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="posts (default 10,000)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--work", type=Path, help="keep the corpus and the Hugo site here (default: a temp folder)")
    parser.add_argument("--before-src", type=Path, metavar="DIR",
                        help="also time `python -m feedsvc` from this src folder (another version), in the same run")
    parser.add_argument("--hugo-rss-limit", type=int, default=50,
                        help="Hugo's rssLimit (default 50, feedsvc's max_items; -1 is Hugo's default: all posts)")
    args = parser.parse_args(argv)
    hugo = shutil.which("hugo")
    if hugo is None:
        print("hugo not found: apt-get install -y hugo", file=sys.stderr)
        return 2
    version = subprocess.run([hugo, "version"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="feedsvc-vs-hugo-") as tmp:
        work = args.work or Path(tmp)
        corpus, site = work / f"corpus-{args.count}", work / f"hugo-{args.count}"
        make_corpus(corpus, args.count)
        make_hugo_site(corpus, site, args.count, args.hugo_rss_limit)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
        commands = {
            "feedsvc": ([*feedsvc_command(), "build", "--content", str(corpus), "--out", str(work / "out-feedsvc")],
                        work / "out-feedsvc", {**env, "FEEDSVC_CACHE_DIR": "off"}),
            "hugo": ([hugo, "--quiet", "-s", str(site), "-d", str(work / "out-hugo")], work / "out-hugo", env),
        }
        if args.before_src:
            commands["before"] = ([sys.executable, "-m", "feedsvc", "build", "--content", str(corpus), "--out",
                                   str(work / "out-before")], work / "out-before",
                                  {**env, "FEEDSVC_CACHE_DIR": "off", "PYTHONPATH": str(args.before_src.resolve())})
        serve = [*feedsvc_command(), "serve", "--content", str(corpus)]
        runs: dict[str, list[Run]] = {name: [] for name in [*commands, "serve"]}
        for index in range(args.runs):
            for name in sorted(runs, reverse=bool(index % 2)):  # who goes first swaps each run
                if name == "serve":
                    run = timed_serve(serve, _free_port(), {**env, "FEEDSVC_CACHE_DIR": "off"})
                else:
                    command, out, child_env = commands[name]
                    run = timed(command, out, child_env)
                runs[name].append(run)
                print(f"run {index + 1} {name:8} {run.seconds:6.2f}s  CPU {run.cpu_seconds:6.2f}s  "
                      f"RSS {run.rss_mb:5.0f} MB", flush=True)
    ours, theirs = (statistics.median(r.seconds for r in runs[name]) for name in ("feedsvc", "hugo"))
    print(f"\n{args.count:,} posts, {args.runs} runs each, {os.cpu_count()} cores; {version}; "
          f"Hugo rssLimit {args.hugo_rss_limit}")
    print(summary("feedsvc", runs["feedsvc"]))
    print(summary("serve", runs["serve"]) + "  (start to /healthz 200: every feed servable)")
    print(summary("hugo", runs["hugo"]))
    if "before" in runs:
        print(summary("before", runs["before"]))
        before = statistics.median(r.seconds for r in runs["before"])
        print(f"before / hugo (medians): {before / theirs:.2f}; feedsvc / before: {ours / before:.2f}")
    served = statistics.median(r.seconds for r in runs["serve"])
    print(f"feedsvc build / hugo (medians): {ours / theirs:.2f}; feedsvc serve / hugo: {served / theirs:.2f}"
          "  (goal: 0.50 or less)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
