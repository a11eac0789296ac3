"""Post bodies as sanitised HTML, read again from their files when a feed or page needs them.

Posts do not carry their bodies: at 100,000 posts they would be most of the memory, while
only the few hundred in feeds are ever shown. Each is rendered once per file version.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from feedsvc.config import Settings
from feedsvc.content import read_body
from feedsvc.markup import render_markdown
from feedsvc.model import Post

_CACHE_SIZE = 4096  # more than the distinct entries of all prebuilt feeds together


class Bodies:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.content_dir
        self.max_bytes = settings.max_post_bytes
        self._html: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def html(self, post: Post) -> str:
        key = (post.source, post.revision)
        with self._lock:
            if (found := self._html.get(key)) is not None:
                self._html.move_to_end(key)
                return found
        html = render_markdown(read_body(self._read(post.source)), post.url)
        with self._lock:
            self._html[key] = html
            while len(self._html) > _CACHE_SIZE:
                self._html.popitem(last=False)
        return html

    def _read(self, source: str) -> bytes:
        try:
            with open(self.root / source, "rb") as f:
                return f.read(min(self.max_bytes, os.fstat(f.fileno()).st_size + 1))
        except OSError:  # gone since the scan: the next rebuild drops the post
            return b""
