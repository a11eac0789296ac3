"""`feedsvc doctor URL`: a public deployment checked from outside, the way feed readers see it.

Every request goes to the public URL, so through whatever CDN or proxy is in front (and through the
proxy that the standard environment variables name, as urllib reads them), with the User-Agents and
headers that real readers send. Nothing here knows how the site is served: `feedsvc serve`, nginx
over a `feedsvc build` export and a CDN in front of either all answer the same questions.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from typing import Literal, TextIO
from urllib.parse import urljoin, urlsplit
from xml.etree import ElementTree

from feedsvc.probe import Fetched, FetchError, fetch

Level = Literal["ok", "note", "warn", "FAIL"]

# (name, User-Agent, asks for gzip). The first is the plain GET that is timed and revalidated: newsboat
# (libcurl) sends no Accept-Encoding by default and only If-Modified-Since when revalidating; the others
# ask for gzip, as they do in the wild.
READERS = (
    ("newsboat", "Newsboat/2.40.0 (Linux x86_64)", False),
    ("NetNewsWire", "NetNewsWire (RSS Reader; https://netnewswire.com/)", True),
    ("Feedly", "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 3 subscribers; like FeedFetcher-Google)", True),
    ("Miniflux", "Mozilla/5.0 (compatible; Miniflux/2.2.6; +https://miniflux.app)", True),
    ("feedparser", "feedparser/6.0.11 +https://github.com/kurtmckee/feedparser/", True),
)
FEED_TYPES = {"application/atom+xml": "atom", "application/rss+xml": "rss", "application/feed+json": "json"}
_EXTENSIONS = {"atom": "application/atom+xml", "rss": "application/rss+xml", "json": "application/feed+json"}
_GENERIC = {"atom": {"application/xml", "text/xml"}, "rss": {"application/xml", "text/xml"},
            "json": {"application/json"}}
_SMALL = 1024  # bytes; below this gzip saves less than its headers cost (web.py's threshold for pages)
_SLOW = 2.0  # seconds for the plain GET; readers give up after 10-30


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    name: str
    level: Level
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedReport:
    url: str
    checks: tuple[Check, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    site: str
    checks: tuple[Check, ...]  # finding the feeds
    feeds: tuple[FeedReport, ...]

    def count(self, level: Level) -> int:
        return sum(c.level == level for c in (*self.checks, *(c for f in self.feeds for c in f.checks)))


class _AlternateLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        media_type = found.get("type", "").partition(";")[0].strip().lower()
        if (tag == "link" and "alternate" in found.get("rel", "").lower().split()
                and media_type in FEED_TYPES and found.get("href", "").strip()):
            self.hrefs.append(found["href"].strip())


def feeds_in_index(html: str, base: str) -> list[str]:
    """The feeds a reader given the site's address finds: its `<link rel="alternate">` autodiscovery links."""
    parser = _AlternateLinks()
    parser.feed(html)
    parser.close()
    return _unique(urljoin(base, href) for href in parser.hrefs)


def feeds_in_opml(document: bytes, base: str) -> list[str]:
    """The feeds a reader imports from an OPML list (its outlines' xmlUrl); ValueError if it is not one."""
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as exc:
        raise ValueError(f"not XML ({exc})") from exc
    if root.tag != "opml":
        raise ValueError(f"not an OPML list (<{root.tag}>)")
    urls = (element.get("xmlUrl", "").strip() for element in root.iter()
            if element.tag.rpartition("}")[2] == "outline")
    return _unique(urljoin(base, url) for url in urls if url)


def _unique(urls: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(urls))


def is_challenge(media_type: str, body: bytes) -> bool:
    """An HTML page where a feed was expected: what a CDN's bot wall ("Just a moment...") answers readers."""
    start = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:14].lower()
    return media_type in ("text/html", "application/xhtml+xml") or start.startswith((b"<!doctype html", b"<html"))


def same_url(a: str, b: str) -> bool:
    """Equal as readers compare a self link with where they subscribed: scheme and host in any case, and
    a trailing slash either way."""
    first, second = urlsplit(a), urlsplit(b)
    return ((first.scheme.lower(), first.netloc.lower(), first.path.rstrip("/"), first.query)
            == (second.scheme.lower(), second.netloc.lower(), second.path.rstrip("/"), second.query))


def feed_format(url: str, media_type: str, body: bytes) -> str:
    """"atom", "rss" or "json": by the URL's extension, then the content type, then the first bytes."""
    extension = urlsplit(url).path.rpartition(".")[2].lower()
    if extension in _EXTENSIONS:
        return extension
    if media_type in FEED_TYPES:
        return FEED_TYPES[media_type]
    start = body.lstrip()[:200]
    return "json" if start.startswith(b"{") else "atom" if b"<feed" in start else "rss"


