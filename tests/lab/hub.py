"""A real WebSub hub (flask-websub's) on 127.0.0.1, and a subscriber for it, for end-to-end publishing tests.

flask-websub's hub does its work in Celery tasks, and Celery (with a broker) is more than a test wants.
The hub only needs a few pieces of Celery's API -- `celery.task(**opts)` giving objects with `.delay()`,
and, for bound tasks, `self.request.retries` and `self.retry(countdown=...)` -- so `_InlineCelery` below
provides exactly those and runs every task on one worker thread, in order: the hub answers 202 at once,
as it would with a real worker, and a task queued after another sees that one's effects.

How the hub treats the forms it is sent (flask_websub/hub/blueprint.py, 0.4.1):
- `hub.mode` and `hub.topic` are required for every mode; a missing one is a 400 whose body is
  "Missing form argument: <name>". `hub.url` is never read.
- `hub.mode=publish` works only if the Flask app's config (not the hub's) has PUBLISH_SUPPORTED true;
  otherwise 400 "Invalid hub.mode (should be 'subscribe' or 'unsubscribe'): publish".
- An accepted request is answered 202 "Request received: <mode>"; the work is done afterwards.
- On publish the hub GETs the topic URL and needs a `Link` header with both rel="hub" and rel="self",
  or it raises NotificationError and delivers nothing; otherwise it POSTs the fetched body, with the
  topic response's headers, to every verified callback of that topic.
The hub checks no URL (scheme, host or port), so 127.0.0.1 callbacks and topics need no setting; it
fetches with `requests`, so proxy variables in the environment apply to it.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import queue
import secrets
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)

HUB_PATH = "/hub"


class _Retry(Exception):
    """Raised by a bound task's `self.retry()`, as Celery's Retry is."""

    def __init__(self, countdown: float) -> None:
        super().__init__(countdown)
        self.countdown = countdown


@dataclass
class _TaskRequest:
    retries: int = 0


@dataclass
class _BoundTask:
    """The `self` a bound Celery task sees: how often it was retried, and a way to ask for another try."""

    request: _TaskRequest = field(default_factory=_TaskRequest)

    def retry(self, countdown: float = 0.0, **_: Any) -> None:
        raise _Retry(countdown)


class _InlineTask:
    """A task whose `.delay()` queues the call for the worker thread instead of a broker."""

    def __init__(self, celery: _InlineCelery, function: Callable[..., Any], bind: bool,
                 max_retries: int | None) -> None:
        self._celery = celery
        self._function = function
        self._bind = bind
        self._max_retries = 3 if max_retries is None else max_retries
        self.__name__ = getattr(function, "__name__", "task")

    def delay(self, *args: Any, **kwargs: Any) -> None:
        self._celery.queue.put((self, args, kwargs))

    def run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Run now, retrying as the task asks (waits capped so tests stay fast); failures go to `errors`."""
        bound = _BoundTask()
        while True:
            try:
                if self._bind:
                    self._function(bound, *args, **kwargs)
                else:
                    self._function(*args, **kwargs)
                return
            except _Retry as retry:
                if bound.request.retries >= self._max_retries:
                    self._celery.fail(self.__name__, RuntimeError(f"gave up after {bound.request.retries + 1} tries"))
                    return
                bound.request.retries += 1
                time.sleep(min(retry.countdown, self._celery.max_retry_wait))
            except Exception as exc:  # a Celery worker logs and keeps going too
                self._celery.fail(self.__name__, exc)
                return


