"""The plain values every stage shares: posts, problems, channels and rendered feeds."""

from __future__ import annotations

import enum
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

_FROZEN = {"frozen": True, "slots": True, "kw_only": True}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the time of "never": a feed with no entries, a file of unknown age


def _positional(cls: type) -> type:
    """Pickle as (class, field names, values), loaded by setting the slots directly: the generic
    slots-dataclass route costs 17 us a post on load and the frozen __init__ 9, this one 3 (a
    million posts come out of the cache on every restart)."""
    names = tuple(f.name for f in fields(cls))
    _SETTERS[cls] = (names, tuple(cls.__dict__[name].__set__ for name in names))
    values = operator.attrgetter(*names)  # the fields as a tuple, made in C: half of writing a post to the cache
    assert len(names) > 1, "attrgetter of one name gives the value, not a tuple"

    def __reduce__(self: Any) -> tuple[Any, ...]:
        return (_construct, (cls, names, values(self)))

    cls.__reduce__ = __reduce__  # type: ignore[method-assign,assignment]
    return cls


_SETTERS: dict[type, tuple[tuple[str, ...], tuple[Any, ...]]] = {}


def _construct(cls: type, names: tuple[str, ...], values: tuple[Any, ...]) -> Any:
    known, setters = _SETTERS[cls]
    if names != known:  # pickled by a version with other fields
        raise ValueError(f"{cls.__name__} has other fields now")
    instance: Any = object.__new__(cls)
    for put, value in zip(setters, values, strict=True):
        put(instance, value)
    return instance


@dataclass(**_FROZEN)
class Term:
    """A category or tag: the slug goes into URLs, the name into titles."""

    slug: str
    name: str


@_positional
@dataclass(**_FROZEN)
class Author:
    name: str
    email: str | None = None
    uri: str | None = None


@_positional
@dataclass(**_FROZEN)
class Post:
    """One publishable post, checked and normalised; every datetime is aware UTC."""

    source: str  # path relative to the content folder, POSIX separators
    slug: str
    id: str  # permanent entry id (a tag: URI unless the post sets its own)
    url: str
    title: str
    date: datetime
    updated: datetime
    summary: str = ""
    revision: str = ""  # the file version it was read from; the body is read again from there when needed
    modified: datetime = EPOCH  # when its file last changed: an edit that keeps `updated` still dates feeds anew
    categories: tuple[Term, ...] = ()
    tags: tuple[Term, ...] = ()
    authors: tuple[Author, ...] = ()
    image: str | None = None
    draft: bool = False
    in_feeds: bool = True
    featured: bool = False  # the seed format's `featured: true`; the `featured` feed gathers these
    lang: str | None = None  # its language (BCP 47, e.g. `fr`, `pt-BR`) when it differs from the site's

    def __hash__(self) -> int:
        # Equal posts share these three, and they are seldom shared otherwise; hashing all 18 fields
        # made hashing each rebuild's pages (the keys of the documents it may reuse) a tenth of its time.
        return hash((self.source, self.revision, self.id))


@_positional
@dataclass(**_FROZEN)
class Problem:
    """Why a file could not be used, said so an editor can fix it."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        path = self.path if self.path.isprintable() else repr(self.path)  # a newline or ESC in a name forges lines
        where = f"{path}:{self.line}" if self.line else path
        return f"{where}: {self.message}"


class FeedFormat(enum.Enum):
    ATOM = "atom"
    RSS = "rss"
    JSON = "json"

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self.value]

    @property
    def label(self) -> str:
        return {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}[self.value]


_MEDIA_TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml", "json": "application/feed+json"}


class ChannelKind(enum.StrEnum):
    """What a channel gathers. Everything a kind decides (its URL, title, order, folder, whether its
    feeds are made in every rebuild) is said here, so a new kind is a member and a catalog rule."""

    ALL = "all"
    FEED = "feed"  # defined in the configuration (`[[feeds]]`), and `featured`: at /feeds/<slug>.*
    CATEGORY = "category"
    TAG = "tag"
    AUTHOR = "author"
    LANG = "lang"  # the posts whose `lang` is this language

    @property
    def prebuilt(self) -> bool:
        """Made in every rebuild (what most readers subscribe to); the others on first request."""
        return self in (ChannelKind.ALL, ChannelKind.FEED, ChannelKind.CATEGORY, ChannelKind.LANG)

    @property
    def title_label(self) -> str:
        """Between the site's title and the channel's name: "News: tag harbour", "News: by Sam"."""
        return {"category": "", "tag": "tag ", "author": "by ", "lang": "in "}.get(self.value, "")

    @property
    def plural(self) -> str:
        """The heading of a group of such channels (index page, OPML folders)."""
        return {"all": "All posts", "feed": "Feeds", "category": "Categories", "tag": "Tags", "author": "Authors",
                "lang": "Languages"}[self.value]


@dataclass(**_FROZEN)
class Channel:
    """One feed's identity: all posts, or one category, tag or author."""

    kind: ChannelKind
    slug: str
    name: str

    @property
    def path(self) -> str:
        """URL path below /feeds/, without the format extension."""
        if self.kind is ChannelKind.ALL:
            return "all"
        return self.slug if self.kind is ChannelKind.FEED else f"{self.kind}/{self.slug}"

    @classmethod
    def at(cls, path: str) -> Channel | None:
        """The channel whose feeds are at /feeds/<path>.*, named by its slug; None if no channel can be there.

        For a channel known only by its URL (one with no posts now, or a redirect's target): the slug
        is all there is to name it, and the same path always gives the same feed title.
        """
        if path == "all":
            return ALL
        if _SLUG.fullmatch(path):
            return cls(kind=ChannelKind.FEED, slug=path, name=path)
        if not is_channel_path(path):
            return None
        kind, _, slug = path.partition("/")
        return cls(kind=ChannelKind(kind), slug=slug, name=slug)


