"""Self-test of the lab WebSub hub: flask-websub's real hub, a toy topic server and a subscriber on 127.0.0.1.

It pins down what that hub requires of a publisher, so publishing tests against it fail for the right reason.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import http.server
import threading
from collections.abc import Iterator

import pytest

pytest.importorskip("flask_websub.hub", reason="flask-websub is not installed")

from lab.hub import Hub, Subscriber, post_form, run_hub

pytestmark = pytest.mark.system

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:lab:topic</id><title>Lab topic</title>
<updated>2026-01-15T12:00:00Z</updated><entry><id>urn:lab:1</id><title>One</title>
<updated>2026-01-15T12:00:00Z</updated></entry></feed>
"""


class Topics:
    """Serves ATOM at /feed.atom (with Link rel=hub and rel=self), /nolink.atom (without) and /gzip.atom."""

    def __init__(self, hub_url: str) -> None:
        topics = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, encoding = ATOM, None
                if self.path == "/gzip.atom" and "gzip" in self.headers.get("Accept-Encoding", ""):
                    body, encoding = gzip.compress(ATOM, mtime=0), "gzip"
                self.send_response(200)
                self.send_header("Content-Type", "application/atom+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                if self.path != "/nolink.atom":
                    self.send_header("Link", f'<{hub_url}>; rel="hub", <{topics.url(self.path)}>; rel="self"')
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def hub() -> Iterator[Hub]:
    with run_hub() as running:
        yield running


@pytest.fixture
def topics(hub: Hub) -> Iterator[Topics]:
    served = Topics(hub.url)
    thread = threading.Thread(target=served.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()
    thread.join(5)


def test_publish_with_topic_delivers_the_topic_document(hub: Hub, topics: Topics) -> None:
    topic = topics.url("/feed.atom")
    with Subscriber(hub.url) as subscriber:
        subscriber.subscribe(topic)
        assert post_form(hub.url, {"hub.mode": "publish", "hub.topic": topic, "hub.url": topic}) == (
            202, "Request received: publish\n")
        delivery = subscriber.wait_for_delivery(10)
    assert delivery.body == ATOM
    assert delivery.topic == topic
    assert delivery.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert delivery.signature is None
    assert hub.errors == []


def test_publish_with_only_hub_url_is_rejected(hub: Hub, topics: Topics) -> None:
    """The PubSubHubbub form (hub.url alone) is not read: this hub wants hub.topic."""
    topic = topics.url("/feed.atom")
    with Subscriber(hub.url) as subscriber:
        subscriber.subscribe(topic)
        assert post_form(hub.url, {"hub.mode": "publish", "hub.url": topic}) == (
            400, "Missing form argument: hub.topic\n")
        hub.wait_idle()
        assert subscriber.deliveries == []


def test_publish_is_refused_unless_the_app_enables_it() -> None:
    with run_hub(publish_supported=False) as hub:
        assert post_form(hub.url, {"hub.mode": "publish", "hub.topic": "http://127.0.0.1:9/x"}) == (
            400, "Invalid hub.mode (should be 'subscribe' or 'unsubscribe'): publish\n")
        assert post_form(hub.url, {"hub.topic": "http://127.0.0.1:9/x"}) == (400, "Missing form argument: hub.mode\n")


def test_topic_without_link_header_is_not_distributed(hub: Hub, topics: Topics) -> None:
    from flask_websub.errors import NotificationError

    topic = topics.url("/nolink.atom")
    with Subscriber(hub.url) as subscriber:
        subscriber.subscribe(topic)
        assert post_form(hub.url, {"hub.mode": "publish", "hub.topic": topic})[0] == 202
        hub.wait_idle()
        assert subscriber.deliveries == []
    assert [type(exc) for _, exc in hub.errors] == [NotificationError]


def test_delivery_is_signed_with_the_subscribers_secret(hub: Hub, topics: Topics) -> None:
    topic = topics.url("/feed.atom")
    with Subscriber(hub.url, secret="lab-secret") as subscriber:
        subscriber.subscribe(topic)
        post_form(hub.url, {"hub.mode": "publish", "hub.topic": topic})
        delivery = subscriber.wait_for_delivery(10)
    expected = hmac.new(b"lab-secret", ATOM, hashlib.sha512).hexdigest()
    assert delivery.signature == f"sha512={expected}"


def test_gzipped_topic_is_delivered_decoded_but_still_labelled_gzip(hub: Hub, topics: Topics) -> None:
    """The hub fetches with Accept-Encoding: gzip, sends the decoded body and forwards Content-Encoding as is."""
    topic = topics.url("/gzip.atom")
    with Subscriber(hub.url) as subscriber:
        subscriber.subscribe(topic)
        post_form(hub.url, {"hub.mode": "publish", "hub.topic": topic})
        delivery = subscriber.wait_for_delivery(10)
    assert delivery.body == ATOM
    assert delivery.headers.get("content-encoding") == "gzip"
