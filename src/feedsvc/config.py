"""Settings: read once from defaults, an optional TOML file, FEEDSVC_* variables and flags.

This is the only module that reads `os.environ`. Later sources win: defaults < TOML file
(`FEEDSVC_CONFIG`) < environment < command-line flags. Each field's metadata (help, and how a
string becomes its value) is the one description of a setting: the README's table and
`feedsvc config` are made from it (feedsvc.settingsdoc).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feedsvc.filters import Filter, FilterError, parse_filter
from feedsvc.renames import check_renames, one_hop

ENV_PREFIX = "FEEDSVC_"


class ConfigError(ValueError):
    """A setting that cannot work; the message names the setting."""


def _setting(default: Any, help: str, parse: Callable[[str], Any] | None = None, *, secret: bool = False,
             default_doc: str | None = None) -> Any:
    # repr=False keeps a secret out of logs and tracebacks that print the settings.
    # default_doc: the default in words, where the value alone would mislead (it is worked out at start-up).
    metadata = {"help": help, "parse": parse, "secret": secret, "default_doc": default_doc}
    return field(default=default, metadata=metadata, repr=not secret)


def _bool(value: str) -> bool:
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ValueError(value)
    return text in ("true", "1", "yes", "on")


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _pairs(value: str) -> tuple[tuple[str, str], ...]:
    """`old=new, old2=new2` (the environment's spelling of the TOML table `[redirects]`)."""
    pairs: dict[str, str] = {}
    for part in _split_list(value):
        old, equals, new = part.partition("=")
        if not equals or old.strip() in pairs:  # a second rename of one channel: which one was meant?
            raise ValueError(part)
        pairs[old.strip()] = new.strip()
    return tuple(pairs.items())


CONTENT_POLICIES = ("full", "summary", "excerpt")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedSpec:
    """One feed defined in the configuration (a `[[feeds]]` table): its posts are those its filter
    holds (see feedsvc.filters), served at /feeds/<slug>.atom|.rss|.json like every other feed."""

    slug: str
    title: str
    description: str = ""
    filter: str = "everything"
    content: str = "full"  # full | summary (the description only) | excerpt (up to <!--more-->)
    max_bytes: int = 0  # a document's byte budget (e.g. 2000000 for Google News); entries that do not fit page on

    def rule(self) -> Filter:
        return parse_filter(self.filter)


FEATURED = FeedSpec(slug="featured", title="Featured", description="Posts marked featured", filter="featured")


def _feed_specs(value: Any) -> tuple[FeedSpec, ...]:
    """`[[feeds]]` tables from the TOML file, or the same as a JSON list (FEEDSVC_FEEDS)."""
    if isinstance(value, str) and not value.strip():
        return ()
    items = json.loads(value) if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError(value)
    specs = []
    for number, item in enumerate(items, 1):
        known = {f.name for f in dataclasses.fields(FeedSpec)}
        if unknown := sorted(set(item) - known):
            raise ConfigError(f"feeds: feed {number} ({item.get('slug', '?')!r}): unknown key {unknown[0]!r} "
                              f"(known: {', '.join(sorted(known))})")
        for key in ("slug", "title"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ConfigError(f"feeds: feed {number}: `{key}` is required and must be text")
        if not isinstance(item.get("max_bytes", 0), int) or isinstance(item.get("max_bytes"), bool):
            raise ConfigError(f"feeds: {item['slug']!r}: max_bytes must be a whole number of bytes")
        for key in ("description", "filter", "content"):
            if key in item and not isinstance(item[key], str):
                raise ConfigError(f"feeds: {item['slug']!r}: `{key}` must be text")
        specs.append(FeedSpec(**item))
    return tuple(specs)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every knob in one place; the README's configuration table is made from these fields.

    Build it with `Settings.create()` (or `load_settings()`), which normalises values first;
    constructing it directly only validates (a base URL ending in `/` is refused there).
    """

    content_dir: Path = _setting(Path("content"), "Folder of posts, read recursively.", Path)
    base_url: str = _setting(
        "http://127.0.0.1:8000", "Public URL of the service; every absolute URL in a feed starts with it "
        "(a trailing `/` is dropped).",
    )
    host: str = _setting("127.0.0.1", "Address `serve` listens on.")
    port: int = _setting(8000, "Port `serve` listens on.", int)
    max_items: int = _setting(
        50, "Entries in a feed's subscription document, newest first; older ones are on the pages it links to.", int,
    )
    rebuild_interval: float = _setting(
        60.0, "Seconds between full rescans (file events also trigger a rebuild).", float,
    )
    debounce: float = _setting(0.15, "Seconds to wait after a file event before rebuilding.", float)
    settle: float = _setting(
        0.1, "A file modified less than this many seconds ago may be half-written: it is read a moment later, "
        "and its last good version is served meanwhile.", float,
    )
    timezone: str = _setting(
        "UTC", "IANA zone for post dates written without an offset, the `{year}`/`{month}`/`{day}` of "
        "`FEEDSVC_POST_URL` and `feedsvc new`'s dates.",
    )
    site_title: str = _setting("feedsvc", "Title of the index page and the feeds (a channel's feed adds its name).")
    site_description: str = _setting("Latest posts", "Feed subtitle / RSS channel description; also on the index page.")
    author: str = _setting("feedsvc", "Feed author (Atom requires one); posts may name their own.")
    language: str = _setting("en", "Feed language (RFC 5646 tag).")
    feed_icon: str = _setting(
        "", "URL of a square icon for every feed (Atom `icon`, JSON Feed `favicon`/`icon`); empty: none.",
    )
    feed_logo: str = _setting(
        "", "URL of a logo for every feed (Atom `logo`, RSS `<image>`, JSON Feed `icon` unless an icon is set); "
        "empty: none.",
    )
    feeds: tuple[FeedSpec, ...] = _setting(
        (), "Feeds defined by a filter over front matter: `[[feeds]]` tables in the TOML file (`slug`, `title`, "
        "`description`, `filter`, `content`, `max_bytes`), or the same as a JSON list. See "
        "[Feeds of your own](#feeds-of-your-own). A `featured` feed exists unless one is defined here.",
        _feed_specs,
    )
    post_url: str = _setting(
        "{base_url}/posts/{slug}", "Link pattern for posts: `{base_url}`, `{slug}`, `{year}`, `{month}`, `{day}`.",
    )
    tag_authority: str = _setting(
        "", "Authority of derived `tag:` entry ids. Set it once and never change it, so ids survive a move to a "
        "new domain.", default_doc="host of the base URL",
    )
    extensions: tuple[str, ...] = _setting(
        (".md", ".markdown", ".txt"), "Post file endings, comma-separated (a TOML list).", _split_list,
    )
    max_post_bytes: int = _setting(4 * 1024 * 1024, "Larger post files are reported and skipped.", int)
    threads: int = _setting(
        2, "Python threads answering requests; more only add lock contention "
        "(granian moves the bytes on its own threads).", int,
    )
    stop_timeout: int = _setting(
        30, "Seconds `serve` gives itself to stop on SIGTERM (finish requests, write the cache) before it is "
        "killed. Writing the cache of a million posts takes about 20 s; give a container's stop a few more.", int,
    )
    cache_dir: str = _setting(
        "", "Folder of the cache (a pickle of parsed posts, rendered feeds and their stamps, one file per content "
        "folder) that lets a restart re-read only changed files and keep every validator, and every feed that has "
        "served entries; `off` disables it. Keep it outside the content folder; it is loaded only if no other user "
        "can write it (see [The cache](#the-cache)). An empty or relative `XDG_CACHE_HOME` counts as unset "
        "(XDG Base Directory spec); with neither it nor `HOME` there is no cache.",
        default_doc="`$XDG_CACHE_HOME/feedsvc` or `~/.cache/feedsvc`",
    )
    resume: str = _setting(
        "auto", "On a restart, `serve` answers at once with the feeds the last run saved in the cache, and reads "
        "the posts and compares the folder meanwhile; pages, tag and author feeds and post pages answer `503` with "
        "`Retry-After` until it is done, and `/healthz` says `warming`. `auto`: when the cache is large (some "
        "50,000 posts: a restart that would take seconds); `on`: always; `off`: never (nothing answers until the "
        "posts are read).",
    )
    cache_max_age: int = _setting(
        300, "`Cache-Control: max-age` of feeds, the OPML list and redirects, in seconds.", int,
    )
    tombstone_days: int = _setting(
        0, "Days a deleted post is announced in its feeds' Atom documents as an RFC 6721 tombstone "
        "(`at:deleted-entry`), so readers that understand them drop the entry; 0 (the default): never. The W3C "
        "validator predates RFC 6721 and warns about its namespace.", int,
    )
    min_poll_interval: int = _setting(
        0, "Seconds: a client (address and User-Agent) that fetches the same feed in full again sooner gets `429` "
        "with `Retry-After`; conditional requests are never refused. 0 (the default) refuses none. Behind a "
        "proxy or CDN every reader shares its address: set it there instead.", int,
    )
    max_limit: int = _setting(500, "Largest `?limit=N` a feed URL accepts (larger values are capped).", int)
    log_format: str = _setting("text", "`text`, or `json` for one JSON object per line (ours and the server's).")
    access_log: bool = _setting(
        True, "One log line per request, on stdout, written in batches every 0.2 s (a `SIGKILL` loses at most "
        "those); `false` turns it off.", _bool,
    )
    leader_lock: str = _setting(
        "", "A file on storage every replica shares; only the replica holding its lock sends WebSub "
        "notifications and cache purges. Its folder must exist.",
    )
    websub_hubs: tuple[str, ...] = _setting(
        (), "WebSub hub URLs, comma-separated: advertised in every feed and told of every change.", _split_list,
    )
    purge_urls: tuple[str, ...] = _setting(
        (), "Cache tier endpoints (Varnish with `deploy/varnish.vcl`, e.g. `http://127.0.0.1:6081`), comma-separated: "
        "after each rebuild they get a `BAN` for each changed channel's path and a `PURGE` for each changed page "
        "(see [A cache tier in front: Varnish](#a-cache-tier-in-front-varnish)); sent only by the replica holding "
        "`FEEDSVC_LEADER_LOCK`. Empty: none.", _split_list,
    )
    redirects: tuple[tuple[str, str], ...] = _setting(
        (), "Renamed channels, `old=new` paths (`category/old=category/new`), comma-separated; in the TOML file a "
        "`[redirects]` table. The old feeds answer `301` to the new ones, a chain of renames in one hop (see "
        "[A subscribed URL never just disappears](#a-subscribed-url-never-just-disappears)).", _pairs,
    )
    retired: tuple[str, ...] = _setting(
        (), "Retired channels (`tag/old`), comma-separated (a TOML list): their feeds answer `410 Gone`.", _split_list,
    )
    admin_token: str = _setting(
        "", "Bearer token (16+ printable ASCII characters, no spaces) that shows `/healthz`'s operator view: "
        "problem files and hub URLs. Without it nobody sees them over HTTP. Never printed with the settings.",
        secret=True,
    )

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def create(cls, **values: Any) -> Settings:
        """Settings from typed values, normalised first (as `load_settings()` does): the base URL
        without a trailing `/`, renames in one hop, retired channels sorted once each."""
        return cls(**_normalised(values))

    @property
    def feed_specs(self) -> tuple[FeedSpec, ...]:
        """The configured feeds, and `featured` (listed only while it has posts) unless one is configured."""
        if any(spec.slug == FEATURED.slug for spec in self.feeds):
            return self.feeds
        return (*self.feeds, FEATURED)

    def feed_spec(self, slug: str) -> FeedSpec | None:
        return next((spec for spec in self.feed_specs if spec.slug == slug), None)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def site_url(self) -> str:
        return self.base_url + "/"

    @property
    def cache_folder(self) -> Path | None:
        return None if self.cache_dir in ("", "off") else Path(self.cache_dir)

    @property
    def id_authority(self) -> str:
        return self.tag_authority or (urlsplit(self.base_url).hostname or "localhost")


def _normalised(values: dict[str, Any]) -> dict[str, Any]:
    """The one spelling of each value; whatever is wrong is left for _check() to report."""
    values = dict(values)
    if isinstance(base_url := values.get("base_url"), str):
        values["base_url"] = base_url.rstrip("/")
    if "redirects" in values:
        values["redirects"] = one_hop(values["redirects"])
    if "retired" in values:
        values["retired"] = tuple(sorted(set(values["retired"])))
    return values


# Whole-number settings and the least each may be (1 where 0 would leave nothing working).
_LEAST = {"port": 0, "max_items": 1, "max_post_bytes": 0, "threads": 1, "cache_max_age": 0, "max_limit": 1,
          "min_poll_interval": 0, "tombstone_days": 0, "stop_timeout": 1}


def _check(settings: Settings) -> None:
    url = urlsplit(settings.base_url)
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise ConfigError(f"FEEDSVC_BASE_URL must be an http(s) URL, got {settings.base_url!r}")
    if settings.base_url.endswith("/"):  # every URL would get a `//`
        raise ConfigError(f"FEEDSVC_BASE_URL must not end with '/' (Settings.create() drops it), "
                          f"got {settings.base_url!r}")
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"FEEDSVC_TIMEZONE: unknown time zone {settings.timezone!r}") from None
    for name, least in _LEAST.items():
        if getattr(settings, name) < least:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be positive")
    if settings.resume not in ("auto", "on", "off"):
        raise ConfigError(f"FEEDSVC_RESUME must be auto, on or off, got {settings.resume!r}")
    if settings.log_format not in ("text", "json"):
        raise ConfigError(f"FEEDSVC_LOG_FORMAT must be text or json, got {settings.log_format!r}")
    for name in ("websub_hubs", "purge_urls"):
        for url in getattr(settings, name):
            if (parts := urlsplit(url)).scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"{env_name(name)}: {url!r} is not an http(s) URL")
    if settings.rebuild_interval <= 0 or settings.debounce < 0 or settings.settle < 0:
        raise ConfigError("FEEDSVC_REBUILD_INTERVAL must be > 0, FEEDSVC_DEBOUNCE and FEEDSVC_SETTLE >= 0")
    try:
        settings.post_url.format(base_url="", slug="s", year=2000, month="01", day="01")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"FEEDSVC_POST_URL: bad pattern {settings.post_url!r} ({exc})") from None
    if settings.leader_lock and (Path(settings.leader_lock).is_dir() or not Path(settings.leader_lock).parent.is_dir()):
        raise ConfigError(f"FEEDSVC_LEADER_LOCK: {settings.leader_lock!r} must name a file in an existing folder")
    token = settings.admin_token
    if token and (len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token):
        raise ConfigError("FEEDSVC_ADMIN_TOKEN must be at least 16 printable ASCII characters without spaces "
                          "(e.g. from `python -c 'import secrets; print(secrets.token_urlsafe())'`)")
    _check_feeds(settings)
    for name in ("feed_icon", "feed_logo"):
        if (url := getattr(settings, name)) and (urlsplit(url).scheme not in ("http", "https") or
                                                 not urlsplit(url).hostname):
            raise ConfigError(f"{env_name(name)}: {url!r} is not an http(s) URL")
    try:
        check_renames(settings.redirects, settings.retired)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _check_feeds(settings: Settings) -> None:
    seen: set[str] = set()
    for spec in settings.feeds:
        where = f"feeds: {spec.slug!r}"
        if not _FEED_SLUG.fullmatch(spec.slug) or spec.slug == "all":
            raise ConfigError(f"{where}: a slug is lower-case letters and digits with single hyphens, not 'all'")
        if spec.slug in seen:
            raise ConfigError(f"{where}: defined twice")
        seen.add(spec.slug)
        try:
            spec.rule()
        except FilterError as exc:
            raise ConfigError(f"{where}: filter {spec.filter!r}: {exc}") from None
        if spec.content not in CONTENT_POLICIES:
            raise ConfigError(f"{where}: content must be one of {', '.join(CONTENT_POLICIES)}, got {spec.content!r}")
        if spec.max_bytes < 0 or 0 < spec.max_bytes < 10_000:
            raise ConfigError(f"{where}: max_bytes must be 0 (no budget) or at least 10000")


_FEED_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, value: Any, source: str) -> Any:
    """Turn a string (env, flag) or TOML value into the field's type, naming the source on error."""
    parse = FIELDS[name].metadata["parse"]
    if parse is _pairs and not isinstance(value, str):
        return _table(value, source)
    if parse is _feed_specs:
        try:
            return _feed_specs(value)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: expected [[feeds]] tables (a JSON list of objects in the environment), "
                              f"got {value!r}") from None
    if isinstance(value, list) and parse is _split_list:
        if not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{source}: expected a list of strings, got {value!r}")
        value = ",".join(value)
    if parse is None:
        return str(value)
    if parse in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{source}: expected a number, got {value!r}")
    if parse is _bool and isinstance(value, bool):
        return value
    try:
        return parse(value) if isinstance(value, str) or parse is not Path else Path(value)
    except (TypeError, ValueError):
        kind = {_bool: "true or false", _pairs: "old=new pairs, comma-separated"}.get(parse, parse.__name__)
        raise ConfigError(f"{source}: expected {kind}, got {value!r}") from None


def _table(value: Any, source: str) -> tuple[tuple[str, str], ...]:
    """The TOML `[redirects]` table: "old" = "new" channel paths."""
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: expected a table of \"old\" = \"new\" channel paths, got {value!r}")
    for old, new in value.items():
        if not isinstance(new, str):
            raise ConfigError(f"{source}: {old!r} = {new!r}: the new channel path must be a string")
    return tuple(value.items())


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"FEEDSVC_CONFIG: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"FEEDSVC_CONFIG: {path}: {exc}") from None
    values = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in FIELDS:
            raise ConfigError(f"{path}: unknown setting {key!r}")
        values[name] = _coerce(name, value, f"{path}: {key}")
    return values


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in FIELDS:
            raise ConfigError(f"unknown setting {key}")
        values[name] = _coerce(name, value, key)
    return values


