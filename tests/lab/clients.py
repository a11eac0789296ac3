"""Adapters that drive real feed clients written by other people, behind one small interface.

A server can be "correct" by its own tests and still be misread by the programs people actually use
(wrong validators, a Last-Modified that does not move, ids that change). So each adapter runs the
real program or library in its own folder, lets it poll exactly as it would for a user, and builds
``view()`` from the client's own storage (its database, its files, what it delivered), never by
re-parsing the feed on the client's behalf.

The clients differ in ways a test must allow for; each adapter states them as attributes:

``sends_validators``
    Whether repeat polls carry ``If-None-Match`` and/or ``If-Modified-Since``.
``unconditional_polls``
    How many polls of a newly subscribed feed go out before validators are sent (newsboat: 2, because
    it only stores the validators once the feed is already in its cache).
``edits``
    What an entry edited in place (same id, new title) does to ``view()``: ``"replace"`` (shown with
    the new title), ``"append"`` (old and new versions both kept, so the id shows up twice) or
    ``"ignore"`` (a delivery client: each id is delivered once, edits never reach the user).
``keeps_dropped``
    Whether entries the feed no longer carries stay in ``view()`` (the client keeps history).

``expected_view()`` turns those traits and the documents a client saw into the view it should show.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import feedparser

EditPolicy = Literal["replace", "append", "ignore"]

RUN_TIMEOUT = 60.0  # seconds; a poll of a few local feeds takes well under one


@dataclass(frozen=True, order=True)
class Entry:
    """What a user is shown for one entry: enough to spot a lost edit, a lost entry or a duplicate."""

    id: str
    title: str


class ClientError(RuntimeError):
    """The client program itself could not run (as opposed to reporting a failed fetch)."""


@runtime_checkable
class Client(Protocol):
    name: str
    sends_validators: bool
    unconditional_polls: int
    edits: EditPolicy
    keeps_dropped: bool
    errors: list[str]  # what the client reported as going wrong during the last poll

    def subscribe(self, feed_url: str) -> None: ...

    def poll(self) -> None: ...

    def view(self) -> dict[str, list[Entry]]: ...

    def close(self) -> None: ...


def expected_view(client: Client, seen: Sequence[Iterable[Entry]]) -> list[Entry]:
    """The view ``client`` should show after seeing each document in ``seen`` (oldest first), sorted.

    Pass only documents the client actually received (a poll answered 304 adds nothing new).
    """
    latest: dict[str, str] = {}
    first: dict[str, str] = {}
    versions: list[Entry] = []
    current: list[Entry] = []
    for document in seen:
        current = list(document)
        for entry in current:
            latest[entry.id] = entry.title
            first.setdefault(entry.id, entry.title)
            if entry not in versions:
                versions.append(entry)
    current_ids = {e.id for e in current}
    if client.edits == "append":
        return sorted(e for e in versions if client.keeps_dropped or e.id in current_ids)
    titles = first if client.edits == "ignore" else latest
    return sorted(Entry(i, t) for i, t in titles.items() if client.keeps_dropped or i in current_ids)


def _child_env(home: Path) -> dict[str, str]:
    """A child environment confined to the client's folder and never sent through a proxy."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(HOME=str(home), LANG="C.UTF-8", LC_ALL="C.UTF-8", NO_PROXY="127.0.0.1,localhost")
    for xdg in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env.pop(xdg, None)
    return env


