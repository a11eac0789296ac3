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
from feedsvc.httpcache import Headers, PreparedFeed
from feedsvc.logs import AccessLog
from feedsvc.metrics import Metrics
from feedsvc.model import RenderedFeed
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
    def __init__(self, app: WSGIApp, publisher: Publisher, metrics: Metrics) -> None:
        self.app = app
        self.publisher = publisher
        self.metrics = metrics
        self.access_log: AccessLog | None = None  # set by server.worker_app when the access log is on
        # Each prebuilt feed's prepared headers, made again only when its document is another one
        # (a rebuild keeps the RenderedFeed of every feed whose bytes did not change).
        self._prepared: dict[str, PreparedFeed] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = perf_counter()
        path: str = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        if path.startswith("/feeds/") and not environ.get("QUERY_STRING") and method in ("GET", "HEAD"):
            prepared = self._prepared_feed(path[7:])
            if prepared is not None:
                status, headers, body = _respond(prepared, environ)
                start_response(_REASONS[status], headers)
                self.metrics.observe("feed", status, len(body))
                if self.access_log is not None:
                    self.access_log.request(environ, status, started)
                return [body]
        if self.access_log is None:
            return self.app(environ, start_response)
        return self._logged(environ, start_response, started, self.access_log)

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