def env_name(name: str) -> str:
    """The environment variable of a setting: `max_items` -> `FEEDSVC_MAX_ITEMS`."""
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    """The command-line flag that sets a setting (cli.py spells the content folder's `--content`)."""
    return "--content" if name == "content_dir" else "--" + name.replace("_", "-")


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from TOML, then env, then `overrides` (flags; None means not given)."""
    return load_settings_with_sources(env, **overrides)[0]


def load_settings_with_sources(env: Mapping[str, str] | None = None,
                               **overrides: Any) -> tuple[Settings, dict[str, str]]:
    """load_settings(), and where each value came from, by field name: `default`, `file <path>`,
    `env FEEDSVC_X` or `flag --x` (the source that won)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources = dict.fromkeys(FIELDS, "default")
    if config_path := env.get(ENV_PREFIX + "CONFIG"):
        from_file = _from_toml(Path(config_path))
        values.update(from_file)
        sources.update(dict.fromkeys(from_file, f"file {config_path}"))
    from_env = _from_env(env)
    values.update(from_env)
    sources.update({name: f"env {env_name(name)}" for name in from_env})
    if "cache_dir" not in values and (found := _user_cache_folder(env)):
        values["cache_dir"], sources["cache_dir"] = str(found[0] / "feedsvc"), f"default (${found[1]})"
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(name, value, flag_name(name)) if isinstance(value, str) else value
            sources[name] = f"flag {flag_name(name)}"
    return Settings.create(**values), sources


def _user_cache_folder(env: Mapping[str, str]) -> tuple[Path, str] | None:
    """$XDG_CACHE_HOME, or ~/.cache, and the variable it came from: the XDG Base Directory spec
    treats an empty or relative value as unset."""
    if (xdg := env.get("XDG_CACHE_HOME", "")) and Path(xdg).is_absolute():
        return Path(xdg), "XDG_CACHE_HOME"
    return (Path(home, ".cache"), "HOME") if (home := env.get("HOME")) else None


def to_env(settings: Settings) -> dict[str, str]:
    """FEEDSVC_* variables that load_settings() reads back as `settings` (for a worker process)."""
    return {env_name(name): as_text(getattr(settings, name)) for name in FIELDS}


def as_text(value: Any) -> str:
    """A setting's value as FEEDSVC_* variables spell it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(value).removesuffix(".0")  # 60, not 60.0
    if isinstance(value, tuple) and value and isinstance(value[0], FeedSpec):
        return json.dumps([{k: v for k, v in dataclasses.asdict(spec).items()} for spec in value])
    if isinstance(value, tuple):
        return ",".join("=".join(item) if isinstance(item, tuple) else item for item in value)
    return str(value)
