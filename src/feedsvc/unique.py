"""Keeps slugs and entry ids unique across the folder: a clash renames the later file's post, never drops it.

Feeds need unique ids and post pages unique URLs. The file that sorts later by path gets a
suffix made from its path, so the rename is the same on every rebuild and every replica.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Container, Iterable

from feedsvc.config import Settings
from feedsvc.content import derived_id, post_url
from feedsvc.model import Post, Problem


def make_unique(posts: Iterable[Post], settings: Settings) -> tuple[list[Post], list[Problem]]:
    taken_ids: dict[str, Post] = {}
    taken_slugs: dict[str, Post] = {}
    kept, problems = [], []
    for post in sorted(posts, key=lambda p: p.source):
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
    return kept, problems


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
