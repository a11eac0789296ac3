"""(channel, posts, format) -> feed bytes with their ETag and Last-Modified. The only user of feedgen.

Pure: no clock, no I/O. The feed's `updated` is its newest entry's time, never the build
time, so the same posts always give the same bytes (and the same ETag on every replica).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from feedgen.feed import FeedEntry, FeedGenerator

from feedsvc import __version__
from feedsvc.config import Settings
from feedsvc.model import Channel, FeedFormat, Post, RenderedFeed

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the `updated` of a feed with no entries yet


def feed_url(settings: Settings, channel: Channel, fmt: FeedFormat) -> str:
    return f"{settings.base_url}/feeds/{channel.path}.{fmt.value}"


def feed_title(settings: Settings, channel: Channel) -> str:
    return settings.site_title if channel.kind == "all" else f"{settings.site_title}: {channel.name}"


def render_feed(
    settings: Settings,
    channel: Channel,
    posts: Sequence[Post],
    fmt: FeedFormat,
    *,
    html: Callable[[Post], str],
) -> RenderedFeed:
    """Serialise one feed; `html` turns a post's body into sanitised HTML."""
    updated = max((p.updated for p in posts), default=EPOCH)
    fg = _feed(settings, channel, fmt, updated)
    for post in posts:
        _add_entry(fg.add_entry(order="append"), post, html(post), fmt)  # feedgen prepends by default
    body = fg.atom_str(pretty=False) if fmt is FeedFormat.ATOM else fg.rss_str(pretty=False)
    return RenderedFeed(
        channel=channel,
        format=fmt,
        body=body,
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        last_modified=updated,
        entry_count=len(posts),
    )


def _feed(settings: Settings, channel: Channel, fmt: FeedFormat, updated: datetime) -> FeedGenerator:
    fg = FeedGenerator()
    fg.load_extension("media")
    fg.load_extension("dc")
    self_url = feed_url(settings, channel, fmt)
    fg.id(self_url)
    fg.title(feed_title(settings, channel))
    fg.subtitle(settings.site_description)  # also the RSS <description>, which RSS requires
    fg.author({"name": settings.author})  # an Atom feed with no author anywhere is invalid
    fg.language(settings.language)
    fg.generator("feedsvc", version=__version__)
    fg.link(href=self_url, rel="self", type=fmt.media_type)
    fg.link(href=settings.site_url, rel="alternate")  # last: it becomes the RSS channel <link>
    fg.updated(updated)
    fg.lastBuildDate(updated)  # feedgen would stamp now()
    return fg


def _add_entry(entry: FeedEntry, post: Post, content: str, fmt: FeedFormat) -> None:
    entry.id(post.id)
    entry.guid(post.id, permalink=post.id == post.url)
    entry.title(post.title)
    entry.link(href=post.url, rel="alternate")
    entry.published(post.date)
    entry.updated(post.updated)
    if post.summary:
        entry.summary(post.summary)
    if content:
        entry.content(content, type="html")  # without type="html" readers show the markup
    for author in post.authors:
        # RSS gets dc:creator only: an <author> beside it is a validator warning.
        email = author.email if fmt is FeedFormat.ATOM else None
        entry.author({k: v for k, v in (("name", author.name), ("email", email), ("uri", author.uri)) if v})
        entry.dc.dc_creator(author.name, replace=False)
    for term in dict.fromkeys(t.name for t in post.categories + post.tags):
        entry.category(term=term)
    if post.image:
        # An enclosure needs a byte length we do not know; Media RSS does not.
        entry.media.content({"url": post.image, "medium": "image"})
        entry.media.thumbnail({"url": post.image})
