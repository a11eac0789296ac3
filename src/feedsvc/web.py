"""HTTP: feeds and their pages from the current Snapshot, previews, OPML, index and post pages, /healthz.

Reads the publisher's snapshot once per request and never rebuilds anything itself.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

from feedsvc.fastpath import answer
from feedsvc.httpcache import accepts_gzip
from feedsvc.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from feedsvc.model import ChannelSummary, FeedFormat, Snapshot
from feedsvc.publisher import Publisher
from feedsvc.render import gzip_bytes
from feedsvc.urls import feed_title, feed_url, opml_url, preview_url

logger = logging.getLogger(__name__)
blueprint = Blueprint("feeds", __name__)

# The pages' one stylesheet is a static file; images come from the posts (https:, or this site).
_CSP = ("default-src 'none'; img-src 'self' https: data:; style-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_PAGE_MAX_AGE = 60  # HTML pages: short, they change with every new post
_COMPRESS_FROM = 1024  # bytes; below this gzip saves less than its headers cost
_FORMATS = {fmt.value: fmt for fmt in FeedFormat}


class _NotModified(Response):
    """A 304 that keeps Last-Modified: werkzeug drops it as an entity header; RFC 9110 section 15.4.5 allows it."""

    def get_wsgi_headers(self, environ: Any) -> Headers:
        headers = super().get_wsgi_headers(environ)
        if modified := self.headers.get("Last-Modified"):
            headers["Last-Modified"] = modified
        return headers


def _route() -> str:
    """A small, fixed set of labels for /metrics, never the raw path."""
    endpoint = (request.url_rule.endpoint if request.url_rule else "other").removeprefix("feeds.")
    if endpoint == "feed" and not request.path.endswith((".atom", ".rss", ".json")):
        return "preview"
    return endpoint


def _publisher() -> Publisher:
    publisher: Publisher = current_app.extensions["feedsvc"]
    return publisher


@blueprint.get("/feeds/<path:name>")
def feed(name: str) -> Response | str:
    path, dot, extension = name.rpartition(".")
    if not dot or "/" in extension:
        return _preview(name)
    fmt = _FORMATS.get(extension)
    if fmt is None:
        abort(404)
    publisher = _publisher()
    found = publisher.page(path, fmt, before=request.args.get("before"), limit=_limit())
    if found is None:
        abort(404)
    status, headers, body = answer(publisher, found, request.environ)
    return _NotModified(status=304, headers=headers) if status == 304 else Response(body, status, headers)


def _limit() -> int | None:
    text = request.args.get("limit")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or not text.strip("0"):
        abort(400, description="limit must be a whole number of entries, at least 1")
    largest = _publisher().settings.max_limit
    # Compared as text first: int() of 4,300+ digits raises (CPython's int-to-text limit), and no
    # limit that long can be below the largest anyway.
    return largest if len(text.lstrip("0")) > len(str(largest)) else min(int(text), largest)


def _preview(path: str) -> str:
    publisher = _publisher()
    listing = publisher.snapshot.listings.get(path)
    if listing is None:
        abort(404)
    settings = publisher.settings
    return render_template(
        "preview.html", settings=settings, channel=listing.channel, total=len(listing.posts),
        posts=listing.posts[:settings.max_items], title=feed_title(settings, listing.channel),
        feeds=[(fmt, feed_url(settings, listing.channel, fmt)) for fmt in FeedFormat],
    )


@blueprint.get("/feeds.opml")
def opml() -> Response:
    # No Last-Modified (the list has no date of its own): it revalidates by the ETag made in the
    # rebuild (see `finish_page`).
    snapshot = _publisher().snapshot
    return Response(snapshot.opml, content_type="text/x-opml; charset=utf-8", headers={"ETag": snapshot.opml_etag})


@blueprint.get("/")
def index() -> str:
    publisher = _publisher()
    snapshot: Snapshot = publisher.snapshot
    by_kind: dict[str, list[ChannelSummary]] = {}
    for summary in snapshot.channels:
        by_kind.setdefault(summary.channel.kind, []).append(summary)
    return render_template(
        "index.html", snapshot=snapshot, settings=publisher.settings, by_kind=by_kind, formats=FeedFormat,
        feed_url=feed_url, feed_title=feed_title, preview_url=preview_url, opml_url=opml_url(publisher.settings),
    )


@blueprint.get("/posts/<slug>")
def post(slug: str) -> str:
    publisher = _publisher()
    found = publisher.snapshot.posts.get(slug)
    if found is None:
        abort(404)
    return render_template("post.html", post=found, content=publisher.bodies.html(found), settings=publisher.settings)


@blueprint.get("/healthz")
def healthz() -> tuple[Response, int]:
    snapshot = _publisher().snapshot
    body = {
        "status": snapshot.status,
        "posts": snapshot.post_count,
        "feeds": snapshot.feed_count,
        "last_build": snapshot.built_at.isoformat() if snapshot.built_at else None,
        "last_build_seconds": round(snapshot.build_seconds, 4),
        "problems": [{"file": p.path, "line": p.line, "message": p.message} for p in snapshot.problems],
    }
    if (notifier := current_app.extensions.get("feedsvc.websub")) is not None:
        outcomes = notifier.outcomes
        body["websub"] = {"hubs": {**dict.fromkeys(notifier.hubs, "idle"), **outcomes.by_hub},
                          "sent": outcomes.sent, "retried": outcomes.retried, "failed": outcomes.failed,
                          "pending": notifier.pending, "last_error": outcomes.last_error}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"  # a probe must see now, never a cached answer
    return response, 503 if snapshot.status == "starting" else 200


@blueprint.get("/metrics")
def metrics() -> Response:
    rendered = current_app.extensions["feedsvc.metrics"].render()
    return Response(rendered, content_type=METRICS_CONTENT_TYPE, headers={"Cache-Control": "no-store"})


@blueprint.app_errorhandler(Exception)
def unexpected(error: Exception) -> Response | HTTPException:
    if isinstance(error, HTTPException):
        return error
    logger.exception("error serving %s", request.path)
    return Response("Internal error\n", status=500, content_type="text/plain; charset=utf-8")


@blueprint.after_app_request
def count(response: Response) -> Response:
    current_app.extensions["feedsvc.metrics"].observe(_route(), response.status_code, response.content_length or 0)
    return response


@blueprint.before_app_request
def only_get_and_head() -> Response | None:
    """OPTIONS too gets 405 (Flask would answer it 200): the service has nothing to offer a preflight."""
    if request.method == "OPTIONS":
        return Response("Method Not Allowed\n", status=405, headers={"Allow": "GET, HEAD"},
                        content_type="text/plain; charset=utf-8")
    return None


@blueprint.after_app_request
def finish_page(response: Response) -> Response:
    """Pages and the OPML list: security headers, then a short max-age, an ETag per encoding, gzip and 304."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["Referrer-Policy"] = "no-referrer"
    if (response.status_code == 200 and response.mimetype in ("text/html", "text/x-opml")
            and request.method in ("GET", "HEAD") and not response.direct_passthrough):
        _cacheable_page(response)
    return response


def _cacheable_page(response: Response) -> None:
    body = response.get_data()
    digest = response.get_etag()[0] or hashlib.sha256(body).hexdigest()[:32]  # pages are rendered per request
    max_age = _publisher().settings.cache_max_age  # the OPML list: as the feeds it lists (and deploy/nginx.conf)
    if response.mimetype == "text/html":
        max_age = min(_PAGE_MAX_AGE, max_age)
    response.headers["Cache-Control"] = f"max-age={max_age}"
    response.headers["Vary"] = "Accept-Encoding"
    if len(body) >= _COMPRESS_FROM and accepts_gzip(request.headers.get("Accept-Encoding")):
        response.set_data(gzip_bytes(body))
        response.headers["Content-Encoding"] = "gzip"
        digest += "-gzip"  # another representation, another strong ETag (RFC 9110 section 8.8.3)
    response.set_etag(digest)
    response.make_conditional(request)
