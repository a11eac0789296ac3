"""Runs the app under gunicorn: one worker process of threads, which hosts the one rebuilder.

A single worker keeps exactly one scheduler and watcher per service; its threads serve
prepared bytes, so they are cheap.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from feedsvc.app import Background, start_background


class FeedServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Flask, *, host: str, port: int, threads: int) -> None:
        self.application = app
        self.options = {
            "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": threads,
            "graceful_timeout": 10,
            "accesslog": None,
            "post_worker_init": self._start,
            "worker_exit": self._stop,
        }
        self._background: Background | None = None
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25.1 opens a control socket at one shared per-user path: two services
            # would fight over it, and it could add workers (and with them a second rebuilder).
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Flask:
        return self.application

    def _start(self, worker: Any) -> None:
        self._background = start_background(self.application)

    def _stop(self, server: Any, worker: Any) -> None:
        if self._background is not None:
            self._background.stop()


def serve(app: Flask, *, host: str, port: int, threads: int) -> None:
    FeedServer(app, host=host, port=port, threads=threads).run()
