"""Helpers for tests that talk to a real `feedsvc serve` process over 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Poll `predicate` every 20 ms until it is truthy; return the seconds it took."""
    started = time.monotonic()
    while not predicate():
        elapsed = time.monotonic() - started
        if elapsed >= timeout:
            pytest.fail(f"timed out after {elapsed:.2f}s (deadline {timeout}s) waiting for: {what}")
        time.sleep(0.02)
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, Mapping[str, str], bytes]:
    """(status, headers, body); status 0 while nothing listens yet."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:  # 304 and errors land here
        return exc.code, exc.headers, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, {}, b""


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def logs(self) -> str:
        return f"\n--- stdout ---\n{self.stdout.read_text()}\n--- stderr ---\n{self.stderr.read_text()}"

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM to the server alone, as an orchestrator sends it; the exit code, or a failure if it hangs."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"feedsvc serve did not exit within {timeout} s of SIGTERM{self.logs()}")


@contextmanager
def serve(content: Path, workdir: Path, *, base_url: str | None = None, **env: str) -> Iterator[Served]:
    """`feedsvc serve` on a free port; FEEDSVC_* variables from `env` only. Killed on exit if still running."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    runtime_dir = workdir / "run"  # gunicorn >= 25.1 may put a control socket here
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    environment.update({"FEEDSVC_REBUILD_INTERVAL": "3600", "FEEDSVC_THREADS": "4",
                        "XDG_RUNTIME_DIR": str(runtime_dir), **env})
    served = Served(url, None, workdir / "stdout.txt", workdir / "stderr.txt")  # type: ignore[arg-type]
    with served.stdout.open("wb") as stdout, served.stderr.open("wb") as stderr:
        served.process = subprocess.Popen(
            [sys.executable, "-m", "feedsvc", "serve", "--content", str(content), "--port", str(port),
             "--base-url", base_url or url],
            stdout=stdout, stderr=stderr, env=environment, cwd=workdir,
            start_new_session=True,  # its own process group: the server and the worker it spawns
        )
    try:
        def healthy() -> bool:
            if served.process.poll() is not None:
                pytest.fail(f"feedsvc serve exited with {served.process.returncode}{served.logs()}")
            return http_get(f"{url}/healthz")[0] == 200

        wait_until(healthy, 30.0, f"{url}/healthz to answer 200")
        yield served
    finally:
        stop_group(served.process)


def wait_listening(process: subprocess.Popen[bytes], port: int, what: str, log: Callable[[], str],
                   seconds: float) -> None:
    """Until `process` accepts connections on 127.0.0.1:`port`; fail with its `log()` if it exits first."""
    def listening() -> bool:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}{log()}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, seconds, f"{what} to listen on 127.0.0.1:{port}")


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole group, then SIGKILL what is left: no worker outlives its test."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            process.poll()
            time.sleep(0.05)
        else:
            continue
        break
    process.wait(timeout=5)


NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


@contextmanager
def run_nginx(workdir: Path, server_block: Callable[[int], str]) -> Iterator[str]:
    """nginx in the foreground on a free 127.0.0.1 port serving `server_block(port)`; it writes only in `workdir`."""
    assert NGINX is not None
    workdir.mkdir()
    port = free_port()
    (workdir / "server.conf").write_text(server_block(port), "utf-8")
    built = subprocess.run([NGINX, "-V"], capture_output=True, text=True, check=True).stderr
    temp_paths = "\n".join(f"    {name}_temp_path {workdir / name};" for name in
                           ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
                           if f"--without-http_{name}_module" not in built)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers as nobody could not read a private tmp dir
    (workdir / "nginx.conf").write_text(
        f"{user}worker_processes 1;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n    access_log off;\n{temp_paths}\n    include {workdir / 'server.conf'};\n}}\n", "utf-8")
    error_log, stderr = workdir / "error.log", workdir / "stderr.txt"
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            [NGINX, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", str(error_log),
             "-g", f"daemon off; pid {workdir / 'nginx.pid'};"],
            stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True,
        )

    def log() -> str:
        return "".join(f"\n--- {p.name} ---\n{p.read_text()}" for p in (stderr, error_log) if p.exists())

    try:
        wait_listening(process, port, "nginx", log, 10.0)
        yield f"http://127.0.0.1:{port}"
        assert "[emerg]" not in log() and "[alert]" not in log(), log()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful: the master stops its workers
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its own session: the master and its workers
                process.wait(timeout=10)
