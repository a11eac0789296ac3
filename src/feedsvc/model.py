"""The plain values every stage shares: posts, problems, channels and rendered feeds."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

_FROZEN = {"frozen": True, "slots": True, "kw_only": True}


@dataclass(**_FROZEN)
class Term:
    """A category or tag: the slug goes into URLs, the name into titles."""

    slug: str
    name: str


@dataclass(**_FROZEN)
class Author:
    name: str
    email: str | None = None
    uri: str | None = None


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
    body: str = ""  # Markdown source; rendered only for posts that reach a feed
    categories: tuple[Term, ...] = ()
    tags: tuple[Term, ...] = ()
    authors: tuple[Author, ...] = ()
    image: str | None = None
    draft: bool = False
    in_feeds: bool = True


@dataclass(**_FROZEN)
class Problem:
    """Why a file could not be used, said so an editor can fix it."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


class FeedFormat(enum.Enum):
    ATOM = "atom"
    RSS = "rss"

    @property
    def media_type(self) -> str:
        return {"atom": "application/atom+xml", "rss": "application/rss+xml"}[self.value]


@dataclass(**_FROZEN)
class Channel:
    """One feed's identity: all posts (`kind="all"`) or one category."""

    kind: str  # "all" | "category"
    slug: str
    name: str

    @property
    def path(self) -> str:
        """URL path below /feeds/, without the format extension."""
        return "all" if self.kind == "all" else f"{self.kind}/{self.slug}"


@dataclass(**_FROZEN)
class RenderedFeed:
    """A serialised feed and the validators HTTP needs; same input, same bytes."""

    channel: Channel
    format: FeedFormat
    body: bytes
    etag: str
    last_modified: datetime
    entry_count: int


@dataclass(**_FROZEN)
class ChannelSummary:
    """What the index page says of a channel."""

    channel: Channel
    post_count: int
    updated: datetime | None


@dataclass(**_FROZEN)
class Snapshot:
    """Everything the web layer serves, swapped in whole after each rebuild."""

    feeds: Mapping[str, RenderedFeed] = field(default_factory=dict)  # "category/news.atom" -> feed
    channels: tuple[ChannelSummary, ...] = ()
    posts: Mapping[str, Post] = field(default_factory=dict)  # slug -> visible post
    problems: tuple[Problem, ...] = ()
    built_at: datetime | None = None
    build_seconds: float = 0.0
    post_count: int = 0
    status: str = "starting"  # "ok", or "degraded" while the content folder is unreadable
