"""When a channel's documents last changed: a Last-Modified that moves forward whenever their bytes do.

A feed dated by its newest entry hides changes: an edit that keeps `updated`, a backdated post
or a deletion changes the bytes but not the date, so a client asking `If-Modified-Since` gets
a 304 (and libcurl-based readers drop the 200 body) and keeps the stale feed for good.

So every channel carries a stamp: the posts it held when it was dated, and when that was. While
its posts are the same, the stamp stays (a 304 for every poll, also after a restart: the stamps
are cached). When they differ, the new time is taken from the folder, so replicas over one
folder agree: the newest `updated` or file change (mtime or ctime) among its posts, or the time
the folder a removed post's file left changed (deleting a file dates its folder). It never goes back, and moves at
least one second, the resolution of HTTP dates. The feed's own `updated` and `lastBuildDate`
carry the same time as the header, and every document of the channel (pages, `?limit=`) is dated
by it, since a change anywhere in a channel can change any of its pages' links.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from feedsvc.model import EPOCH, Post

SECOND = timedelta(seconds=1)
_UPDATED, _MODIFIED = operator.attrgetter("updated"), operator.attrgetter("modified")


@dataclass(frozen=True, slots=True)
class Stamp:
    posts: tuple[Post, ...] | None  # compared by value; None: not known (so any posts differ from them)
    at: datetime  # whole seconds, UTC
    made_for: str | None = None  # from the cache: the fingerprint of the posts, which are not kept there
    bound: datetime | None = None  # no post in `posts` changed later than this (None: not known)


def restamp(previous: Stamp | None, posts: tuple[Post, ...], *, removed_at: datetime | None, now: datetime,
            after: datetime | None = None, added: Sequence[Post] | None = None) -> Stamp:
    """The stamp for a channel now holding `posts`; `removed_at` dates posts it no longer holds.

    `after`: a time the stamp must be later than though its posts are the same (a file with other
    bytes that an earlier run, whose stamps are lost, wrote then). `added`: the posts in `posts`
    that `previous.posts` did not hold, if known.
    """
    if previous is not None and previous.posts == posts and (after is None or previous.at > after):
        return previous
    if (added is not None and previous is not None and previous.posts is not None and previous.bound is not None
            and whole_seconds(previous.bound) <= previous.at):
        # The posts it kept changed no later than its stamp, which the new one follows anyway: only the
        # added ones can date it. A million-post channel is not gone through for one new post.
        latest = max((max(p.updated, p.modified) for p in added), default=EPOCH)
        bound = max(previous.bound, latest)
    else:  # two passes in C rather than one in Python: a channel can hold a million posts
        latest = bound = max(max(map(_UPDATED, posts), default=EPOCH), max(map(_MODIFIED, posts), default=EPOCH))
    at = whole_seconds(min(max(latest, removed_at or EPOCH), now))  # an mtime from a skewed clock is not believed
    for earlier in (previous.at if previous else None, after):
        if earlier is not None:
            at = max(at, whole_seconds(earlier) + SECOND)
    return Stamp(posts=posts, at=at, bound=bound)


def whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def fingerprints(channels: Mapping[str, Sequence[Post]]) -> dict[str, str]:
    """What cached stamps were made for (a restart compares them), one digest per channel."""
    return {path: _fingerprint(posts) for path, posts in channels.items()}


# What a post's entry is made from, as far as a restart can tell: its file, the file's version
# (its stat), and the slug and id it was given (a clash renames). NUL separates: no name has one.
_SPELLED = tuple(operator.attrgetter(name) for name in ("source", "revision", "slug", "id"))


def _fingerprint(posts: Sequence[Post]) -> str:
    """Joined in C, a field at a time: a channel can hold a million posts, and a restart checks them all."""
    digest = hashlib.blake2b(digest_size=16)
    for field in _SPELLED:
        digest.update("\x00".join(map(field, posts)).encode("utf-8", "surrogatepass"))
        digest.update(b"\x01")
    return digest.hexdigest()