class _InlineCelery:
    """The part of Celery's API flask-websub's Hub uses, run by one in-process worker thread."""

    def __init__(self, max_retry_wait: float) -> None:
        self.max_retry_wait = max_retry_wait
        self.queue: queue.Queue[tuple[_InlineTask, tuple[Any, ...], dict[str, Any]] | None] = queue.Queue()
        self.errors: list[tuple[str, BaseException]] = []
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="websub-hub-worker", daemon=True)
        self._worker.start()

    def task(self, bind: bool = False, max_retries: int | None = None, **_: Any) -> Callable[..., _InlineTask]:
        def register(function: Callable[..., Any]) -> _InlineTask:
            return _InlineTask(self, function, bind, max_retries)
        return register

    def add_periodic_task(self, *_: Any, **__: Any) -> None:
        """Expired leases are not cleaned up on a timer here; tests last seconds."""

    def fail(self, name: str, exc: BaseException) -> None:
        logger.warning("hub task %s failed: %r", name, exc)
        with self._lock:
            self.errors.append((name, exc))

    def failures(self) -> list[tuple[str, BaseException]]:
        with self._lock:
            return list(self.errors)

    def _work(self) -> None:
        while (item := self.queue.get()) is not None:
            try:
                task, args, kwargs = item
                task.run(args, kwargs)
            finally:
                self.queue.task_done()
        self.queue.task_done()

    def wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks:
            if time.monotonic() > deadline:
                raise TimeoutError(f"hub worker still busy after {timeout}s")
            time.sleep(0.01)

    def close(self) -> None:
        self.queue.put(None)
        self._worker.join(5)


@dataclass
class Hub:
    """A running flask-websub hub: `url` is its endpoint, `errors` what its tasks raised, in order."""

    url: str
    websub: Any  # flask_websub.hub.Hub
    _celery: _InlineCelery

    @property
    def errors(self) -> list[tuple[str, BaseException]]:
        """(task name, exception) for each failed task: e.g. a topic without Link rel=hub and rel=self."""
        return self._celery.failures()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Return once every queued subscription, publication and delivery has been worked off."""
        self._celery.wait_idle(timeout)


@contextlib.contextmanager
def run_hub(*, publish_supported: bool = True, request_timeout: float = 3.0, max_attempts: int = 2,
            max_retry_wait: float = 0.05) -> Iterator[Hub]:
    """Run flask-websub's hub on a free 127.0.0.1 port (werkzeug, threaded), with SQLite storage in a temp dir."""
    from flask import Flask
    from flask_websub.hub import Hub as WebSubHub
    from flask_websub.hub import SQLite3HubStorage
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    config: dict[str, Any] = {
        "PUBLISH_SUPPORTED": publish_supported,  # read from the Flask app's config by the blueprint
        "REQUEST_TIMEOUT": request_timeout,  # these three from the Hub's own config by the tasks
        "MAX_ATTEMPTS": max_attempts,
        "BACKOFF_BASE": 0.01,
    }
    with tempfile.TemporaryDirectory(prefix="websub-hub-") as tmp:
        celery = _InlineCelery(max_retry_wait)
        # Each connection() opens the path anew, so ":memory:" would be a new empty database every time.
        websub = WebSubHub(SQLite3HubStorage(str(Path(tmp) / "hub.sqlite3")), celery, **config)
        app = Flask("websub_hub_lab")
        app.config.update(config)
        app.register_blueprint(websub.build_blueprint(url_prefix=HUB_PATH))
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name="websub-hub", daemon=True)
        thread.start()
        try:
            yield Hub(f"http://127.0.0.1:{server.port}{HUB_PATH}", websub, celery)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
            celery.close()


def post_form(url: str, form: dict[str, str], timeout: float = 10.0) -> tuple[int, str]:
    """POST a urlencoded form; (status, body text) whatever the status, since hubs answer errors in the body."""
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode("utf-8", "replace")


@dataclass(frozen=True)
class Delivery:
    """One content distribution POST from the hub, as received (the body is not decoded)."""

    topic: str
    body: bytes
    headers: dict[str, str]  # names lower-cased

    @property
    def signature(self) -> str | None:
        return self.headers.get("x-hub-signature")


