"""Post bodies as sanitised HTML, rendered once per file version and read only from that version.

Posts do not carry their bodies: at 100,000 posts they would be most of the memory, while
only the few hundred in feeds are ever shown. A body is read again under the scan's rules
(`scan.read_version`): if the file is no longer the version the post was parsed from (edited,
broken, swapped for a FIFO or a symlink out), its bytes are never paired with the old metadata.
The post's last rendering is shown instead, or its summary until the next rebuild catches up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from html import escape

from feedsvc.lru import SizedLRU
from feedsvc.markup import render_markdown, summary_html, with_lead_image
from feedsvc.model import Post
from feedsvc.yamlfront import read_body

logger = logging.getLogger(__name__)
MORE = re.compile(r"^[ \t]*<!--\s*more\s*-->[ \t]*$", re.MULTILINE | re.IGNORECASE)  # WordPress's and Hugo's
_CACHE_BYTES = 16 * 1024 * 1024  # the entries of the feeds made in each rebuild, and some; bounded whatever is asked
Key = tuple[str, str, str, str | None, str]  # source, revision, url, image, summary: what the HTML depends on


Read = Callable[[str, str], bytes | None]  # (source, revision) -> that version's bytes (scan.ContentFolder.read)


class Bodies:
    def __init__(self, read: Read) -> None:
        self._read = read
        self._cache: SizedLRU[Key, str] = SizedLRU(_CACHE_BYTES, len)
        self._kept: dict[str, tuple[str, str]] = {}  # source -> (revision, HTML) of posts whose file broke

    def html(self, post: Post) -> str:
        """The post as readers show it: its lead image (if any) first, then the body (or else the summary)."""
        return self._made(post, excerpt=False)

    def excerpt(self, post: Post) -> str:
        """The body up to its `<!--more-->` line, then a link to the rest; the whole body if it has none.

        For feeds whose content policy is `excerpt`: what readers show says there is more, and where.
        """
        return self._made(post, excerpt=True)

    def _made(self, post: Post, *, excerpt: bool) -> str:
        key = _key(post)
        if excerpt:
            key = ("more:" + post.source, *key[1:])
        if (found := self._cache.get(key)) is not None:
            return found
        data = self._read(post.source, post.revision)
        if data is None:  # the file is another version now: never its bytes under this post's metadata
            return self._last_known(post)
        body = read_body(data)
        cut = MORE.search(body) if excerpt else None
        try:
            html = with_lead_image(render_markdown(body if cut is None else body[:cut.start()], post.url),
                                   post.image, post.summary)
        except Exception:  # a body no check foresaw: its post shows its summary, the feeds go on
            logger.exception("%s: body cannot be rendered; showing its summary", post.source)
            html = summary_html(post.summary)
        if cut is not None:
            html += f'<p><a href="{escape(post.url)}">Continue reading \u201c{escape(post.title)}\u201d</a></p>'
        self._cache.put(key, html)
        return html

    def peek(self, post: Post) -> str | None:
        """The HTML already made for this version of the post, without reading or rendering."""
        return self._cache.get(_key(post))

    def keep(self, kept: Mapping[str, tuple[str, str]]) -> None:
        """Renderings of posts whose file is broken now, from a previous run (see parsecache)."""
        self._kept = dict(kept)

    def kept_for(self, posts: Iterable[Post]) -> dict[str, tuple[str, str]]:
        """source -> (revision, HTML) for these posts, where known: worth saving across a restart."""
        kept = {}
        for post in posts:
            html = self.peek(post)
            if html is None and (old := self._kept.get(post.source)) and old[0] == post.revision:
                html = old[1]
            if html is not None:
                kept[post.source] = (post.revision, html)
        return kept

    def _last_known(self, post: Post) -> str:
        old = self._kept.get(post.source)
        if old is not None and old[0] == post.revision:
            return old[1]
        return with_lead_image(summary_html(post.summary), post.image, post.summary)


def _key(post: Post) -> Key:
    return (post.source, post.revision, post.url, post.image, post.summary)