def content_type_check(fmt: str, media_type: str) -> Check:
    expected = _EXTENSIONS[fmt]
    if media_type == expected:
        return Check(name="content type", level="ok", detail=media_type)
    if media_type in _GENERIC[fmt]:
        return Check(name="content type", level="warn", detail=f"{media_type}, generic: {expected} is the type")
    return Check(name="content type", level="FAIL", detail=f"{media_type or 'none'} for a {fmt} feed, not {expected}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Parsed:
    level: Level  # FAIL: a reader cannot use it; warn: not parsed here
    detail: str
    self_url: str | None = None


def parse_feed(fmt: str, body: bytes) -> Parsed:
    """The feed as a reader parses it: JSON Feed by its "version", Atom and RSS with feedparser."""
    return _parse_json(body) if fmt == "json" else _parse_xml(body)


def _parse_json(body: bytes) -> Parsed:
    try:
        document = json.loads(body)
    except ValueError as exc:
        return Parsed(level="FAIL", detail=f"not JSON ({exc})")
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or not version.startswith("https://jsonfeed.org/version/"):
        return Parsed(level="FAIL", detail=f"not a JSON Feed (\"version\": {version!r})")
    items, feed_url = document.get("items"), document.get("feed_url")
    return Parsed(level="ok", detail=f"JSON Feed {version.rpartition('/')[2]}, "
                  f"items: {len(items) if isinstance(items, list) else 0}",
                  self_url=feed_url if isinstance(feed_url, str) else None)


def _parse_xml(body: bytes) -> Parsed:
    try:
        import feedparser  # a test dependency of feedsvc: needed only here, and only when a feed is checked
    except ImportError:
        return Parsed(level="warn", detail="not parsed: feedparser is not installed")
    parsed = feedparser.parse(body)
    if parsed.get("bozo"):
        return Parsed(level="FAIL", detail=f"feedparser: {parsed.get('bozo_exception')}")
    if not (version := str(parsed.get("version") or "")):
        return Parsed(level="FAIL", detail="feedparser recognises no feed in it")
    links = parsed.get("feed", {}).get("links", [])
    self_url = next((str(link["href"]) for link in links if link.get("rel") == "self" and link.get("href")), None)
    return Parsed(level="ok", detail=f"{version}, entries: {len(parsed.get('entries', []))}", self_url=self_url)


def self_link_check(self_url: str | None, fetched_url: str) -> Check:
    """Readers that find another address in the self link subscribe to that one, or see two feeds."""
    if self_url is None:
        return Check(name="self link", level="warn", detail="none: readers cannot tell the feed's own address")
    if not same_url(self_url, fetched_url):
        return Check(name="self link", level="FAIL", detail=f"{self_url} is not the URL fetched, {fetched_url}")
    return Check(name="self link", level="ok", detail=self_url)


def conditional_check(name: str, answer: Fetched | str, full: Fetched) -> Check:
    """A revalidation: 304, or the whole feed again (which a reader downloads and parses every time)."""
    if isinstance(answer, str):
        return Check(name=name, level="FAIL", detail=answer)
    if answer.status == 304:
        return Check(name=name, level="ok", detail="304 Not Modified")
    if answer.status == 200 and answer.body == full.body:
        return Check(name=name, level="FAIL", detail="200 with the same body: validators not honoured")
    if answer.status == 200:
        return Check(name=name, level="warn", detail="200 with another body: changed meanwhile, or unstable bytes")
    return Check(name=name, level="FAIL", detail=f"{answer.status} to a conditional GET")


def gzip_check(plain: Fetched, zipped: Fetched | None) -> list[Check]:
    if plain.encoding:
        return [Check(name="gzip", level="FAIL", detail=f"Content-Encoding: {plain.encoding} sent unasked")]
    if zipped is None:
        return [Check(name="gzip", level="FAIL", detail="no reader asking for gzip got the feed")]
    if zipped.encoding != "gzip":
        if len(zipped.body) < _SMALL:
            return [Check(name="gzip", level="note", detail=f"not compressed, but only {len(zipped.body)} bytes")]
        return [Check(name="gzip", level="FAIL", detail=f"not compressed for Accept-Encoding: gzip "
                      f"({len(zipped.body)} bytes)")]
    checks = [Check(name="gzip", level="ok", detail=f"{len(zipped.body)} bytes sent as {zipped.size}")]
    if "accept-encoding" not in zipped.headers.get("vary", "").lower():
        checks.append(Check(name="vary", level="warn",
                            detail="no Vary: Accept-Encoding: a cache may send gzip to a client that cannot read it"))
    return checks


def _attempt(url: str, headers: Mapping[str, str], timeout: float) -> Fetched | str:
    try:
        return fetch(url, headers, timeout=timeout)
    except FetchError as exc:
        return str(exc)


def _reader_headers(user_agent: str, asks_gzip: bool) -> dict[str, str]:
    return {"User-Agent": user_agent, **({"Accept-Encoding": "gzip"} if asks_gzip else {})}


def check_feed(url: str, *, timeout: float) -> FeedReport:
    answers = {name: _attempt(url, _reader_headers(agent, asks), timeout) for name, agent, asks in READERS}
    plain = answers[READERS[0][0]]
    checks = [Check(name="redirect", level="warn", detail=f"{code} to {target}")
              for code, target in (plain.hops if isinstance(plain, Fetched) else ())]
    checks.append(_readers_check(answers))
    if isinstance(plain, Fetched) and plain.status == 200:
        checks.append(_body_check(answers))
        if not is_challenge(plain.media_type, plain.body):
            checks += _feed_checks(plain, answers, timeout)
    return FeedReport(url=url, checks=tuple(checks))


def _readers_check(answers: Mapping[str, Fetched | str]) -> Check:
    """Every reader gets a 200; the others grouped by what they got ("403 for Feedly, Miniflux")."""
    wrong: dict[str, list[str]] = {}
    for name, answer in answers.items():
        if isinstance(answer, str) or answer.status != 200:
            wrong.setdefault(answer if isinstance(answer, str) else str(answer.status), []).append(name)
    if wrong:
        return Check(name="readers", level="FAIL",
                     detail="; ".join(f"{problem} for {', '.join(names)}" for problem, names in wrong.items()))
    return Check(name="readers", level="ok", detail=f"200 for {', '.join(answers)}")


def _body_check(answers: Mapping[str, Fetched | str]) -> Check:
    """HTML where a feed was expected: an HTML page (a bot wall, an error page) or a feed labelled as one."""
    wrong: dict[str, list[str]] = {}
    for name, answer in answers.items():
        if isinstance(answer, Fetched) and answer.status == 200 and is_challenge(answer.media_type, answer.body):
            html = is_challenge("", answer.body)
            reason = "an HTML page, not a feed (a CDN's bot wall?)" if html else f"served as {answer.media_type}"
            wrong.setdefault(reason, []).append(name)
    if wrong:
        return Check(name="feed body", level="FAIL",
                     detail="; ".join(f"{reason}, for {', '.join(names)}" for reason, names in wrong.items()))
    return Check(name="feed body", level="ok", detail="a feed, not an HTML page")


def _feed_checks(plain: Fetched, answers: Mapping[str, Fetched | str], timeout: float) -> list[Check]:
    fmt = feed_format(plain.url, plain.media_type, plain.body)
    parsed = parse_feed(fmt, plain.body)
    checks = [content_type_check(fmt, plain.media_type), Check(name="parses", level=parsed.level, detail=parsed.detail)]
    if parsed.level == "ok":
        checks.append(self_link_check(parsed.self_url, plain.url))
    checks += _validator_checks(plain, timeout)
    zipped = next((answer for name, _, asks in READERS if asks and isinstance(answer := answers[name], Fetched)
                   and answer.status == 200), None)
    checks += gzip_check(plain, zipped)
    control = plain.headers.get("cache-control")
    checks.append(Check(name="cache-control", level="ok", detail=control) if control
                  else Check(name="cache-control", level="FAIL", detail="missing: caches and readers guess"))
    checks.append(Check(name="time", level="warn" if plain.seconds > _SLOW else "ok",
                        detail=f"{plain.seconds * 1000:.0f} ms for the plain GET"))
    return checks


def _validator_checks(plain: Fetched, timeout: float) -> list[Check]:
    """ETag and Last-Modified, each revalidated on its own: libcurl-based readers (newsboat, `curl -z`)
    send only If-Modified-Since, even when the feed has an ETag."""
    etag, modified = plain.headers.get("etag"), plain.headers.get("last-modified")
    if not etag and not modified:
        return [Check(name="validators", level="FAIL",
                      detail="neither ETag nor Last-Modified: every poll downloads the whole feed")]
    agent = READERS[0][1]
    checks = []
    if etag:
        answer = _attempt(plain.url, {"User-Agent": agent, "If-None-Match": etag}, timeout)
        checks.append(conditional_check("if-none-match", answer, plain))
    else:
        checks.append(Check(name="validators", level="note", detail="no ETag: Last-Modified alone"))
    if modified:
        answer = _attempt(plain.url, {"User-Agent": agent, "If-Modified-Since": modified}, timeout)
        checks.append(conditional_check("if-modified-since", answer, plain))
    else:
        checks.append(Check(name="validators", level="warn",
                            detail="ETag without Last-Modified: newsboat and curl -z download the whole feed"))
    return checks


def site_root(url: str) -> str:
    """The site's address without a trailing slash, query or fragment; ValueError if not http(s)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL of a site")
    return f"{parts.scheme.lower()}://{parts.netloc}{parts.path.rstrip('/')}"


def discover(root: str, *, timeout: float) -> tuple[list[Check], list[str]]:
    """Every feed the site offers readers: the index page's autodiscovery links, then the OPML list's."""
    index, linked = _listed("index", f"{root}/", _linked, timeout)
    opml, listed = _listed("opml", f"{root}/feeds.opml", _outlined, timeout)
    feeds = _unique([*linked, *listed])
    checks = [index, opml]
    if not feeds:
        checks.append(Check(name="feeds", level="FAIL", detail="neither the index page nor the OPML list names one"))
    elif elsewhere := sorted({urlsplit(url).netloc for url in feeds} - {urlsplit(root).netloc}):
        checks.append(Check(name="feeds", level="warn", detail=f"some on another host than {root}: "
                            f"{', '.join(elsewhere)} (is FEEDSVC_BASE_URL the public URL?)"))
    return checks, feeds


def _linked(page: Fetched) -> list[str]:
    return feeds_in_index(page.body.decode("utf-8", "replace"), page.url)


def _outlined(page: Fetched) -> list[str]:
    return feeds_in_opml(page.body, page.url)


def _listed(name: str, url: str, read: Callable[[Fetched], list[str]], timeout: float) -> tuple[Check, list[str]]:
    """A missing index or OPML list is a warning: the static export has no index page, and either is enough."""
    answer = _attempt(url, {"User-Agent": READERS[0][1]}, timeout)
    if isinstance(answer, str) or answer.status != 200:
        problem = answer if isinstance(answer, str) else answer.status
        return Check(name=name, level="warn", detail=f"{url}: {problem}"), []
    try:
        feeds = read(answer)
    except ValueError as exc:
        return Check(name=name, level="warn", detail=f"{answer.url}: {exc}"), []
    return Check(name=name, level="ok" if feeds else "warn", detail=f"{len(feeds)} feeds in {answer.url}"), feeds


def render_block(title: str, checks: Iterable[Check]) -> str:
    return "\n".join([title, *(f"  {check.level:<4}  {check.name}: {check.detail}" for check in checks)]) + "\n"


def render_summary(report: Report) -> str:
    failed = sum(any(check.level == "FAIL" for check in feed.checks) for feed in report.feeds)
    return (f"{_counted(len(report.feeds), 'feed')} checked, {failed} failing: "
            f"{_counted(report.count('FAIL'), 'failure')}, {_counted(report.count('warn'), 'warning')}")


def _counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def render_json(report: Report) -> str:
    document = {**asdict(report), "failures": report.count("FAIL"), "warnings": report.count("warn"),
                "ok": not report.count("FAIL")}
    return json.dumps(document, indent=2)


def doctor(url: str, *, timeout: float = 10.0, as_json: bool = False, out: TextIO | None = None) -> int:
    """Check the site at `url` and print the report; the exit status: 0 all well, 1 a failure, 2 a usage error.

    The text report is printed feed by feed as it goes: a site with many feeds takes a while."""
    stream = out or sys.stdout
    try:
        if not 0 < timeout < 86400:
            raise ValueError(f"--timeout must be a number of seconds above 0, not {timeout}")
        root = site_root(url)
    except ValueError as exc:
        print(f"feedsvc: doctor: {exc}", file=sys.stderr)
        return 2
    checks, urls = discover(root, timeout=timeout)
    if not as_json:
        print(render_block(f"site {root}", checks), file=stream, flush=True)
    feeds = []
    for feed_url in urls:
        feeds.append(check_feed(feed_url, timeout=timeout))
        if not as_json:
            print(render_block(feed_url, feeds[-1].checks), file=stream, flush=True)
    report = Report(site=root, checks=tuple(checks), feeds=tuple(feeds))
    print(render_json(report) if as_json else render_summary(report), file=stream)
    return 1 if report.count("FAIL") else 0
