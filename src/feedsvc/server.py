"""Runs the service under granian: one worker process, which hosts the one rebuilder.

granian parses HTTP and moves bytes on Rust threads, so one Python process (one rebuilder,
one snapshot in memory) keeps both cores busy; the Python side of a feed poll is the
fast path's dictionary lookup. More worker processes would each need their own rebuilder.
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
from feedsvc.logs import logging_config


def worker_app() -> Any:
    """The factory granian calls inside its worker: build once, start the rebuilder, serve."""
    from feedsvc.app import create_app, start_background

    app = create_app(load_settings())
    background = start_background(app)
    # granian's worker is a multiprocessing child, which skips atexit; its exit finalizers do run.
    # Stopping there writes the cache, so a restart after SIGTERM is as cheap as after a quiet spell.
    multiprocessing.util.Finalize(None, background.stop, exitpriority=10)
    return app


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
        runtime_threads=2,
        blocking_threads=settings.threads,
        log_access=settings.access_log,
        log_dictconfig=logging_config(settings),
        workers_kill_timeout=10,
    ).serve()
