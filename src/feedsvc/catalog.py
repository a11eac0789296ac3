"""Posts -> what to publish: visible posts grouped into channels, each newest first."""

from __future__ import annotations

import bisect
import dataclasses
import functools
import operator
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slugify import slugify

from feedsvc.model import ALL, Channel, ChannelKind, Listing, Post


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    listings: tuple[Listing, ...]  # all posts, then categories, tags, authors, each by name
    # Every published post, newest first. From CatalogIndex, like by_slug, the index's own list:
    # a copy was a million-post pass on every change.
    visible: Sequence[Post]
    next_due: datetime | None  # when the earliest future-dated post goes live
    # slug -> visible post. From CatalogIndex, the index's own dict, updated by its next change:
    # for looking a post up now, not for keeping.
    by_slug: Mapping[str, Post] = field(default_factory=dict)
    # From CatalogIndex: the posts its last change put in (came, or came due); None: it started again.
    added: tuple[Post, ...] | None = None


def is_visible(post: Post, now: datetime) -> bool:
    return not post.draft and post.date <= now


def sort_key(post: Post) -> tuple[float, str]:
    """Newest first; slugs are unique, so the order is total and pages have stable cursors."""
    return (-post.date.timestamp(), post.slug)


def newest_first(posts: Iterable[Post]) -> list[Post]:
    """Sorted by sort_key, the way a million posts sort in a second: two stable sorts on keys
    compared in C (a slug, then a date; `reverse` keeps ties in order) instead of sort_key's tuples."""
    ordered = sorted(posts, key=_SLUG)
    ordered.sort(key=_DATE, reverse=True)
    return ordered


_SLUG, _DATE = operator.attrgetter("slug"), operator.attrgetter("date")


@dataclass(frozen=True, slots=True)
class FeedRule:
    """A configured feed as the catalog sees it (config.FeedSpec): which posts, and whether it is
    listed while it has none (a configured feed is; the implicit `featured` is not)."""

    slug: str
    holds: Callable[[Post], bool]
    always: bool = True
    title: str = ""  # what the index page and OPML call it (default: the slug)

    @property
    def channel(self) -> Channel:
        return _term_channel(ChannelKind.FEED, self.slug, self.title or self.slug)


def build_catalog(posts: Iterable[Post], *, now: datetime, keep: Iterable[str] = (),
                  hidden: Collection[str] = (), feeds: Sequence[FeedRule] = ()) -> Catalog:
    """`keep`: paths of channels that have served entries; one with no posts now is listed empty, so its
    URL keeps answering (readers give up on a feed after a few 404s). `hidden`: paths renamed or
    retired in the configuration, never listed, posts or not (their URLs answer 301 or 410).
    """
    posts = list(posts)
    visible = newest_first(p for p in posts if is_visible(p, now))
    future = [p.date for p in posts if not p.draft and p.date > now]
    groups: dict[tuple[ChannelKind, str], list[Post]] = defaultdict(list)
    channels: dict[tuple[ChannelKind, str], Channel] = {(ALL.kind, ALL.slug): ALL}  # a name's first spelling wins
    for post in visible:
        if post.in_feeds:
            for channel in channels_of(post, feeds):
                key = (channel.kind, channel.slug)
                channels.setdefault(key, channel)
                groups[key].append(post)
    for channel in _kept(keep, feeds):
        channels.setdefault((channel.kind, channel.slug), channel)
    order = sorted((k for k in channels if channels[k].path not in hidden),
                   key=lambda k: (_KIND_ORDER.index(k[0]), channels[k].name.casefold(), k[1]))
    return Catalog(
        listings=tuple(Listing(channel=channels[k], posts=tuple(groups[k])) for k in order),
        visible=tuple(visible),
        next_due=min(future, default=None),
        by_slug={p.slug: p for p in visible},
    )


def _future_key(post: Post) -> tuple[datetime, str]:
    return (post.date, post.slug)


ChannelKey = tuple[ChannelKind, str]


