"""Keeps slugs and entry ids unique across the folder: a clash renames the later file's post, never drops it.

Feeds need unique ids and post pages unique URLs. The file that sorts later by path gets a
suffix made from its path, so the rename is the same on every rebuild and every replica.
"""

from __future__ import annotations

import dataclasses
import hashlib
import operator
from collections.abc import Callable, Container, Iterable

from feedsvc.config import Settings
from feedsvc.content import derived_id, post_url
from feedsvc.model import Post, Problem

_SOURCE = operator.attrgetter("source")


def make_unique(posts: Iterable[Post], settings: Settings) -> tuple[list[Post], list[Problem]]:
    kept, problems, _, _ = _unique_names(posts, settings)
    return kept, problems


def _unique_names(posts: Iterable[Post], settings: Settings
                  ) -> tuple[list[Post], list[Problem], dict[str, Post], dict[str, Post]]:
    """make_unique's answer, and the posts by the ids and slugs they were given."""
    ordered = sorted(posts, key=_SOURCE)
    by_slug = {post.slug: post for post in ordered}
    by_id = {post.id: post for post in ordered}
    if len(by_slug) == len(ordered) == len(by_id):  # no clash, the usual case: dictionaries made in C
        return ordered, [], by_id, by_slug
    taken_ids: dict[str, Post] = {}
    taken_slugs: dict[str, Post] = {}
    kept, problems = [], []
    for post in ordered:
        slug_clash = taken_slugs.get(post.slug)
        if slug_clash is not None:
            post = _with_slug(post, _free(post.slug, "-", taken_slugs, post), settings)
            problems.append(Problem(path=post.source, line=None, message=(
                f"same slug as {slug_clash.source}; published at {post.url} instead")))
        if post.id in taken_ids:  # also when the new slug made a derived id someone else has
            id_clash = taken_ids[post.id]
            post = dataclasses.replace(post, id=_free(post.id, "#", taken_ids, post))
            problems.append(Problem(path=post.source, line=None, message=(
                f"same id as {id_clash.source}; published with id {post.id} instead")))
        taken_ids[post.id] = taken_slugs[post.slug] = post
        kept.append(post)
    return kept, problems, taken_ids, taken_slugs


def _free(name: str, separator: str, taken: Container[str], post: Post) -> str:
    """`name` with a suffix made from the post's path; tried again while that is taken too (by a post named like it)."""
    tries, candidate = 1, f"{name}{separator}{_suffix(post, 1)}"
    while candidate in taken:
        tries += 1
        candidate = f"{name}{separator}{_suffix(post, tries)}"
    return candidate


def _suffix(post: Post, tries: int) -> str:
    """From the path (the same on every rebuild); a second try, rarely needed, hashes the count too."""
    text = post.source if tries == 1 else f"{post.source}\x00{tries}"
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _with_slug(post: Post, slug: str, settings: Settings) -> Post:
    """A new slug and URL; a derived id follows the slug, the post's own id is kept."""
    derived = post.id == derived_id(post.slug, post.date, settings)
    return dataclasses.replace(post, slug=slug, url=post_url(slug, post.date, settings),
                               id=derived_id(slug, post.date, settings) if derived else post.id)


ONE_BY_ONE = 1000  # files changed at once up to which a change is applied alone; more (a first scan) go all through


class Published:
    """The folder's posts as make_unique publishes them, kept up to date one change at a time.

    While no two files clash, a change that brings no clash is applied on its own, so a new post
    in a folder of a million costs a few dictionary operations, not a pass over every post. Any
    clash, before or after, sends the whole folder through make_unique again: the same answer.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.by_source: dict[str, Post] = {}
        self.clashes: list[Problem] = []
        self._slugs: dict[str, Post] = {}  # slug -> the post published with it
        self._ids: dict[str, Post] = {}  # entry id -> the post published with it

    def update(self, changed: dict[str, Post | None],
               everything: Callable[[], Iterable[Post]]) -> tuple[list[Post], list[Post]]:
        """Files whose post changed (None: it has none now); `everything`: every file's post, for a
        whole pass. Returns the published posts that left and those that came (an edit is both)."""
        if (self.by_source and not self.clashes and len(changed) <= ONE_BY_ONE
                and (replaced := self._apply(changed)) is not None):
            removed = [post for source, post in replaced.items() if post is not None and changed[source] is not post]
            added = [post for source, post in changed.items() if post is not None and replaced[source] is not post]
            return removed, added
        old = self.by_source
        self.rebuild(everything())
        removed = [post for source, post in old.items() if self.by_source.get(source) is not post]
        added = [post for source, post in self.by_source.items() if old.get(source) is not post]
        return removed, added

    def rebuild(self, posts: Iterable[Post]) -> None:
        """All of them through make_unique, when what changed is not worth telling apart (a first scan)."""
        kept, self.clashes, self._ids, self._slugs = _unique_names(posts, self.settings)
        self.by_source = {post.source: post for post in kept}

    def _apply(self, changed: dict[str, Post | None]) -> dict[str, Post | None] | None:
        """Apply `changed` alone if it makes no clash, returning the posts it replaced; None if it would clash."""
        coming = [post for post in changed.values() if post is not None]
        if len({post.slug for post in coming}) < len(coming) or len({post.id for post in coming}) < len(coming):
            return None
        for post in coming:  # a name held by a file not in this change is a clash
            if (((holder := self._slugs.get(post.slug)) is not None and holder.source not in changed)
                    or ((holder := self._ids.get(post.id)) is not None and holder.source not in changed)):
                return None
        replaced = {source: self.by_source.pop(source, None) for source in changed}
        for old in replaced.values():
            if old is not None:
                del self._slugs[old.slug], self._ids[old.id]
        for post in coming:
            self.by_source[post.source] = post
            self._slugs[post.slug] = self._ids[post.id] = post
        return replaced
