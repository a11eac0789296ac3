"""`feedsvc serve` against nginx serving `feedsvc build`'s export of the same posts, in one run.

    python bench/vs_nginx.py                 # 1,000 posts, 3 runs of 5 s per server and kind
    python bench/vs_nginx.py --seconds 3 --runs 1
    python bench/vs_nginx.py --baseline-src /tmp/old/src   # also an older feedsvc (its src/ folder), same run
    python bench/vs_nginx.py --varnish       # also Varnish with deploy/varnish.vcl in front of feedsvc

Both serve /feeds/all.atom from the same content: feedsvc with its default settings (access log
on, written to a file as an operator's log collector would read it; its cache in the temp
folder), nginx with one worker process and deploy/nginx.conf over the export (access log off, as
the tests run it; `--nginx-access-log` turns it on). wrk (32 connections, 127.0.0.1) measures
three kinds of request, each server in turn, run after run, so both see the same machine load:

    304       If-None-Match with the server's own ETag (nginx's is "<mtime>-<size>", not ours)
    gzip      Accept-Encoding: gzip, 200 with the precompressed bytes
    identity  200 with the whole document

Printed: the median req/s of each, and feedsvc's as a ratio of nginx's (the goal: 304 >= 0.5,
gzip >= 0.5, identity >= 0.6). A shared machine is noisy: compare figures within one run. Also
printed: the CPU time each server's processes spent per request (median), which the other work
on a shared machine disturbs less than the rates.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import write_corpus  # noqa: E402
from load import free_port, parse_wrk, wait_for  # noqa: E402

ROOT = HERE.parent
PATH = "/feeds/all.atom"
BASE_URL = "https://feeds.example.org"
GOALS = {"304": 0.5, "gzip": 0.5, "identity": 0.6}
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
VARNISHD = shutil.which("varnishd") or ("/usr/sbin/varnishd" if os.access("/usr/sbin/varnishd", os.X_OK) else None)


def nginx_server_block(root: Path, port: int) -> str:
    """deploy/nginx.conf with the three `ADAPT:` directives replaced, as tests/test_nginx.py does."""
    lines = (ROOT / "deploy" / "nginx.conf").read_text("utf-8").splitlines(keepends=True)
    for old, new in (("listen 80;", f"listen 127.0.0.1:{port};"), ("root /srv/feedsvc;", f"root {root};"),
                     ("include /srv/feedsvc/nginx-redirects.conf;", f"include {root}/nginx-redirects.conf;")):
        found = [i for i, line in enumerate(lines) if line.partition("#")[0].strip() == old]
        if len(found) != 1:
            raise SystemExit(f"deploy/nginx.conf should have the directive {old!r} exactly once")
        lines[found[0]] = lines[found[0]].replace(old, new)
    return "".join(lines)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the process group we started (server and its worker), then make sure it is gone."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


class Server(NamedTuple):
    url: str
    group: int  # its process group: the server and its workers


def cpu_seconds(group: int) -> float:
    """User + system CPU time of every process in the process group (from /proc, Linux)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def run_nginx(work: Path, export: Path, *, access_log: bool) -> Iterator[Server]:
    work.mkdir()
    port = free_port()
    (work / "server.conf").write_text(nginx_server_block(export, port), "utf-8")
    built = subprocess.run([NGINX or "nginx", "-V"], capture_output=True, text=True, check=True).stderr
    temps = "\n".join(f"    {name}_temp_path {work / name};"
                      for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
                      if f"--without-http_{name}_module" not in built)
    log = f"access_log {work / 'access.log'};" if access_log else "access_log off;"
    user = "user root;\n" if os.geteuid() == 0 else ""
    (work / "nginx.conf").write_text(
        f"{user}worker_processes 1;\nevents {{ worker_connections 256; }}\n"
        f"http {{\n    {log}\n{temps}\n    include {work / 'server.conf'};\n}}\n", "utf-8")
    process = subprocess.Popen(
        [NGINX or "nginx", "-p", str(work), "-c", str(work / "nginx.conf"), "-e", str(work / "error.log"),
         "-g", f"daemon off; pid {work / 'nginx.pid'};"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}{PATH}", 10)
        yield Server(f"http://127.0.0.1:{port}", process.pid)
    finally:
        stop(process, signal.SIGQUIT)


@contextmanager
def run_varnish(work: Path, backend: Server) -> Iterator[Server]:
    """varnishd (Debian's) with deploy/varnish.vcl, its backend pointed at `backend`; 64 MB of cache."""
    work.mkdir()
    port = free_port()
    vcl = (ROOT / "deploy" / "varnish.vcl").read_text("utf-8")
    vcl = vcl.replace('.port = "8000";', f'.port = "{backend.url.rsplit(":", 1)[1]}";', 1)
    (work / "feedsvc.vcl").write_text(vcl, "utf-8")
    process = subprocess.Popen(
        [VARNISHD or "varnishd", "-F", "-j", "none", "-n", str(work / "state"), "-a", f"127.0.0.1:{port}",
         "-f", str(work / "feedsvc.vcl"), "-s", "malloc,64m", "-T", "none"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}{PATH}", 30)
        yield Server(f"http://127.0.0.1:{port}", process.pid)
    finally:
        stop(process)


@contextmanager
def run_feedsvc(work: Path, content: Path, extra_env: dict[str, str], src: Path | None = None) -> Iterator[Server]:
    """`feedsvc serve` with the defaults (and `extra_env`); from the `src` folder's package if given."""
    work.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    env |= {"FEEDSVC_CACHE_DIR": str(work / "cache"), "XDG_RUNTIME_DIR": str(work), **extra_env}
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    with (work / "access.log").open("wb") as stdout, (work / "stderr.txt").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "feedsvc", "serve", "--content", str(content), "--port", str(port),
             "--base-url", BASE_URL], stdout=stdout, stderr=stderr, env=env, cwd=work, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", 60)
        yield Server(f"http://127.0.0.1:{port}", process.pid)
    finally:
        stop(process)


def head_of(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}


def requests_for(base: str) -> dict[str, list[str]]:
    """wrk header flags per kind, with this server's own identity ETag for the 304s; checked once first."""
    status, headers = head_of(base + PATH, {})
    if status != 200:
        raise SystemExit(f"{base}{PATH}: {status}")
    etag = headers["etag"]
    kinds = {"304": [f"If-None-Match: {etag}"], "gzip": ["Accept-Encoding: gzip"], "identity": []}
    expect = {"304": (304, None), "gzip": (200, "gzip"), "identity": (200, None)}
    for kind, lines in kinds.items():
        got, answer = head_of(base + PATH, dict(line.split(": ", 1) for line in lines))
        if (got, answer.get("content-encoding")) != expect[kind]:
            raise SystemExit(f"{base}: {kind} request got {got} {answer}")
    return {kind: [flag for line in lines for flag in ("-H", line)] for kind, lines in kinds.items()}


def wrk(base: str, headers: list[str], seconds: int, connections: int) -> dict[str, float]:
    result = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", *headers, base + PATH],
                            capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise SystemExit(result.stderr or result.stdout)
    return parse_wrk(result.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--kinds", default="304,gzip,identity", help="comma-separated subset")
    parser.add_argument("--nginx-access-log", action="store_true", help="nginx writes an access log too")
    parser.add_argument("--baseline-src", type=Path, metavar="DIR",
                        help="also serve an older feedsvc from DIR (holding its feedsvc package), in the same run")
    parser.add_argument("--varnish", action="store_true",
                        help="also Varnish (deploy/varnish.vcl) in front of feedsvc, in the same run")
    parser.add_argument("--env", action="append", default=[], metavar="FEEDSVC_X=V",
                        help="a setting for feedsvc serve (default: none, the defaults)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None or NGINX is None:
        print("needs wrk and nginx (apt-get install wrk nginx)", file=sys.stderr)
        return 2
    kinds = args.kinds.split(",")
    with tempfile.TemporaryDirectory(prefix="feedsvc-vs-nginx-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        write_corpus(work / "content", args.posts)
        subprocess.run([sys.executable, "-m", "feedsvc", "build", "--content", str(work / "content"),
                        "--base-url", BASE_URL, "--out", str(work / "export")],
                       check=True, capture_output=True, env={**os.environ, "FEEDSVC_CACHE_DIR": "off"})
        extra = dict(item.split("=", 1) for item in args.env)
        servers = {"feedsvc": stack.enter_context(run_feedsvc(work / "feedsvc", work / "content", extra)),
                   "nginx": stack.enter_context(run_nginx(work / "nginx", work / "export",
                                                          access_log=args.nginx_access_log))}
        if args.varnish:
            if VARNISHD is None:
                raise SystemExit("--varnish needs varnishd (apt-get install varnish)")
            servers["varnish"] = stack.enter_context(run_varnish(work / "varnish", servers["feedsvc"]))
        if args.baseline_src:
            servers["baseline"] = stack.enter_context(
                run_feedsvc(work / "baseline", work / "content", extra, args.baseline_src))
        requests = {name: requests_for(server.url) for name, server in servers.items()}
        rates: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        errors = 0.0
        for run in range(args.runs):
            for kind in kinds:
                for name in (list(servers) if run % 2 == 0 else list(servers)[::-1]):
                    before = cpu_seconds(servers[name].group)
                    figures = wrk(servers[name].url, requests[name][kind], args.seconds, args.connections)
                    used = cpu_seconds(servers[name].group) - before
                    rates.setdefault((name, kind), []).append(figures["requests_per_second"])
                    cpu.setdefault((name, kind), []).append(used / max(figures["requests"], 1) * 1e6)
                    errors += figures["errors"]
                    time.sleep(0.5)
        access_lines = sum(1 for _ in (work / "feedsvc" / "access.log").open("rb"))
    print(f"{args.posts} posts, {PATH}, wrk {args.connections} connections, {args.seconds}s x {args.runs} runs, "
          f"median req/s (feedsvc settings: {' '.join(args.env) or 'defaults'}; access log lines: {access_lines})")
    names = list(servers)
    print(f"{'kind':<10}" + "".join(f"{name:>10}" for name in names) + "".join(
        f"{name + '/nginx':>16}" for name in names if name != "nginx") + f"{'goal':>7}")
    for kind in kinds:
        medians = {name: statistics.median(rates[name, kind]) for name in names}
        ratios = {name: medians[name] / medians["nginx"] if medians["nginx"] else 0.0 for name in names}
        print(f"{kind:<10}" + "".join(f"{medians[name]:>10.0f}" for name in names)
              + "".join(f"{ratios[name]:>16.2f}" for name in names if name != "nginx")
              + f"{GOALS[kind]:>7.2f} {'ok' if ratios['feedsvc'] >= GOALS[kind] else 'below'}")
    print("CPU per request, median us: " + "; ".join(
        f"{kind} " + " ".join(f"{name} {statistics.median(cpu[name, kind]):.1f}" for name in names) for kind in kinds))
    print("runs (req/s): " + "; ".join(f"{name} {kind}: " + " ".join(f"{r:.0f}" for r in rates[name, kind])
                                       for kind in kinds for name in names))
    print(f"errors (wrk socket errors and 4xx/5xx): {errors:.0f}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
