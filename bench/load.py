"""HTTP load against a real `feedsvc serve` while posts change underneath; reports req/s, latency, errors.

    python bench/load.py              # 1,000 posts, 32 connections, 10 s
    python bench/load.py --quick      # 2 s; the test suite runs this when wrk is installed

The load comes from wrk (Debian package `wrk`), on 127.0.0.1 only, bounded in time. The mix is
a third conditional requests (304 while a feed is unchanged), a third gzip, a third identity,
over the all-posts and category feeds in every format. A churn thread edits a post every 100 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import post_text, write_corpus

MIX = """
local paths = {%(paths)s}
local etags = {%(etags)s}
local n = 0
request = function()
  n = n + 1
  local i = (n %% #paths) + 1
  local kind = n %% 3
  local headers = {}
  if kind == 0 then headers["If-None-Match"] = etags[i] end
  if kind ~= 2 then headers["Accept-Encoding"] = "gzip" end
  return wrk.format("GET", paths[i], headers)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer")


def gzip_etag(url: str) -> str:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.headers["ETag"])


def churn(content: Path, count: int, stop: threading.Event) -> None:
    """Retitle a post every 100 ms; with 200-1,000 posts most edits change some served feed."""
    rng = random.Random(1)
    edit = 0
    while not stop.wait(0.1):
        edit += 1
        index = rng.randrange(count)
        matches = list(content.glob(f"*/{index:06d}_*.txt"))
        if matches:
            matches[0].write_text(post_text(index).replace("title: ", f"title: Edit {edit}: ", 1), "utf-8")


def parse_wrk(output: str) -> dict[str, float]:
    def number(pattern: str, scale: dict[str, float] | None = None) -> float:
        match = re.search(pattern, output)
        if not match:
            return 0.0
        value = float(match[1])
        return value * (scale or {}).get(match[2], 1.0) if scale and match.lastindex == 2 else value

    ms = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return {
        "requests_per_second": number(r"Requests/sec:\s+([\d.]+)"),
        "p50_ms": number(r"\s50%\s+([\d.]+)(us|ms|s)\b", ms),
        "p99_ms": number(r"\s99%\s+([\d.]+)(us|ms|s)\b", ms),
        "requests": number(r"(\d+) requests in"),
        "errors": errors + number(r"Non-2xx or 3xx responses: (\d+)"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seconds, 200 posts")
    parser.add_argument("--seconds", type=int, help="duration (default 10; 2 with --quick)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--posts", type=int, help="corpus size (default 1,000; 200 with --quick)")
    args = parser.parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    seconds = args.seconds or (2 if args.quick else 10)
    count = args.posts or (200 if args.quick else 1000)
    with tempfile.TemporaryDirectory(prefix="feedsvc-load-") as tmp:
        content = Path(tmp) / "content"
        write_corpus(content, count)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "FEEDSVC_REBUILD_INTERVAL": "3600", "XDG_RUNTIME_DIR": tmp}
        server = subprocess.Popen([sys.executable, "-m", "feedsvc", "serve", "--content", str(content),
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        stop = threading.Event()
        try:
            wait_for(base + "/healthz", 60)
            paths = [f"/feeds/{p}.{f}" for p in ("all", "category/news", "category/sport", "category/latest")
                     for f in ("atom", "rss", "json")]
            etags = [gzip_etag(base + p) for p in paths]
            script = Path(tmp) / "mix.lua"
            script.write_text(MIX % {"paths": ", ".join(f'"{p}"' for p in paths),
                                     "etags": ", ".join("'" + e + "'" for e in etags)})
            editor = threading.Thread(target=churn, args=(content, count, stop), daemon=True)
            editor.start()
            result = subprocess.run([wrk, "-t2", f"-c{args.connections}", f"-d{seconds}s", "--latency",
                                     "-s", str(script), base], capture_output=True, text=True, timeout=seconds + 60)
        finally:
            stop.set()
            server.terminate()
            server.wait(timeout=20)
    figures = parse_wrk(result.stdout)
    print(f"load: {args.connections} connections, {seconds}s, {count} posts, mix of 304/gzip/identity, "
          f"edits every 100 ms")
    print(f"requests/s {figures['requests_per_second']:.0f}  p50 {figures['p50_ms']:.2f} ms  "
          f"p99 {figures['p99_ms']:.2f} ms  requests {figures['requests']:.0f}  errors {figures['errors']:.0f}")
    return 0 if result.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