ALL = Channel(kind=ChannelKind.ALL, slug="all", name="All posts")
# What slugify makes of a name (content.slug_for): lower-case letters and digits, single hyphens between.
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_CHANNEL_PATH = re.compile("(?:" + "|".join(kind.value for kind in ChannelKind if kind not in (
    ChannelKind.ALL, ChannelKind.FEED)) + ")/" + _SLUG.pattern)


def is_channel_path(path: str) -> bool:
    """A category, tag or author feed's path below /feeds/ (`tag/harbour`), as its slug can be."""
    return _CHANNEL_PATH.fullmatch(path) is not None


@dataclass(**_FROZEN)
class FeedInfo:
    """What a feed says of itself, apart from its entries: made once from the settings (urls.feed_info),
    so the writers of Atom, RSS, JSON Feed and OPML, and the pages, need nothing else."""

    channel: Channel
    title: str
    description: str
    author: str
    language: str
    home_url: str  # the site the feed belongs to (RSS <link>, Atom rel="alternate")
    preview_url: str  # the HTML page of the feed
    urls: tuple[tuple[FeedFormat, str], ...]  # each format's subscription URL, also its id
    content: str = "full"  # full | summary | excerpt: how much of each post an entry carries
    max_bytes: int = 0  # a document's byte budget; 0: none
    icon: str = ""  # URL of a square icon; empty: none
    logo: str = ""  # URL of a wider logo; empty: none
    max_age: int = 0  # seconds a reader may keep a document (Cache-Control), told in RSS <ttl> and sy:

    def url(self, fmt: FeedFormat) -> str:
        return dict(self.urls)[fmt]


@dataclass(**_FROZEN)
class PageLinks:
    """RFC 5005 paging: where this page is and where its neighbours are (None: no such page)."""

    self: str
    first: str
    next: str | None = None
    previous: str | None = None
    last: str | None = None


@dataclass(**_FROZEN)
class Page:
    """What one feed document holds: some of a channel's posts, and its links."""

    channel: Channel
    posts: tuple[Post, ...]
    links: PageLinks
    hubs: tuple[str, ...] = ()
    # (entry id, when) of posts deleted lately, for an Atom subscription document (RFC 6721 tombstones)
    deleted: tuple[tuple[str, datetime], ...] = ()


@dataclass(**_FROZEN)
class RenderedFeed:
    """A serialised feed, compressed once, and the validators HTTP needs; same input, same bytes."""

    channel: Channel
    format: FeedFormat
    body: bytes
    etag: str  # strong, quoted; differs per encoding (RFC 9110 section 8.8.3)
    gzip_body: bytes
    gzip_etag: str
    last_modified: datetime


@dataclass(**_FROZEN)
class Listing:
    """One channel and all its posts, newest first (pages and feeds are cut from it)."""

    channel: Channel
    posts: tuple[Post, ...]


@dataclass(**_FROZEN)
class ChannelSummary:
    """What the index page says of a channel."""

    channel: Channel
    info: FeedInfo
    post_count: int
    updated: datetime | None


@dataclass(**_FROZEN)
class Snapshot:
    """Everything the web layer serves, swapped in whole after each rebuild."""

    feeds: Mapping[str, RenderedFeed] = field(default_factory=dict)  # "category/news.atom" -> feed
    listings: Mapping[str, Listing] = field(default_factory=dict)  # "tag/x" -> the channel and all its posts
    stamps: Mapping[str, datetime] = field(default_factory=dict)  # "tag/x" -> when its documents last changed
    channels: tuple[ChannelSummary, ...] = ()  # every channel, all posts first
    opml: bytes = b""
    opml_gzip: bytes = b""  # compressed once, in the rebuild
    opml_etag: str = '""'
    posts: Mapping[str, Post] = field(default_factory=dict)  # slug -> visible post
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()  # published, but worth an editor's look (an entry id that changed)
    deleted: Mapping[str, tuple[tuple[str, datetime], ...]] = field(default_factory=dict)  # RFC 6721, by channel
    built_at: datetime | None = None
    build_seconds: float = 0.0
    post_count: int = 0
    status: str = "starting"  # "ok", or "degraded" while the content folder is unreadable

    @property
    def feed_count(self) -> int:
        """Every channel in every format (tag and author feeds are rendered on request, but exist)."""
        return len(self.listings) * len(FeedFormat)
