"""(page) -> JSON Feed 1.1 bytes (jsonfeed.org/version/1.1), with the same ids and dates as Atom and RSS."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from feedsvc.model import Author, FeedFormat, FeedInfo, Page, Post

logger = logging.getLogger(__name__)
VERSION = "https://jsonfeed.org/version/1.1"


def render_json_feed(info: FeedInfo, page: Page, *, bodies: Mapping[str, str]) -> bytes:
    """Pure, as render: the entries' HTML comes in made, keyed by post source."""
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": info.title,
        "home_page_url": info.home_url,
        "feed_url": info.url(FeedFormat.JSON),
        "description": info.description,
        "language": info.language,
        "authors": [{"name": info.author}],
    }
    if info.icon or info.logo:
        feed["icon"] = info.logo or info.icon  # JSON Feed's icon is the large one (512x512)
    if info.icon:
        feed["favicon"] = info.icon
    if page.links.next:
        feed["next_url"] = page.links.next
    if page.hubs:
        feed["hubs"] = [{"type": "WebSub", "url": hub} for hub in page.hubs]
    summary_only = info.content == "summary"
    feed["items"] = [item for post in page.posts if (item := _safe_item(post, bodies, page.links.self, summary_only))]
    return json.dumps(feed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _safe_item(post: Post, bodies: Mapping[str, str], feed: str, summary_only: bool) -> dict[str, Any] | None:
    try:
        return _item(post, None if summary_only else bodies.get(post.source, ""))
    except Exception:  # one post a check missed costs its item, never the feed
        logger.exception("%s: left out of %s: it cannot be written as an item", post.source, feed)
        return None


def _item(post: Post, content: str | None) -> dict[str, Any]:
    """`content` None: a summary feed's item, whose content (one is required) is its summary, or else its title."""
    item: dict[str, Any] = {"id": post.id, "url": post.url, "title": post.title}
    if content is None:
        item["content_text"] = post.summary or post.title
    else:
        item["content_html"] = content
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
