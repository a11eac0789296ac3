"""File events in the content folder -> a nudge. The only user of watchdog.

Events are only hints: the rebuild re-stats the folder, so a missed or duplicated event
costs nothing but latency, and the periodic rescan covers mounts that send none.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from feedsvc.scan import is_post_file

logger = logging.getLogger(__name__)


Nudge = Callable[[list[str]], None]  # the absolute paths an event names


class _Handler(FileSystemEventHandler):
    def __init__(self, nudge: Nudge, extensions: tuple[str, ...]) -> None:
        self._nudge = nudge
        self._extensions = extensions

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        # Editors save by writing a temp file and renaming it: the post is the move's destination.
        paths = [os.fsdecode(p) for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        # A folder's own "modified" comes with every change inside it; created, moved or deleted
        # folders can hold posts.
        if (event.is_directory and event.event_type != "modified") or any(map(self._is_post, paths)):
            self._nudge(paths)

    def _is_post(self, path: str) -> bool:
        return is_post_file(os.path.basename(path), self._extensions)


class FolderWatch:
    """Watches `root` recursively and calls `nudge` on any change to a post file."""

    def __init__(self, root: Path, nudge: Nudge, *, extensions: tuple[str, ...]) -> None:
        self._observer = Observer()
        self._observer.daemon = True
        # The resolved root: event paths must match the scanner's, which resolves symlinks.
        self._observer.schedule(_Handler(nudge, extensions), str(root.resolve()), recursive=True)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        if self._observer.is_alive():  # it may never have started (see start_background)
            self._observer.join(timeout=5)