def _run(args: Sequence[str], home: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(args),
            cwd=home,
            env=_child_env(home),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClientError(f"{args[0]}: {exc}") from exc


def _entries_of(parsed: Any) -> list[Entry]:
    return [Entry(str(e.get("id", "")), str(e.get("title", ""))) for e in parsed.get("entries", [])]


class FeedparserClient:
    """A typical aggregator built on ``feedparser``: conditional GET, and a 304 keeps what it had.

    It stores nothing but the last document's entries, so dropped entries disappear from its view.
    """

    name = "feedparser"
    sends_validators = True
    unconditional_polls = 1
    edits: EditPolicy = "replace"
    keeps_dropped = False

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = workdir
        self._feeds: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []

    def subscribe(self, feed_url: str) -> None:
        self._feeds.setdefault(feed_url, {"etag": None, "modified": None, "entries": []})

    def poll(self) -> None:
        self.errors = []
        for url, state in self._feeds.items():
            parsed = feedparser.parse(url, etag=state["etag"], modified=state["modified"])
            status = parsed.get("status")
            if status is None or status >= 400:
                self.errors.append(f"{url}: {status or parsed.get('bozo_exception')}")
                continue
            if status == 304:
                continue
            state["etag"] = parsed.get("etag")
            state["modified"] = parsed.get("modified")
            state["entries"] = _entries_of(parsed)

    def view(self) -> dict[str, list[Entry]]:
        return {url: list(state["entries"]) for url, state in self._feeds.items()}

    def close(self) -> None:
        pass


class ReaderClient:
    """The ``reader`` library: a real feed-reader database that keeps every entry it has ever seen.

    ``poll()`` asks for every feed regardless of reader's own schedule (as a user pressing "update"),
    since a test wants each poll to reach the server. reader updates an edited entry in place, but
    stops applying content-only edits to one entry after 24 consecutive ones.
    """

    name = "reader"
    sends_validators = True
    unconditional_polls = 1
    edits: EditPolicy = "replace"
    keeps_dropped = True

    def __init__(self, workdir: Path) -> None:
        if importlib.util.find_spec("sgmllib") is None:
            # reader's vendored feedparser imports the old top-level ``sgmllib`` module, which newer feedparser
            # releases no longer pull in; reader's own switch makes it use the installed feedparser instead.
            os.environ.setdefault("READER_NO_VENDORED_FEEDPARSER", "1")
        from reader import make_reader

        self.workdir = workdir
        self._urls: list[str] = []
        self._reader = make_reader(str(workdir / "reader.sqlite"))
        self.errors: list[str] = []

    def subscribe(self, feed_url: str) -> None:
        self._reader.add_feed(feed_url, exist_ok=True)
        self._urls.append(feed_url)

    def poll(self) -> None:
        self.errors = [
            f"{result.url}: {result.value!r}"
            for result in self._reader.update_feeds_iter(scheduled=False)
            if isinstance(result.value, Exception)
        ]

    def view(self) -> dict[str, list[Entry]]:
        return {
            url: [Entry(e.id, e.title or "") for e in self._reader.get_entries(feed=url)]
            for url in self._urls
        }

    def close(self) -> None:
        self._reader.close()


class NewsboatClient:
    """newsboat, run headless with ``-x reload``; its view is its sqlite cache (``rss_item``).

    newsboat fetches with libcurl and passes the stored Last-Modified as a libcurl time condition, so a
    200 whose Last-Modified is not newer than that is silently treated as "not modified".
    """

    name = "newsboat"
    sends_validators = True
    unconditional_polls = 2
    edits: EditPolicy = "replace"
    keeps_dropped = True

    def __init__(self, workdir: Path, program: str = "newsboat") -> None:
        self.workdir = workdir
        self.program = shutil.which(program) or program
        self.urls_file = workdir / "urls"
        self.config_file = workdir / "config"
        self.cache_file = workdir / "cache.db"
        self.log_file = workdir / "newsboat.log"
        self._urls: list[str] = []
        self.urls_file.write_text("")
        self.config_file.write_text("")
        self.errors: list[str] = []

    def subscribe(self, feed_url: str) -> None:
        if feed_url not in self._urls:
            self._urls.append(feed_url)
        self.urls_file.write_text("".join(f"{url}\n" for url in self._urls))

    def poll(self) -> None:
        self.log_file.unlink(missing_ok=True)
        args = [self.program, "-u", self.urls_file, "-c", self.cache_file, "-C", self.config_file]
        # Log level 1 is "user error": exactly the fetch failures newsboat would show in its status line.
        args += ["-l", "1", "-d", self.log_file, "-x", "reload"]
        done = _run([str(a) for a in args], self.workdir)
        if done.returncode != 0:
            raise ClientError(f"newsboat exited {done.returncode}: {done.stderr or done.stdout}")
        log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        self.errors = [line for line in log.splitlines() if line.strip()]

    def view(self) -> dict[str, list[Entry]]:
        out: dict[str, list[Entry]] = {url: [] for url in self._urls}
        if not self.cache_file.exists():
            return out
        with contextlib.closing(sqlite3.connect(self.cache_file)) as db:
            rows = db.execute("SELECT feedurl, guid, title FROM rss_item WHERE deleted = 0 ORDER BY id").fetchall()
        for feedurl, guid, title in rows:
            out.setdefault(feedurl, []).append(Entry(guid, title))
        return out

    def close(self) -> None:
        pass


# sfeed's README ("Caching, incremental data updates and bandwidth-saving"), used as written.
SFEED_FETCH = """\
# fetch(name, url, feedfile)
fetch() {
	etag="$HOME/.sfeed/etags/$(basename "$3")"
	curl \\
		-L --max-redirs 0 -H "User-Agent:" -f -s -m 15 \\
		--compressed \\
		--etag-save "${etag}" --etag-compare "${etag}" \\
		-z "${etag}" \\
		"$2" 2>/dev/null
}
"""


class SfeedClient:
    """sfeed_update with the README's ETag-caching ``fetch()``; its view is the TSV file per feed.

    sfeed merges old and new lines uniquely on (id, title, link), so an edited title leaves both
    versions in the file. The README's fetch passes ``-z`` the ETag file, whose mtime is the time of
    the previous poll: a 200 whose Last-Modified is not after that poll is dropped by curl, yet the
    new ETag is saved, so that change is not seen until the feed changes again.
    """

    name = "sfeed"
    sends_validators = True
    unconditional_polls = 1
    edits: EditPolicy = "append"
    keeps_dropped = True

    def __init__(self, workdir: Path, program: str = "sfeed_update") -> None:
        self.workdir = workdir
        self.program = shutil.which(program) or program
        self.feeds_dir = workdir / ".sfeed" / "feeds"
        self.etags_dir = workdir / ".sfeed" / "etags"
        self.rc_file = workdir / "sfeedrc"
        self.etags_dir.mkdir(parents=True, exist_ok=True)
        self._names: dict[str, str] = {}
        self._write_rc()
        self.errors: list[str] = []

    def _write_rc(self) -> None:
        lines = [f"\tfeed {shlex.quote(name)} {shlex.quote(url)}\n" for url, name in self._names.items()]
        self.rc_file.write_text(SFEED_FETCH + "\nfeeds() {\n" + "".join(lines) + "\t:\n}\n")

    def subscribe(self, feed_url: str) -> None:
        if feed_url not in self._names:
            self._names[feed_url] = f"feed{len(self._names) + 1:03d}"
            self._write_rc()

    def poll(self) -> None:
        done = _run([self.program, str(self.rc_file)], self.workdir)
        self.errors = [line for line in (done.stderr or "").splitlines() if line.strip()]
        if done.returncode != 0 and not self.errors:
            self.errors.append(f"sfeed_update exited {done.returncode}")

    def view(self) -> dict[str, list[Entry]]:
        out: dict[str, list[Entry]] = {}
        for url, name in self._names.items():
            path = self.feeds_dir / name
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []
            # sfeed(5): timestamp, title, link, content, content-type, id, author, enclosure, category
            fields = [line.split("\t") for line in lines if line]
            out[url] = [Entry(f[5], f[1]) for f in fields if len(f) > 5]
        return out

    def close(self) -> None:
        pass


# Run by feed2exec's exec output plugin once per delivered item; appends what was delivered.
_DELIVER = """\
import json, sys
with open(sys.argv[1], "a", encoding="utf-8") as out:
    out.write(json.dumps(sys.argv[2:]) + "\\n")
"""


class Feed2execClient:
    """feed2exec, the "run a command per new item" client, with its exec output plugin.

    It remembers delivered ids in its own database and delivers each id once, so ``view()`` is the
    accumulated list of deliveries (duplicates would show a re-delivery) and an edit is never shown.
    Conditional requests come from its CacheControl-based HTTP cache (only responses with an ETag are
    cached; a fresh ``Cache-Control: max-age`` response is not even re-requested).
    """

    name = "feed2exec"
    sends_validators = True
    unconditional_polls = 1
    edits: EditPolicy = "ignore"
    keeps_dropped = True

    def __init__(self, workdir: Path, python: str = sys.executable) -> None:
        self.workdir = workdir
        self.python = python
        self.config_file = workdir / "feed2exec.ini"
        self.db_file = workdir / "feed2exec.db"
        self.deliveries = workdir / "delivered.jsonl"
        self.deliver_script = workdir / "deliver.py"
        self.deliver_script.write_text(_DELIVER)
        self._urls: list[str] = []
        self.errors: list[str] = []

    def _cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        base = [self.python, "-m", "feed2exec", "--config", str(self.config_file), "--database", str(self.db_file)]
        done = _run([*base, *args], self.workdir)
        if done.returncode != 0:
            raise ClientError(f"feed2exec {args[0]} exited {done.returncode}: {done.stderr[-2000:]}")
        return done

    def subscribe(self, feed_url: str) -> None:
        if feed_url in self._urls:
            return
        self._urls.append(feed_url)
        command = shlex.join([self.python, str(self.deliver_script), str(self.deliveries)])
        args = f"{command} {{feed[url]}} {{item.id}} {{item.title}}"
        self._cli("add", f"feed{len(self._urls):03d}", feed_url, "--output", "exec", "--args", args)

    def poll(self) -> None:
        done = self._cli("fetch")
        self.errors = [line for line in done.stderr.splitlines() if line.strip()]

    def view(self) -> dict[str, list[Entry]]:
        out: dict[str, list[Entry]] = {url: [] for url in self._urls}
        if self.deliveries.exists():
            for line in self.deliveries.read_text(encoding="utf-8").splitlines():
                url, guid, title = json.loads(line)
                out.setdefault(url, []).append(Entry(guid, title))
        return out

    def close(self) -> None:
        pass


class CurlClient:
    """The shell-script client: ``curl -R -z FILE`` keeps one file per feed, fresh only when it changed.

    ``-R`` sets the file's mtime to the response's Last-Modified and ``-z FILE`` sends that back as
    If-Modified-Since (no ETag). libcurl also drops a 200 whose Last-Modified is not newer than the
    condition time and reports it as 304, so the kept file stays as it was.
    """

    name = "curl"
    sends_validators = True
    unconditional_polls = 1
    edits: EditPolicy = "replace"
    keeps_dropped = False

    def __init__(self, workdir: Path, program: str = "curl") -> None:
        self.workdir = workdir
        self.program = shutil.which(program) or program
        self._files: dict[str, Path] = {}
        self.last_codes: dict[str, str] = {}  # what curl reported (a dropped 200 shows as 304)
        self.errors: list[str] = []

    def subscribe(self, feed_url: str) -> None:
        self._files.setdefault(feed_url, self.workdir / f"feed{len(self._files) + 1:03d}.xml")

    def poll(self) -> None:
        self.errors = []
        for url, kept in self._files.items():
            fresh = kept.with_name(kept.name + ".new")
            fresh.unlink(missing_ok=True)
            args = [self.program, "-f", "-s", "-S", "-R", "-z", str(kept), "-o", str(fresh), "-w", "%{http_code}", url]
            done = _run(args, self.workdir)
            self.last_codes[url] = done.stdout.strip()
            if done.returncode != 0:
                self.errors.append(f"{url}: curl exited {done.returncode}: {done.stderr.strip()}")
                fresh.unlink(missing_ok=True)
            elif fresh.exists() and fresh.stat().st_size > 0:
                os.replace(fresh, kept)  # rename keeps the -R mtime, which the next -z reads

    def view(self) -> dict[str, list[Entry]]:
        return {
            url: _entries_of(feedparser.parse(path.read_bytes())) if path.exists() else []
            for url, path in self._files.items()
        }

    def close(self) -> None:
        pass


ADAPTERS: dict[str, type[Any]] = {
    cls.name: cls
    for cls in (FeedparserClient, ReaderClient, NewsboatClient, SfeedClient, Feed2execClient, CurlClient)
}

# What each adapter needs: programs on PATH and Python modules; a test skips the client when one is missing.
REQUIREMENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "feedparser": ((), ("feedparser",)),
    "reader": ((), ("reader",)),
    "newsboat": (("newsboat",), ()),
    "sfeed": (("sfeed_update", "sfeed", "curl"), ()),
    "feed2exec": ((), ("feed2exec",)),
    "curl": (("curl",), ()),
}


def missing(name: str) -> list[str]:
    """What client ``name`` needs that is not installed (empty when it can run)."""
    programs, modules = REQUIREMENTS[name]
    return [p for p in programs if shutil.which(p) is None] + [
        m for m in modules if importlib.util.find_spec(m) is None
    ]


def make_client(name: str, workdir: Path) -> Client:
    """Build adapter ``name`` working in ``workdir`` (created if needed)."""
    workdir.mkdir(parents=True, exist_ok=True)
    client: Client = ADAPTERS[name](workdir)
    return client
