"""Posts -> what to publish: visible posts grouped into channels, each newest first."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from slugify import slugify

from feedsvc.model import ALL, Channel, ChannelKind, Listing, Post


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    listings: tuple[Listing, ...]  # all posts, then categories, tags, authors, each by name
    visible: tuple[Post, ...]  # every published post, newest first
    next_due: datetime | None  # when the earliest future-dated post goes live


def is_visible(post: Post, now: datetime) -> bool:
    return not post.draft and post.date <= now


def sort_key(post: Post) -> tuple[float, str]:
    """Newest first; slugs are unique, so the order is total and pages have stable cursors."""
    return (-post.date.timestamp(), post.slug)


def build_catalog(posts: Iterable[Post], *, now: datetime, keep: Iterable[str] = (),
                  hidden: Collection[str] = ()) -> Catalog:
    """`keep`: paths of channels that have served entries; one with no posts now is listed empty, so its
    URL keeps answering (readers give up on a feed after a few 404s). `hidden`: paths renamed or
    retired in the configuration, never listed, posts or not (their URLs answer 301 or 410).
    """
    posts = list(posts)
    visible = sorted((p for p in posts if is_visible(p, now)), key=sort_key)
    future = [p.date for p in posts if not p.draft and p.date > now]
    groups: dict[tuple[ChannelKind, str], list[Post]] = defaultdict(list)
    channels: dict[tuple[ChannelKind, str], Channel] = {(ALL.kind, ALL.slug): ALL}  # a name's first spelling wins
    for post in visible:
        if post.in_feeds:
            for channel in _channels_of(post):
                key = (channel.kind, channel.slug)
                channels.setdefault(key, channel)
                groups[key].append(post)
    for channel in filter(None, map(Channel.at, keep)):
        channels.setdefault((channel.kind, channel.slug), channel)
    order = sorted((k for k in channels if channels[k].path not in hidden),
                   key=lambda k: (_KIND_ORDER.index(k[0]), channels[k].name.casefold(), k[1]))
    return Catalog(
        listings=tuple(Listing(channel=channels[k], posts=tuple(groups[k])) for k in order),
        visible=tuple(visible),
        next_due=min(future, default=None),
    )


_KIND_ORDER = list(ChannelKind)  # all posts first, then as the enum lists them


def _channels_of(post: Post) -> list[Channel]:
    channels = [ALL]
    channels += [_term_channel(ChannelKind.CATEGORY, t.slug, t.name) for t in post.categories]
    channels += [_term_channel(ChannelKind.TAG, t.slug, t.name) for t in post.tags]
    channels += [_term_channel(ChannelKind.AUTHOR, _author_slug(a.name), a.name) for a in post.authors]
    return [c for c in channels if c.slug]


@functools.lru_cache(maxsize=65536)  # the same few hundred terms recur across 100,000 posts
def _term_channel(kind: ChannelKind, slug: str, name: str) -> Channel:
    return Channel(kind=kind, slug=slug, name=name)


@functools.lru_cache(maxsize=65536)
def _author_slug(name: str) -> str:
    return str(slugify(name))