class CatalogIndex:
    """build_catalog's answer, kept up to date one change at a time.

    Sorting a million posts takes seconds; a new post takes a bisect into each of its channels.
    Holds the visible posts newest first, each channel's posts, and the future-dated posts by
    date (moved in as their time comes). Given all posts instead of a change (the first build,
    or the clock going back), it starts again from build_catalog's way. The same answer either
    way; tests compare the two.
    """

    def __init__(self, feeds: Sequence[FeedRule] = ()) -> None:
        self._feeds = tuple(feeds)
        self._visible: list[Post] = []
        self._future: list[Post] = []  # not drafts, dated after `_now`, by date
        self._groups: dict[ChannelKey, list[Post]] = {}
        self._listings: dict[ChannelKey, Listing] = {}  # made again only for channels that changed
        self._by_slug: dict[str, Post] = {}
        self._now: datetime | None = None

    def update(self, *, posts: Iterable[Post], left: Iterable[Post] | None, came: Iterable[Post] | None,
               now: datetime, keep: Iterable[str] = (), hidden: Collection[str] = ()) -> Catalog:
        """The catalog after a change: `left` and `came` are the posts it removed and added (None: not
        known, so start again from `posts`, every post there is)."""
        if left is None or came is None or self._now is None or now < self._now:
            self._reset(posts, now)
            added = None
        else:
            dirty: set[ChannelKey] = set()
            for post in left:
                self._remove(post, dirty)
            due = bisect.bisect_right(self._future, now, key=lambda p: p.date)  # their time has come
            arrived, self._future[:due] = self._future[:due], []
            added = (*arrived, *came)
            for post in added:
                self._add(post, now, dirty)
            for key in dirty:
                self._listings.pop(key, None)
            self._now = now
        return dataclasses.replace(self._catalog(keep, hidden), added=added)

    def _reset(self, posts: Iterable[Post], now: datetime) -> None:
        posts = list(posts)
        self._visible = newest_first(p for p in posts if is_visible(p, now))
        self._future = sorted((p for p in posts if not p.draft and p.date > now), key=_future_key)
        groups: dict[ChannelKey, list[Post]] = defaultdict(list)
        for post in self._visible:
            if post.in_feeds:
                for channel in channels_of(post, self._feeds):
                    groups[(channel.kind, channel.slug)].append(post)
        self._groups = dict(groups)
        self._listings = {}
        self._by_slug = {p.slug: p for p in self._visible}
        self._now = now

    def _add(self, post: Post, now: datetime, dirty: set[ChannelKey]) -> None:
        if post.draft:
            return
        if post.date > now:
            bisect.insort(self._future, post, key=_future_key)
            return
        bisect.insort(self._visible, post, key=sort_key)
        self._by_slug[post.slug] = post
        if post.in_feeds:
            for channel in channels_of(post, self._feeds):
                key = (channel.kind, channel.slug)
                bisect.insort(self._groups.setdefault(key, []), post, key=sort_key)
                dirty.add(key)

    def _remove(self, post: Post, dirty: set[ChannelKey]) -> None:
        if post.draft:
            return
        if not _take(self._visible, post, sort_key):
            _take(self._future, post, _future_key)
            return
        if self._by_slug.get(post.slug) is post:
            del self._by_slug[post.slug]
        if post.in_feeds:
            for channel in channels_of(post, self._feeds):
                key = (channel.kind, channel.slug)
                group = self._groups.get(key)
                if group is not None and _take(group, post, sort_key):
                    dirty.add(key)
                    if not group:
                        del self._groups[key]

    def _catalog(self, keep: Iterable[str], hidden: Collection[str]) -> Catalog:
        # A channel's name is its first spelling in the order build_catalog goes: its newest post's.
        channels = {key: _spelled(key, group[0], self._feeds) for key, group in self._groups.items()}
        channels.setdefault((ALL.kind, ALL.slug), ALL)
        for channel in _kept(keep, self._feeds):
            channels.setdefault((channel.kind, channel.slug), channel)
        order = sorted((k for k in channels if channels[k].path not in hidden),
                       key=lambda k: (_KIND_ORDER.index(k[0]), channels[k].name.casefold(), k[1]))
        listings = []
        for key in order:
            listing = self._listings.get(key)
            if listing is None:
                listing = self._listings[key] = Listing(channel=channels[key], posts=tuple(self._groups.get(key, ())))
            listings.append(listing)
        return Catalog(listings=tuple(listings), visible=self._visible,
                       next_due=self._future[0].date if self._future else None, by_slug=self._by_slug)


def _take(posts: list[Post], post: Post, key: Callable[[Post], Any]) -> bool:
    """Remove this very post from a list sorted by `key`; False if it is not there."""
    at = bisect.bisect_left(posts, key(post), key=key)
    while at < len(posts) and key(posts[at]) == key(post):
        if posts[at] is post:
            del posts[at]
            return True
        at += 1
    return False


def _spelled(key: ChannelKey, post: Post, feeds: Sequence[FeedRule]) -> Channel:
    return next(channel for channel in channels_of(post, feeds) if (channel.kind, channel.slug) == key)


def _kept(keep: Iterable[str], feeds: Sequence[FeedRule]) -> Iterator[Channel]:
    """Channels listed with or without posts: those that have served entries, and configured feeds."""
    yield from (rule.channel for rule in feeds if rule.always)  # first: named by their titles
    yield from filter(None, map(Channel.at, keep))


_KIND_ORDER = list(ChannelKind)  # all posts first, then as the enum lists them


def channels_of(post: Post, feeds: Sequence[FeedRule] = ()) -> list[Channel]:
    """Every channel a published post is in (ALL, its feeds of [[feeds]], categories, tags, authors, language).

    Asked of every post when the index starts again (a million at a restart): what a post lacks
    costs nothing. A channel without a slug (an author's name without letters) is none.
    """
    channels = [ALL]
    for rule in feeds:
        if rule.holds(post):
            channels.append(rule.channel)
    for term in post.categories:
        if term.slug:
            channels.append(_term_channel(ChannelKind.CATEGORY, term.slug, term.name))
    for term in post.tags:
        if term.slug:
            channels.append(_term_channel(ChannelKind.TAG, term.slug, term.name))
    for author in post.authors:
        if slug := _author_slug(author.name):
            channels.append(_term_channel(ChannelKind.AUTHOR, slug, author.name))
    if post.lang:
        channels.append(_term_channel(ChannelKind.LANG, post.lang.lower(), post.lang))
    return channels


@functools.lru_cache(maxsize=65536)  # the same few hundred terms recur across 100,000 posts
def _term_channel(kind: ChannelKind, slug: str, name: str) -> Channel:
    return Channel(kind=kind, slug=slug, name=name)


@functools.lru_cache(maxsize=65536)
def _author_slug(name: str) -> str:
    return str(slugify(name))
