"""Post bodies as sanitised HTML, read again from their files when a feed or page needs them.

Posts do not carry their bodies: at 100,000 posts they would be most of the memory, while
only the few hundred in feeds are ever shown. Each is rendered once per file version.
"""

from __future__ import annotations

import functools
import os

from feedsvc.config import Settings
from feedsvc.content import read_body
from feedsvc.markup import render_markdown, with_lead_image
from feedsvc.model import Post

_CACHE_SIZE = 4096  # more than the distinct entries of all prebuilt feeds together


class Bodies:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.content_dir
        self.max_bytes = settings.max_post_bytes
        self._render = functools.lru_cache(maxsize=_CACHE_SIZE)(self._render_file)

    def html(self, post: Post) -> str:
        """The post as readers show it: its lead image (if any) first, then the body (or else the summary)."""
        return self._render(post.source, post.revision, post.url, post.image, post.summary)

    def _render_file(self, source: str, revision: str, url: str, image: str | None, summary: str) -> str:
        """`revision` is only part of the cache key: a new file version renders anew."""
        return with_lead_image(render_markdown(read_body(self._read(source)), url), image, summary)

    def _read(self, source: str) -> bytes:
        try:
            with open(self.root / source, "rb") as f:
                return f.read(min(self.max_bytes, os.fstat(f.fileno()).st_size + 1))
        except OSError:  # gone since the scan: the next rebuild drops the post
            return b""
