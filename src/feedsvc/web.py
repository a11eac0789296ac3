"""HTTP: feeds from the current Snapshot with validators, the index and post pages, /healthz.

Reads `publisher.snapshot` once per request and never builds anything itself.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from feedsvc.model import FeedFormat, Snapshot
from feedsvc.publisher import Publisher, post_html
from feedsvc.render import feed_title, feed_url

blueprint = Blueprint("feeds", __name__)

_CSP = ("default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _publisher() -> Publisher:
    publisher: Publisher = current_app.extensions["feedsvc"]
    return publisher


def _snapshot() -> Snapshot:
    return _publisher().snapshot


@blueprint.get("/feeds/<path:name>")
def feed(name: str) -> Response:
    rendered = _snapshot().feeds.get(name)
    if rendered is None:
        abort(404)
    response = Response(rendered.body, content_type=f"{rendered.format.media_type}; charset=utf-8")
    response.set_etag(rendered.etag.strip('"'))
    response.last_modified = rendered.last_modified
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response.make_conditional(request)


@blueprint.get("/")
def index() -> str:
    snapshot = _snapshot()
    settings = _publisher().settings
    return render_template("index.html", snapshot=snapshot, settings=settings,
                           feed_url=feed_url, feed_title=feed_title, formats=FeedFormat)


@blueprint.get("/posts/<slug>")
def post(slug: str) -> str:
    found = _snapshot().posts.get(slug)
    if found is None:
        abort(404)
    return render_template("post.html", post=found, content=post_html(found),
                           settings=_publisher().settings)


@blueprint.get("/healthz")
def healthz() -> tuple[Response, int]:
    snapshot = _snapshot()
    body = {
        "status": snapshot.status,
        "posts": snapshot.post_count,
        "feeds": len(snapshot.feeds),
        "last_build": snapshot.built_at.isoformat() if snapshot.built_at else None,
        "last_build_seconds": round(snapshot.build_seconds, 4),
        "problems": [{"file": p.path, "line": p.line, "message": p.message} for p in snapshot.problems],
    }
    return jsonify(body), 503 if snapshot.status == "starting" else 200


@blueprint.after_app_request
def security_headers(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["Referrer-Policy"] = "no-referrer"
    return response
