"""The hot path: prebuilt feed documents served straight from the snapshot, before Flask sees the request.

Aggregators poll the same few URLs all day; handing them prepared bytes without routing,
request objects or middleware is what lets one process answer thousands of polls a second.
Anything else (pages, queries, other methods, HTML) goes on to the Flask app unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from feedsvc.httpcache import Headers, feed_response
from feedsvc.metrics import Metrics
from feedsvc.model import RenderedFeed
from feedsvc.publisher import Publisher
from feedsvc.urls import link_header

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_REASONS = {200: "200 OK", 304: "304 Not Modified"}


def answer(publisher: Publisher, feed: RenderedFeed, environ: Mapping[str, Any]) -> tuple[int, Headers, bytes]:
    """What a request (its WSGI environ) gets for `feed`; the Flask view for pages answers the same way."""
    return feed_response(
        feed,
        accept_encoding=environ.get("HTTP_ACCEPT_ENCODING"),
        if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
        if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
        max_age=publisher.settings.cache_max_age,
        links=link_header(publisher.settings, feed.channel, feed.format),
        head=environ.get("REQUEST_METHOD") == "HEAD",
    )


class FastFeeds:
    def __init__(self, app: WSGIApp, publisher: Publisher, metrics: Metrics) -> None:
        self.app = app
        self.publisher = publisher
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        if not path.startswith("/feeds/") or environ.get("QUERY_STRING") or method not in ("GET", "HEAD"):
            return self.app(environ, start_response)
        feed = self.publisher.snapshot.feeds.get(path[7:])
        if feed is None:
            return self.app(environ, start_response)
        status, headers, body = answer(self.publisher, feed, environ)
        start_response(_REASONS[status], headers)
        self.metrics.observe("feed", status, len(body))
        return [body]
