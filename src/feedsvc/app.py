"""create_app(): wiring and a first build, no threads; start_background() adds the rebuilder."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flask import Flask

from feedsvc import web
from feedsvc.config import Settings, load_settings
from feedsvc.fastpath import FastFeeds
from feedsvc.leader import LeaderLock
from feedsvc.metrics import Metrics
from feedsvc.polling import PollWatch
from feedsvc.publisher import Clock, OnChange, Publisher, utc_now
from feedsvc.purge import CachePurger
from feedsvc.schedule import RebuildSchedule
from feedsvc.watch import FolderWatch
from feedsvc.websub import WebSubNotifier

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, clock: Clock = utc_now, resume: bool = False) -> Flask:
    """A ready app serving the content as it is now; it refreshes only after start_background().

    `resume`: serve the feeds the last run saved, if any, and leave the first build to
    start_background() (see Publisher.resume); `serve` does, so a restart answers at once.
    """
    settings = settings or load_settings()
    publisher = Publisher(settings, clock=clock)
    if not (resume and publisher.resume()):
        publisher.rebuild()
    app = Flask(__name__)
    # werkzeug redirects `//` to `/` with a Location built from the Host header, which a cache in
    # front would keep: a forged Host would poison it. An address with `//` is simply not found.
    app.url_map.merge_slashes = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["feedsvc"] = publisher
    polls = PollWatch(min_interval=settings.min_poll_interval)
    metrics = app.extensions["feedsvc.metrics"] = Metrics(
        lambda: publisher.snapshot, lambda: publisher.builds, lambda: app.extensions.get("feedsvc.websub"),
        purger=lambda: app.extensions.get("feedsvc.purge"), pages=lambda: publisher.pages, polls=polls)
    app.register_blueprint(web.blueprint)
    app.wsgi_app = app.extensions["feedsvc.fastpath"] = FastFeeds(  # type: ignore[method-assign]
        app.wsgi_app, publisher, metrics, polls)
    return app


@dataclass(slots=True)
class Background:
    """The one rebuilder of a running service: the schedule and the folder watch."""

    publisher: Publisher
    schedule: RebuildSchedule
    watch: FolderWatch
    websub: WebSubNotifier | None = None
    purger: CachePurger | None = None

    def stop(self) -> None:
        self.watch.stop()
        self.schedule.shutdown()
        self.publisher.persist()
        for sender in (self.websub, self.purger):
            if sender is not None:
                sender.stop()


def start_background(app: Flask) -> Background:
    """Start the scheduler and watcher; called once per service by `serve`, never on import."""
    if "feedsvc.background" in app.extensions:
        raise RuntimeError("the rebuilder is already running for this app")
    publisher: Publisher = app.extensions["feedsvc"]
    settings = publisher.settings

    def rebuild(paths: set[str] | None) -> datetime | None:
        publisher.rebuild(paths)
        if publisher.unsaved:  # not after a rescan that found nothing new: it would only put the write off
            schedule.when_quiet(publisher.persist, seconds=30.0, at_most=300.0, job_id="persist")
        return publisher.next_due

    websub = purger = None
    if settings.websub_hubs:
        websub = app.extensions["feedsvc.websub"] = WebSubNotifier(settings.websub_hubs)
        websub.start()
    if settings.purge_urls:
        purger = app.extensions["feedsvc.purge"] = CachePurger(
            settings.purge_urls, base_url=settings.base_url, opml_etag=lambda: publisher.snapshot.opml_etag)
        purger.start()
    if tellers := [sender.notify for sender in (websub, purger) if sender is not None]:
        publisher.on_change = _from_the_leader(LeaderLock(Path(settings.leader_lock) if settings.leader_lock else None),
                                               tellers)
    schedule = RebuildSchedule(rebuild, interval=settings.rebuild_interval, debounce=settings.debounce,
                               prepare=publisher.begin_rescan)
    watch = FolderWatch(settings.content_dir, schedule.nudge, extensions=settings.extensions)
    schedule.start()
    try:
        watch.start()
    except (OSError, RuntimeError) as exc:  # inotify's watch or instance limit, a folder that went away
        logger.warning("file events unavailable (%s); changes show up at the rescan every %ss instead",
                       exc, settings.rebuild_interval)
    schedule.nudge(None)  # a full rescan: edits made since create_app(), and when future posts are due
    app.extensions["feedsvc.background"] = background = Background(publisher, schedule, watch, websub, purger)
    logger.info("watching %s; full rescan every %ss", settings.content_dir, settings.rebuild_interval)
    return background


def _from_the_leader(leader: LeaderLock, tellers: Sequence[OnChange]) -> OnChange:
    """The publisher's one change callback: the WebSub hubs and the cache tier, told only by the leader replica."""

    def tell(urls: list[str]) -> None:
        if leader.is_leader():
            for notify in tellers:
                notify(urls)

    return tell
