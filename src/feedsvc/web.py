"""HTTP: feeds and their pages from the current Snapshot, previews, OPML, index and post pages, /healthz.

Reads the publisher's snapshot once per request and never rebuilds anything itself. A channel
renamed in the configuration answers 301 to its new address, a retired one 410, in every format
and for its pages and preview.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

from feedsvc.fastpath import answer
from feedsvc.httpcache import VARY, accepts_gzip, is_navigation
from feedsvc.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from feedsvc.model import Channel, ChannelKind, ChannelSummary, FeedFormat, Snapshot
from feedsvc.pages import Busy
from feedsvc.publisher import Publisher
from feedsvc.render import gzip_bytes
from feedsvc.urls import feed_info, moved_url, opml_url

if TYPE_CHECKING:
    from feedsvc.sender import Sender

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
        path, fmt = name, None  # the preview page
    elif (fmt := _FORMATS.get(extension)) is None:
        abort(404)
    if (moved_or_gone := _moved_or_gone(path, fmt)) is not None:
        return moved_or_gone
    if fmt is None:
        return _preview(path)
    if is_navigation(request.environ):  # a person who opened the feed's link: show them the page, same address
        page = Response(_preview(path), content_type="text/html; charset=utf-8")
        page.headers.update({"Vary": VARY, "X-Robots-Tag": "noindex"})
        return page
    publisher = _publisher()
    found = publisher.page(path, fmt, before=request.args.get("before"), limit=_limit())
    if found is None:
        abort(404)
    status, headers, body = answer(publisher, found, request.environ)
    return _NotModified(status=304, headers=headers) if status == 304 else Response(body, status, headers)


def _moved_or_gone(path: str, fmt: FeedFormat | None) -> Response | None:
    """301 to the new address of a renamed channel (same format, same query: a page stays that page),
    410 for a retired one; None for any other path. 301: the redirect that feedparser, reader and
    newsboat take as permanent (308 is younger and less widely known)."""
    settings = _publisher().settings
    text = "text/plain; charset=utf-8"
    if path in settings.retired:
        return Response("Gone: this feed was retired and has no new address.\n", 410, content_type=text)
    target = Channel.at(dict(settings.redirects).get(path, ""))
    if target is None:
        return None
    location = moved_url(settings, target, fmt, list(request.args.items(multi=True)))
    return Response(f"Moved permanently: {location}\n", 301, content_type=text, headers={
        "Location": location, "Cache-Control": f"max-age={settings.cache_max_age}"})


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
        publisher.check_posts_read()  # not missing, if they are still being read: not there yet
        abort(404)
    settings, info = publisher.settings, feed_info(publisher.settings, listing.channel)
    return render_template(
        "preview.html", settings=settings, channel=listing.channel, total=len(listing.posts),
        posts=listing.posts[:settings.max_items], title=info.title, feeds=[(fmt, info.url(fmt)) for fmt in FeedFormat],
    )


@blueprint.get("/feeds.opml")
def opml() -> Response:
    # No Last-Modified (the list has no date of its own): it revalidates by the ETag made in the
    # rebuild, and its gzip is made there too (see `finish_page`).
    snapshot = _publisher().snapshot
    response = Response(snapshot.opml, content_type="text/x-opml; charset=utf-8", headers={"ETag": snapshot.opml_etag})
    if len(snapshot.opml) >= _COMPRESS_FROM and accepts_gzip(request.headers.get("Accept-Encoding")):
        response.set_data(snapshot.opml_gzip)
        response.headers["Content-Encoding"] = "gzip"
        response.set_etag(f"{snapshot.opml_etag.strip(chr(34))}-gzip")  # another representation, another ETag
    return response


@blueprint.get("/")
def index() -> str:
    publisher = _publisher()
    snapshot: Snapshot = publisher.snapshot
    by_kind: dict[ChannelKind, list[ChannelSummary]] = {}
    for summary in snapshot.channels:
        by_kind.setdefault(summary.channel.kind, []).append(summary)
    return render_template(
        "index.html", snapshot=snapshot, settings=publisher.settings, by_kind=by_kind, kinds=ChannelKind,
        formats=FeedFormat, opml_url=opml_url(publisher.settings),
    )


@blueprint.get("/posts/<slug>")
def post(slug: str) -> str:
    publisher = _publisher()
    found = publisher.snapshot.posts.get(slug)
    if found is None:
        publisher.check_posts_read()
        abort(404)
    return render_template("post.html", post=found, content=publisher.bodies.html(found), settings=publisher.settings)


@blueprint.get("/healthz")
def healthz() -> Response:
    """Counts and times for anyone (a load balancer, a status page); file names, lines and hub URLs
    only for the operator, who sends `Authorization: Bearer <FEEDSVC_ADMIN_TOKEN>`."""
    operator = _is_operator()
    if operator is None:
        return Response("Unauthorized\n", 401, content_type="text/plain; charset=utf-8", headers={
            "WWW-Authenticate": 'Bearer realm="feedsvc"', "Cache-Control": "no-store"})
    snapshot = _publisher().snapshot
    body: dict[str, Any] = {
        "status": snapshot.status,
        "posts": snapshot.post_count,
        "feeds": snapshot.feed_count,
        "last_build": snapshot.built_at.isoformat() if snapshot.built_at else None,
        "last_build_seconds": round(snapshot.build_seconds, 4),
        "problem_count": len(snapshot.problems),
        "warning_count": len(snapshot.warnings),
    }
    if _publisher().warming:  # serving the last run's feeds while the first build reads the posts
        body["warming"] = True
    if operator:
        body["problems"] = [{"file": p.path, "line": p.line, "message": p.message} for p in snapshot.problems]
        body["warnings"] = [{"file": p.path, "message": p.message} for p in snapshot.warnings]
    if (notifier := current_app.extensions.get("feedsvc.websub")) is not None:
        body["websub"] = _sender_health("hubs", notifier, operator=operator)
    if (purger := current_app.extensions.get("feedsvc.purge")) is not None:
        body["cache_purge"] = _sender_health("endpoints", purger, operator=operator)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"  # a probe must see now, never a cached answer
    if snapshot.status == "starting":
        response.status_code = 503
        response.headers["Retry-After"] = "1"  # the first build is under way
    return response


def _is_operator() -> bool | None:
    """True with the admin token, False without credentials, None (401) with any others.

    Never by address: behind a reverse proxy on the same host every request comes from 127.0.0.1,
    and forwarding headers are whatever the client wrote. No token configured: no operator.
    """
    given = request.headers.get("Authorization")
    if given is None:
        return False
    scheme, _, token = given.partition(" ")
    expected = _publisher().settings.admin_token
    if expected and scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), expected.encode()):
        return True
    return None


def _sender_health(noun: str, sender: Sender, *, operator: bool) -> dict[str, Any]:
    """Hubs or cache endpoints: counted for anyone; by URL, with the last error (which may name hosts),
    for the operator."""
    outcomes = sender.outcomes
    states = {**dict.fromkeys(sender.endpoints, "idle"), **outcomes.by_hub}
    ok, idle = sum(s == "ok" for s in states.values()), sum(s == "idle" for s in states.values())
    health: dict[str, Any] = {f"{noun}_ok": ok, f"{noun}_failing": len(states) - ok - idle, f"{noun}_idle": idle,
                              "sent": outcomes.sent, "retried": outcomes.retried, "failed": outcomes.failed,
                              "pending": sender.pending}
    if operator:
        health |= {noun: states, "last_error": outcomes.last_error}
    return health


@blueprint.get("/metrics")
def metrics() -> Response:
    rendered = current_app.extensions["feedsvc.metrics"].render()
    return Response(rendered, content_type=METRICS_CONTENT_TYPE, headers={"Cache-Control": "no-store"})


@blueprint.errorhandler(Busy)
def busy(error: Busy) -> Response:
    """Another request's document is being made, or a restart is still reading the posts: come back
    in a moment, rather than hold a thread (or be told that what is not read yet does not exist)."""
    return Response("Busy: try again in a moment.\n", 503, content_type="text/plain; charset=utf-8",
                    headers={"Retry-After": str(error.retry_after), "Cache-Control": "no-store"})


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
    response.vary.add("Accept-Encoding")  # kept beside what the view varied on (a feed URL: Sec-Fetch-Dest)
    if ("Content-Encoding" not in response.headers and len(body) >= _COMPRESS_FROM
            and accepts_gzip(request.headers.get("Accept-Encoding"))):
        response.set_data(gzip_bytes(body))
        response.headers["Content-Encoding"] = "gzip"
        digest += "-gzip"  # another representation, another strong ETag (RFC 9110 section 8.8.3)
    response.set_etag(digest)
    response.make_conditional(request)
