"""Posts -> what to publish: visible posts grouped into channels, newest first, capped."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from feedsvc.model import Channel, Post, Problem

ALL = Channel(kind="all", slug="all", name="All posts")


@dataclass(frozen=True, slots=True, kw_only=True)
class Listing:
    """One channel's newest posts (at most `max_items`) and how many it has in all."""

    channel: Channel
    posts: tuple[Post, ...]
    total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    listings: tuple[Listing, ...]  # the all-posts listing first, then categories by name
    visible: tuple[Post, ...]  # every published post, newest first
    problems: tuple[Problem, ...]  # clashes found while grouping
    next_due: datetime | None  # when the earliest future-dated post goes live


def is_visible(post: Post, now: datetime) -> bool:
    return not post.draft and post.date <= now


def newest_first(posts: Iterable[Post]) -> list[Post]:
    """Newest first; ties broken by id so the same posts always give the same order."""
    return sorted(posts, key=lambda p: (-p.date.timestamp(), p.id, p.source))


def build_catalog(posts: Iterable[Post], *, now: datetime, max_items: int) -> Catalog:
    posts = list(posts)
    visible, problems = _unique(newest_first(p for p in posts if is_visible(p, now)))
    future = [p.date for p in posts if not p.draft and p.date > now]
    groups: dict[str, list[Post]] = defaultdict(list)
    names: dict[str, str] = {}
    for post in visible:
        if not post.in_feeds:
            continue
        groups[ALL.slug].append(post)
        for term in post.categories:
            groups[term.slug].append(post)
            names.setdefault(term.slug, term.name)
    channels = [ALL, *sorted(
        (Channel(kind="category", slug=slug, name=name) for slug, name in names.items()),
        key=lambda c: (c.name.casefold(), c.slug),
    )]
    listings = tuple(
        Listing(channel=c, posts=tuple(groups[c.slug][:max_items]), total=len(groups[c.slug]))
        for c in channels
    )
    return Catalog(listings=listings, visible=tuple(visible), problems=tuple(problems),
                   next_due=min(future, default=None))


def _unique(posts: list[Post]) -> tuple[list[Post], list[Problem]]:
    """Drop later posts whose id or slug is taken: feeds need unique ids, pages unique URLs."""
    seen_ids: dict[str, Post] = {}
    seen_slugs: dict[str, Post] = {}
    kept, problems = [], []
    for post in sorted(posts, key=lambda p: p.source):
        clash = seen_ids.get(post.id) or seen_slugs.get(post.slug)
        if clash is not None:
            what = "id" if clash.id == post.id else "slug"
            problems.append(Problem(path=post.source, line=None,
                                    message=f"same {what} as {clash.source}; not published"))
            continue
        seen_ids[post.id] = seen_slugs[post.slug] = post
        kept.append(post)
    return newest_first(kept), problems
