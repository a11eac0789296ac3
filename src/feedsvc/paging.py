"""A channel's posts -> RFC 5005 paged feed documents, addressed by cursors that stay put.

A page is "the `limit` posts after the post named by `before`" in newest-first order, so
new posts never shift a page a reader is walking: only the first page grows.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from feedsvc.catalog import sort_key
from feedsvc.model import Channel, Page, PageLinks, Post

_CURSOR = re.compile(r"(\d{8}T\d{6})(?:\.(\d{6}))?Z-([a-z0-9][a-z0-9-]*)")

PageUrl = Callable[[str | None], str]  # cursor (None: the first page) -> absolute URL


def cursor(post: Post) -> str:
    """The post's place in the order, readable in a URL: `20250110T080000Z-ferry`."""
    fraction = f".{post.date.microsecond:06d}" if post.date.microsecond else ""
    # Four year digits always: strftime's %Y writes year 999 as "999" (glibc), which `_CURSOR` never matches.
    return f"{post.date.year:04d}{post.date:%m%dT%H%M%S}{fraction}Z-{post.slug}"


def parse_cursor(text: str) -> tuple[float, str] | None:
    match = _CURSOR.fullmatch(text)
    if match is None:
        return None
    try:
        moment = datetime.strptime(match[1], "%Y%m%dT%H%M%S").replace(
            microsecond=int(match[2] or 0), tzinfo=UTC)
    except ValueError:
        return None
    return (-moment.timestamp(), match[3])


def paginate(channel: Channel, posts: Sequence[Post], *, before: str | None, limit: int,
             url: PageUrl, hubs: tuple[str, ...] = ()) -> Page | None:
    """The page after cursor `before` (None: the newest page); None if the cursor is malformed."""
    start = 0
    if before is not None:
        key = parse_cursor(before)
        if key is None:
            return None
        start = bisect.bisect_right(posts, key, key=sort_key)
    end = start + limit
    last_start = (len(posts) - 1) // limit * limit if posts else 0

    def at(index: int) -> str:  # the URL of the page that starts at `index`
        return url(None if index <= 0 else cursor(posts[index - 1]))

    links = PageLinks(
        self=url(before),
        first=url(None),
        next=at(end) if end < len(posts) else None,
        previous=at(start - limit) if start > 0 else None,
        last=at(last_start),
    )
    return Page(channel=channel, posts=tuple(posts[start:end]), links=links, hubs=hubs)
