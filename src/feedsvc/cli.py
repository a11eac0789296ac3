"""The `feedsvc` command: serve, build, check."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from feedsvc import __version__
from feedsvc.config import ConfigError, Settings, load_settings
from feedsvc.export import export_feeds
from feedsvc.publisher import Publisher

logger = logging.getLogger("feedsvc")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feedsvc", description="Serve RSS and Atom feeds from a folder of posts.")
    parser.add_argument("--version", action="version", version=f"feedsvc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve feeds over HTTP, rebuilding on changes")
    build = commands.add_parser("build", help="write every feed to files")
    check = commands.add_parser("check", help="report every post that cannot be used")
    for command in (serve, build, check):
        command.add_argument("--content", dest="content_dir", metavar="DIR", help="content folder")
        command.add_argument("--base-url", metavar="URL", help="public URL of the service")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8000)")
    build.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs every job it adds
    flags = {k: v for k, v in vars(args).items() if k in ("content_dir", "base_url", "host", "port")}
    try:
        settings = load_settings(**flags)
        if not settings.content_dir.is_dir():
            raise ConfigError(f"FEEDSVC_CONTENT_DIR: content folder {str(settings.content_dir)!r} does not exist")
    except ConfigError as exc:
        print(f"feedsvc: {exc}", file=sys.stderr)
        return 2
    return {"serve": _serve, "build": _build, "check": _check}[args.command](settings, args)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from feedsvc.server import serve

    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"feedsvc {__version__} serving {settings.content_dir} on http://{host}:{settings.port}/", flush=True)
    try:
        serve(settings)
    except ConfigError as exc:
        print(f"feedsvc: {exc}", file=sys.stderr)
        return 2
    return 0


def _build(settings: Settings, args: argparse.Namespace) -> int:
    publisher = Publisher(settings)
    snapshot = publisher.rebuild()
    try:
        written = export_feeds(publisher, args.out)
    except OSError as exc:  # every file is either the old or the new one (export.write_atomically)
        print(f"feedsvc: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for problem in snapshot.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"wrote {len(written) - 1} feeds and an OPML list for {snapshot.post_count} posts to {args.out}")
    publisher.persist()
    return 0


def _check(settings: Settings, args: argparse.Namespace) -> int:
    publisher = Publisher(settings)
    snapshot = publisher.rebuild()
    publisher.persist()
    for problem in snapshot.problems:
        print(problem)
    print(f"{snapshot.post_count} posts, {len(snapshot.feeds)} feeds, {len(snapshot.problems)} problems",
          file=sys.stderr)
    return 1 if snapshot.problems else 0
