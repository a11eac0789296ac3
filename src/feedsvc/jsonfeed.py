"""(page) -> JSON Feed 1.1 bytes (jsonfeed.org/version/1.1), with the same ids and dates as Atom and RSS."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from feedsvc.config import Settings
from feedsvc.model import Author, FeedFormat, Page, Post
from feedsvc.urls import feed_title, feed_url

logger = logging.getLogger(__name__)
VERSION = "https://jsonfeed.org/version/1.1"


def render_json_feed(settings: Settings, page: Page, *, html: Callable[[Post], str]) -> bytes:
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": feed_title(settings, page.channel),
        "home_page_url": settings.site_url,
        "feed_url": feed_url(settings, page.channel, FeedFormat.JSON),
        "description": settings.site_description,
        "language": settings.language,
        "authors": [{"name": settings.author}],
    }
    if page.links.next:
        feed["next_url"] = page.links.next
    if page.hubs:
        feed["hubs"] = [{"type": "WebSub", "url": hub} for hub in page.hubs]
    feed["items"] = [item for post in page.posts if (item := _safe_item(post, html, page.links.self))]
    return json.dumps(feed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _safe_item(post: Post, html: Callable[[Post], str], feed: str) -> dict[str, Any] | None:
    try:
        return _item(post, html(post))
    except Exception:  # one post a check missed costs its item, never the feed
        logger.exception("%s: left out of %s: it cannot be written as an item", post.source, feed)
        return None


def _item(post: Post, content: str) -> dict[str, Any]:
    item: dict[str, Any] = {"id": post.id, "url": post.url, "title": post.title, "content_html": content}
    if post.summary:
        item["summary"] = post.summary
    if post.image:
        item["image"] = post.image
    item["date_published"] = post.date.isoformat()
    item["date_modified"] = post.updated.isoformat()
    if terms := list(dict.fromkeys(t.name for t in post.categories + post.tags)):
        item["tags"] = terms
    if post.authors:
        item["authors"] = [_author(a) for a in post.authors]
    return item


def _author(author: Author) -> dict[str, str]:
    found = {"name": author.name}
    if author.uri:
        found["url"] = author.uri
    return found
