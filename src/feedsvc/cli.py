"""The `feedsvc` command: serve, build, check, new, config.

Commands import what they need when they run: a parse worker started with `spawn` re-imports
the main script, and so this module, and needs none of the web, rendering or export code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from feedsvc import __version__
from feedsvc.config import ConfigError, Settings, load_settings_with_sources
from feedsvc.content import slug_for, to_utc
from feedsvc.files import write_new
from feedsvc.logs import configure_logging
from feedsvc.scan import is_post_file


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feedsvc", description="Serve RSS and Atom feeds from a folder of posts.")
    parser.add_argument("--version", action="version", version=f"feedsvc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve feeds over HTTP, rebuilding on changes")
    build = commands.add_parser("build", help="write every feed to files")
    check = commands.add_parser("check", help="report every post that cannot be used")
    config = commands.add_parser("config", help="print each setting's effective value and where it came from")
    for command in (serve, build, check, config):
        command.add_argument("--content", dest="content_dir", metavar="DIR", help="content folder")
        command.add_argument("--base-url", metavar="URL", help="public URL of the service")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8000)")
    build.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    output = config.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="as a JSON object, for scripts")
    output.add_argument("--markdown", action="store_true",
                        help="print the README's table of settings (defaults and meanings) instead")
    new = commands.add_parser("new", help="write a new post skeleton into the content folder and print its path")
    new.add_argument("title", help="the post's title")
    new.add_argument("--category", dest="categories", action="append", required=True, metavar="NAME",
                     help="a category (repeat for more)")
    new.add_argument("--tag", dest="tags", action="append", default=[], metavar="NAME", help="a tag (repeat for more)")
    new.add_argument("--content", dest="content_dir", metavar="DIR", help="content folder")
    new.add_argument("--date", metavar="WHEN", help="publication time, ISO 8601 (default: now); "
                     "without an offset it is in FEEDSVC_TIMEZONE")
    new.add_argument("--draft", action="store_true", help="mark it `draft: true`: never published until removed")
    doctor = commands.add_parser("doctor", help="check a public deployment from outside, as feed readers see it")
    doctor.add_argument("url", metavar="URL", help="the site's public address, e.g. https://feeds.example.org")
    doctor.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="for each request (default 10)")
    doctor.add_argument("--json", action="store_true", help="as a JSON object, for scripts")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `feedsvc check | head`: the reader has what it wanted; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush fails quietly
        return 1


def _main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config" and args.markdown:  # documentation: no settings needed, none can be wrong
        from feedsvc.settingsdoc import markdown_table

        print(markdown_table(), end="")
        return 0
    if args.command == "doctor":  # looks at a site from outside: no settings, no content folder
        return _doctor(args)
    flags = {k: v for k, v in vars(args).items() if k in ("content_dir", "base_url", "host", "port")}
    try:
        settings, sources = load_settings_with_sources(**flags)
        if not settings.content_dir.is_dir():
            raise ConfigError(f"FEEDSVC_CONTENT_DIR: content folder {str(settings.content_dir)!r} does not exist")
    except ConfigError as exc:
        print(f"feedsvc: {exc}", file=sys.stderr)
        return 2
    if args.command == "config":
        return _config(settings, sources, as_json=args.json)
    configure_logging(settings)
    return {"serve": _serve, "build": _build, "check": _check, "new": _new}[args.command](settings, args)


def _doctor(args: argparse.Namespace) -> int:
    from feedsvc.doctor import doctor

    return doctor(args.url, timeout=args.timeout, as_json=args.json)


def _config(settings: Settings, sources: dict[str, str], *, as_json: bool) -> int:
    from feedsvc.settingsdoc import json_report, text_report

    print((json_report if as_json else text_report)(settings, sources), end="")
    return 0


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
    from feedsvc.export import export_feeds
    from feedsvc.publisher import Publisher

    publisher = Publisher(settings)
    snapshot = publisher.rebuild()
    try:
        written = export_feeds(publisher, args.out)
    except OSError as exc:  # every file is either the old or the new one (files.atomic_file)
        print(f"feedsvc: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for problem in snapshot.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"wrote {len(written) - 1} feeds and an OPML list for {snapshot.post_count} posts to {args.out}")
    publisher.persist()
    return 0


def _check(settings: Settings, args: argparse.Namespace) -> int:
    from feedsvc.publisher import Publisher

    publisher = Publisher(settings)
    snapshot = publisher.rebuild()
    publisher.persist()
    for problem in snapshot.problems:
        print(problem)
    for warning in snapshot.warnings:
        print(f"warning: {warning}")
    print(f"{snapshot.post_count} posts, {snapshot.feed_count} feeds, {len(snapshot.problems)} problems, "
          f"{len(snapshot.warnings)} warnings", file=sys.stderr)
    return 1 if snapshot.problems else 0


def _new(settings: Settings, args: argparse.Namespace) -> int:
    from feedsvc.skeleton import SkeletonError, new_post

    try:
        when = datetime.now(settings.zone) if args.date is None else to_utc(args.date, settings.zone)
    except ValueError as exc:
        print(f"feedsvc: --date: {exc}", file=sys.stderr)
        return 2
    extension = ".md" if ".md" in settings.extensions else settings.extensions[0]
    taken = _slugs_in(settings.content_dir, settings.extensions)
    while True:
        try:
            relative, text = new_post(args.title, args.categories, args.tags, when, settings.zone,
                                      draft=args.draft, extension=extension, taken=taken)
        except SkeletonError as exc:
            print(f"feedsvc: {exc}", file=sys.stderr)
            return 2
        path = settings.content_dir / relative
        try:
            if write_new(path, text.encode("utf-8")):
                print(path)
                return 0
        except OSError as exc:
            print(f"feedsvc: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        taken.add(relative.stem)  # made since the folder was looked at: take the next number


def _slugs_in(folder: Path, extensions: tuple[str, ...]) -> set[str]:
    """The slugs the post files in `folder` get from their names, so a new post never shares one.

    (A post's own `slug:` is not seen; feedsvc then renames the later file's post and says so.)
    """
    taken: set[str] = set()
    for _, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        taken.update(slug_for(Path(name).stem) for name in files if is_post_file(name, extensions))
    return taken
