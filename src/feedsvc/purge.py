"""Tells the cache tier in front (Varnish, deploy/varnish.vcl) which documents a rebuild changed.

After each swap the publisher names the feeds whose bytes changed (build.changed_feeds). Every
document of a channel carries its stamp, so a changed channel changed everywhere: its three
formats, every `?before=`/`?limit=` page a client ever asked for (feedsvc cannot list those),
its preview page, each in both encodings. One `BAN /feeds/<channel>` per endpoint says all of
that; the VCL turns it into a ban on the objects whose URL starts with the channel's path. The
index page `/` shows every channel's last update, so it is `PURGE`d after any change, and
`/feeds.opml` when its ETag moved. The paths are feedsvc's own (what Varnish in front of it sees).

Sending is the WebSub hubs' (sender.Sender): a queue and thread per endpoint, so a slow cache
delays only itself, the same retries, backoff and Retry-After, and each attempt within one
deadline, redirects never followed, HTTP(S)_PROXY not read (hubpost.send).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from feedsvc.hubpost import Answer, send
from feedsvc.model import FeedFormat
from feedsvc.sender import Sender

SendPurge = Callable[[str, str, str, float], Answer]  # (endpoint, method, path, timeout of the attempt) -> answer
_FORMATS = tuple(f".{fmt.value}" for fmt in FeedFormat)


def send_purge(endpoint: str, method: str, path: str, timeout: float) -> Answer:
    """`method path` (BAN or PURGE) to the cache at `endpoint`, its answer's head within `timeout`."""
    return send(endpoint, method, path, timeout=timeout)


def purges_for(base_url: str, feed_urls: Iterable[str], *, opml_changed: bool) -> list[str]:
    """What to send for these changed feeds: `BAN <channel path>` once per channel, `PURGE /`, maybe the OPML."""
    prefix = base_url + "/feeds/"
    channels = [url.removeprefix(prefix).rsplit(".", 1)[0] for url in feed_urls
                if url.startswith(prefix) and url.endswith(_FORMATS)]
    jobs = [f"BAN /feeds/{path}" for path in dict.fromkeys(channels)]
    if not jobs:
        return []
    return [*jobs, "PURGE /", *(["PURGE /feeds.opml"] if opml_changed else [])]


class CachePurger(Sender):
    """Sends every purge to every endpoint (FEEDSVC_PURGE_URLS); `timeout` is the deadline of one attempt."""

    def __init__(self, endpoints: Iterable[str], *, base_url: str, opml_etag: Callable[[], str | None],
                 attempts: int = 6, backoff: float = 2.0, timeout: float = 10.0, send: SendPurge = send_purge) -> None:
        def purge(endpoint: str, job: str, timeout: float) -> Answer:
            method, _, path = job.partition(" ")
            return send(endpoint, method, path, timeout)

        super().__init__(endpoints, purge, name="purge", attempts=attempts, backoff=backoff, timeout=timeout)
        self._base_url, self._opml_etag = base_url, opml_etag
        self._last_opml = opml_etag()

    def notify(self, feed_urls: Iterable[str]) -> None:
        """Queue the purges for these changed feeds on every endpoint (the publisher's on_change)."""
        opml = self._opml_etag()
        opml_changed, self._last_opml = opml != self._last_opml, opml
        self.put(purges_for(self._base_url, feed_urls, opml_changed=opml_changed))
