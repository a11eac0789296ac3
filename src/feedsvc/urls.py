"""Every absolute URL the service hands out and every feed's title, from the settings (never the Host header)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from feedsvc.config import Settings
from feedsvc.model import Channel, ChannelKind, FeedFormat, FeedInfo


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


def feed_info(settings: Settings, channel: Channel) -> FeedInfo:
    """The feed of `channel` as it describes itself; the one place a feed's identity meets the settings."""
    spec = settings.feed_spec(channel.slug) if channel.kind is ChannelKind.FEED else None
    return FeedInfo(
        channel=channel, title=feed_title(settings, channel),
        description=(spec.description if spec and spec.description else settings.site_description),
        author=settings.author, language=channel.name if channel.kind is ChannelKind.LANG else settings.language,
        home_url=settings.site_url, preview_url=preview_url(settings, channel),
        urls=tuple((fmt, feed_url(settings, channel, fmt)) for fmt in FeedFormat),
        content=spec.content if spec else "full", max_bytes=spec.max_bytes if spec else 0,
        icon=settings.feed_icon, logo=settings.feed_logo,
        max_age=settings.cache_max_age,
    )


def link_header(settings: Settings, channel: Channel, fmt: FeedFormat) -> str | None:
    """The `Link:` header of a feed: its WebSub hubs and itself, when hubs are configured."""
    if not settings.websub_hubs:
        return None
    links = [f'<{hub}>; rel="hub"' for hub in settings.websub_hubs]
    return ", ".join([*links, f'<{feed_url(settings, channel, fmt)}>; rel="self"'])


def feed_title(settings: Settings, channel: Channel) -> str:
    if channel.kind is ChannelKind.ALL:
        return settings.site_title
    if channel.kind is ChannelKind.FEED and (spec := settings.feed_spec(channel.slug)) is not None:
        return f"{settings.site_title}: {spec.title}"
    return f"{settings.site_title}: {channel.kind.title_label}{channel.name}"
