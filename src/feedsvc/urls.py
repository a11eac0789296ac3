"""Every absolute URL the service hands out, built from the configured base URL (never the Host header)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from feedsvc.config import Settings
from feedsvc.model import Channel, FeedFormat


def feed_url(settings: Settings, channel: Channel, fmt: FeedFormat, **query: str | int | None) -> str:
    """The feed's subscription URL, or one of its pages when `before`/`limit` are given."""
    url = f"{settings.base_url}/feeds/{channel.path}.{fmt.value}"
    params = {k: v for k, v in query.items() if v is not None}
    return f"{url}?{urlencode(params)}" if params else url


def preview_url(settings: Settings, channel: Channel) -> str:
    return f"{settings.base_url}/feeds/{channel.path}"


def moved_url(settings: Settings, target: Channel, fmt: FeedFormat | None, query: Sequence[tuple[str, str]]) -> str:
    """Where a renamed channel's feed (or its preview, for no format) is now, with the request's query."""
    url = preview_url(settings, target) if fmt is None else feed_url(settings, target, fmt)
    return f"{url}?{urlencode(query)}" if query else url


def opml_url(settings: Settings) -> str:
    return f"{settings.base_url}/feeds.opml"


def feed_title(settings: Settings, channel: Channel) -> str:
    if channel.kind == "all":
        return settings.site_title
    label = {"category": "", "tag": "tag ", "author": "by "}[channel.kind]
    return f"{settings.site_title}: {label}{channel.name}"
