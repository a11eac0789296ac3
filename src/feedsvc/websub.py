"""Tells WebSub hubs which feeds changed: a sender thread per hub, retries with backoff, never blocking.

W3C WebSub section 5 leaves publishing hub-specific. Hubs read the feed's URL from different
fields (Google's and Superfeedr's `hub.url`, flask-websub and WebSub.rocks `hub.topic`), so
both are sent. A 4xx answer is final (the hub will not change its mind), except 408 and 429;
a `Retry-After` is honoured.

Hubs are independent: each has its own queue and thread, so a slow or hanging hub delays only
its own publishes. Each attempt has one deadline (`timeout`) for connecting, sending and reading
the answer's status line and headers (the body is never read): urllib's timeout is per socket
read, so a hub trickling a byte every few seconds held the one sender for minutes. An attempt
that misses the deadline is a failure like any other, retried with backoff.

Redirects are not followed (urllib followed them to any host, even ftp://): a 3xx is a failure
that names its Location. It is final for 301 and 308, which say the configured URL itself must
change; 302, 303, 307 and other 3xx say the move is temporary, so they are retried like a 5xx.
Hubs are reached directly, so HTTP(S)_PROXY is not read.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

from feedsvc.hubpost import Answer, Post, post_form
from feedsvc.sender import Sender


def publish_form(url: str) -> bytes:
    return urlencode({"hub.mode": "publish", "hub.topic": url, "hub.url": url}).encode()


class WebSubNotifier(Sender):
    """Publishes every changed feed to every hub; `timeout` is the deadline of one whole attempt."""

    def __init__(self, hubs: Iterable[str], *, attempts: int = 6, backoff: float = 2.0, timeout: float = 10.0,
                 post: Post = post_form) -> None:
        def publish(hub: str, url: str, timeout: float) -> Answer:
            return post(hub, publish_form(url), timeout)

        super().__init__(hubs, publish, name="websub", attempts=attempts, backoff=backoff, timeout=timeout)

    def notify(self, urls: Iterable[str]) -> None:
        """Queue one publish per hub and feed (the publisher's on_change)."""
        self.put(urls)
