"""Runs the service under granian: one worker process, which hosts the one rebuilder.

granian parses HTTP and moves bytes on a Rust thread, beside the Python threads of one process
(one rebuilder, one snapshot in memory); the Python side of a feed poll is the fast path's
dictionary lookup. More worker processes would each need their own rebuilder.

Measured with bench/vs_nginx.py on 2 cores (granian 2.8), where the server and wrk get about a
core each: what a 304 costs beyond a bare WSGI app (which answers about as fast as nginx) is
mostly the two request threads handing the interpreter lock to each other, and that costs more
the longer each holds it. So the request path holds it briefly: the access log is written by the
worker (logs.AccessLog, a tuple queued per request, not granian's `logging` call, which took two
thirds of a 304's time), and request counts are kept per thread (tally). One Rust runtime thread
instead of two left more of the core to the rest: 304s 0.40x -> 0.53x of nginx, gzip 0.62x ->
0.68x, identity 0.81x -> 0.82x (both with the two changes above, in one run; before those, an
earlier run had 304s at 0.36x). WSGI stays: a bare RSGI handler cost more CPU per 304 than a bare
WSGI one (21-27 against 13-15 us), and RSGI would need the Flask app run in an executor for every
other request. One Python thread (FEEDSVC_THREADS=1) answers more 304s still, but a page rendered
on request then holds every other request: under bench/flood.py's paging flood the normal
clients' p99 went from 8 ms to 1.3 s. So two by default; 4 only add contention.
"""

from __future__ import annotations

import errno
import multiprocessing.util
import os
import socket
from typing import Any

from granian import Granian
from granian.constants import Interfaces

from feedsvc.config import ConfigError, Settings, load_settings, to_env
from feedsvc.logs import AccessLog, logging_config


def worker_app() -> Any:
    """The factory granian calls inside its worker: build once, start the rebuilder, serve."""
    from feedsvc.app import create_app, start_background
    from feedsvc.fastpath import FastFeeds

    settings = load_settings()
    app = create_app(settings, resume=True)
    background = start_background(app)
    # granian's worker is a multiprocessing child, which skips atexit; its exit finalizers do run.
    # Stopping there writes the cache, so a restart after SIGTERM is as cheap as after a quiet spell.
    multiprocessing.util.Finalize(None, background.stop, exitpriority=10)
    if settings.access_log:
        # Written by the fast path rather than granian's access log, whose `logging` call per
        # request cost two thirds of a 304 (see AccessLog); same lines, same stream.
        fast: FastFeeds = app.extensions["feedsvc.fastpath"]
        access_log = fast.access_log = AccessLog(json_lines=settings.log_format == "json")
        access_log.start()
        multiprocessing.util.Finalize(None, access_log.close, exitpriority=5)  # after the rebuilder's stop
    return app.wsgi_app  # the fast path, which hands the rest to Flask: one call less per poll than `app`


def check_port(host: str, port: int) -> None:
    """Fail with the setting's name before granian starts, rather than with its traceback after."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
            raise ConfigError(f"FEEDSVC_PORT: {host}:{port} {reason}") from None


def serve(settings: Settings) -> None:
    check_port(settings.host, settings.port)
    os.environ.update(to_env(settings))  # the worker reads the same settings, flags included
    Granian(
        "feedsvc.server:worker_app",
        factory=True,
        interface=Interfaces.WSGI,
        address=settings.host,
        port=settings.port,
        workers=1,
        runtime_threads=1,
        blocking_threads=settings.threads,
        log_access=False,  # the worker writes the access log itself (see worker_app)
        log_dictconfig=logging_config(settings),
        workers_kill_timeout=settings.stop_timeout,  # the worker's exit writes the cache (worker_app)
    ).serve()