class Subscriber:
    """A callback server on a free 127.0.0.1 port that subscribes to topics at a hub and keeps what it is sent.

    It answers the hub's verification GET only for topics it asked for, with the challenge as the whole body.
    """

    def __init__(self, hub_url: str, *, lease_seconds: int | None = None, secret: str | None = None) -> None:
        self.hub_url = hub_url
        self.lease_seconds = lease_seconds
        self.secret = secret
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._deliveries: list[Delivery] = []
        self._pending: set[tuple[str, str]] = set()  # (mode, topic) asked for, not yet verified
        self._verified: list[tuple[str, str]] = []
        self._denied: list[tuple[str, str]] = []
        self._token = secrets.token_hex(8)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="websub-subscriber", daemon=True)

    @property
    def callback_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/callback/{self._token}"

    def __enter__(self) -> Subscriber:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    @property
    def denied(self) -> list[tuple[str, str]]:
        """(topic, reason) of each `hub.mode=denied` the hub sent."""
        with self._lock:
            return list(self._denied)

    def subscribe(self, topic: str, timeout: float = 10.0) -> None:
        """Ask the hub, then wait for its verification: after that, a publish queued at the hub reaches us."""
        self._request("subscribe", topic, timeout)

    def unsubscribe(self, topic: str, timeout: float = 10.0) -> None:
        self._request("unsubscribe", topic, timeout)

    def _request(self, mode: str, topic: str, timeout: float) -> None:
        form = {"hub.mode": mode, "hub.topic": topic, "hub.callback": self.callback_url}
        if self.lease_seconds is not None:
            form["hub.lease_seconds"] = str(self.lease_seconds)
        if self.secret is not None:
            form["hub.secret"] = self.secret
        with self._lock:
            self._pending.add((mode, topic))
            before = self._verified.count((mode, topic))
        status, body = post_form(self.hub_url, form, timeout)
        if status != 202:
            with self._lock:
                self._pending.discard((mode, topic))
            raise RuntimeError(f"hub answered {mode} with {status}: {body.strip()}")
        with self._changed:
            if not self._changed.wait_for(lambda: self._verified.count((mode, topic)) > before, timeout):
                raise TimeoutError(f"the hub did not verify {mode} of {topic} within {timeout}s")

    def wait_for_delivery(self, timeout: float = 10.0, *, after: int = 0) -> Delivery:
        """The first delivery beyond the first `after` ones, waiting up to `timeout` seconds for it."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._deliveries) > after, timeout):
                raise TimeoutError(f"no content delivery from the hub within {timeout}s")
            return self._deliveries[after]

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        subscriber = self

        class Callback(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _ours(self) -> tuple[bool, dict[str, str]]:
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
                return parts.path == f"/callback/{subscriber._token}", query

            def do_GET(self) -> None:
                ours, query = self._ours()
                mode, topic = query.get("hub.mode", ""), query.get("hub.topic", "")
                with subscriber._changed:
                    if ours and mode == "denied":
                        subscriber._denied.append((topic, query.get("hub.reason", "")))
                        subscriber._changed.notify_all()
                        self._answer(200)
                        return
                    if not ours or (mode, topic) not in subscriber._pending or "hub.challenge" not in query:
                        self._answer(404, b"not asked for\n")
                        return
                    subscriber._pending.discard((mode, topic))
                    subscriber._verified.append((mode, topic))
                    subscriber._changed.notify_all()
                self._answer(200, query["hub.challenge"].encode())

            def do_POST(self) -> None:
                ours, _ = self._ours()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not ours:
                    self._answer(404)
                    return
                headers = {name.lower(): value for name, value in self.headers.items()}
                link = headers.get("link", "")
                topic = next((part.split(">")[0].strip(" <") for part in link.split(",") if 'rel="self"' in part), "")
                with subscriber._changed:
                    subscriber._deliveries.append(Delivery(topic, body, headers))
                    subscriber._changed.notify_all()
                self._answer(200)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Callback
