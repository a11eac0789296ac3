"""The hot path: prebuilt feed documents served straight from the snapshot, before Flask sees the request.

Aggregators poll the same few URLs all day; handing them prepared bytes and prepared headers
without routing, request objects or middleware is what lets one process answer thousands of
polls a second. Anything else (pages, queries, other methods, HTML) goes on to the Flask app
unchanged. With an access log, every request (fast or not) gets its line here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from time import perf_counter
from typing import Any

from feedsvc.config import Settings
from feedsvc.httpcache import Headers, PreparedFeed, is_navigation
from feedsvc.logs import AccessLog
from feedsvc.metrics import Metrics
from feedsvc.model import RenderedFeed
from feedsvc.polling import PollWatch
from feedsvc.publisher import Publisher
from feedsvc.urls import link_header

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_REASONS = {200: "200 OK", 304: "304 Not Modified"}


def prepare(settings: Settings, feed: RenderedFeed) -> PreparedFeed:
    """A feed with the headers every answer about it carries."""
    return PreparedFeed(feed, max_age=settings.cache_max_age, links=link_header(settings, feed.channel, feed.format))


def answer(publisher: Publisher, feed: RenderedFeed, environ: Mapping[str, Any]) -> tuple[int, Headers, bytes]:
    """What a request (its WSGI environ) gets for `feed`; the Flask view for pages answers the same way."""
    return _respond(prepare(publisher.settings, feed), environ)


def _respond(prepared: PreparedFeed, environ: Mapping[str, Any]) -> tuple[int, Headers, bytes]:
    return prepared.respond(accept_encoding=environ.get("HTTP_ACCEPT_ENCODING"),
                            if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
                            if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
                            head=environ.get("REQUEST_METHOD") == "HEAD")


class FastFeeds:
    def __init__(self, app: WSGIApp, publisher: Publisher, metrics: Metrics, polls: PollWatch | None = None) -> None:
        self.app = app
        self.publisher = publisher
        self.metrics = metrics
        self.polls = polls
        self.access_log: AccessLog | None = None  # set by server.worker_app when the access log is on
        # Each prebuilt feed's prepared headers, made again only when its document is another one
        # (a rebuild keeps the RenderedFeed of every feed whose bytes did not change).
        self._prepared: dict[str, PreparedFeed] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = perf_counter()
        path: str = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        if (path.startswith("/feeds/") and not environ.get("QUERY_STRING") and method in ("GET", "HEAD")
                and not is_navigation(environ)):
            prepared = self._prepared_feed(path[7:])
            if prepared is not None:
                if self.polls is not None and (wait := self._poll(environ, path)) is not None:
                    return self._too_soon(environ, start_response, started, wait)
                status, headers, body = _respond(prepared, environ)
                start_response(_REASONS[status], headers)
                self.metrics.observe("feed", status, len(body))
                if self.access_log is not None:
                    self.access_log.request(environ, status, started)
                return [body]
        if self.access_log is None:
            return self.app(environ, start_response)
        return self._logged(environ, start_response, started, self.access_log)

    def _poll(self, environ: dict[str, Any], path: str) -> int | None:
        assert self.polls is not None
        conditional = "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MODIFIED_SINCE" in environ
        return self.polls.poll(environ.get("REMOTE_ADDR", ""), environ.get("HTTP_USER_AGENT", ""), path,
                               conditional=conditional)

    def _too_soon(self, environ: dict[str, Any], start_response: StartResponse, started: float,
                  wait: int) -> Iterable[bytes]:
        """429: this client fetched this feed in full less than FEEDSVC_MIN_POLL_INTERVAL ago."""
        body = (f"Too many requests: this feed was fetched from here {wait} s too soon. Poll less often, "
                "or send If-None-Match with the ETag you got.\n").encode()
        start_response("429 Too Many Requests", [
            ("Retry-After", str(wait)), ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
        self.metrics.observe("feed", 429, len(body))
        if self.access_log is not None:
            self.access_log.request(environ, 429, started)
        return [body]

    def _prepared_feed(self, name: str) -> PreparedFeed | None:
        feed = self.publisher.snapshot.feeds.get(name)
        if feed is None:
            return None
        found = self._prepared.get(name)
        if found is None or found.feed is not feed:
            found = self._prepared[name] = prepare(self.publisher.settings, feed)
        return found

    def _logged(self, environ: dict[str, Any], start_response: StartResponse, started: float,
                access_log: AccessLog) -> Iterable[bytes]:
        """The Flask app's answer, and its access log line (500 if it raised before answering)."""
        status = 500

        def capture(line: str, headers: Headers, exc_info: Any = None) -> Any:
            nonlocal status
            status = int(line[:3])
            return start_response(line, headers, exc_info)

        try:
            return self.app(environ, capture)
        finally:
            access_log.request(environ, status, started)
