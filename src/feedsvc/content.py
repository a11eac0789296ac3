"""One post file's bytes -> a checked `Post`, or a `Problem` naming file, line and reason.

This is the boundary: everything after it trusts what it gets. The only user of
python-frontmatter and PyYAML.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml
from frontmatter.default_handlers import YAMLHandler
from slugify import slugify

from feedsvc.config import Settings
from feedsvc.model import EPOCH, Author, Post, Problem, Term

# XML 1.0 forbids these; one of them anywhere makes feedgen fail the whole feed.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
# The static-site form of the seed post: `date: 2020-09-06-22-23-29`.
_DASHED_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})(?:-(\d{2}))?")
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[!-~\u00a0-\U0010ffff]+")  # no spaces or controls
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")
_HANDLER = YAMLHandler()
MAX_TERMS = 100  # categories or tags per post; each makes feeds, so a runaway list is a mistake
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.CSafeLoader):
    """libyaml's safe loader, leaving dates as text so `to_utc` can say which line is wrong."""

    yaml_implicit_resolvers = {  # noqa: RUF012  (PyYAML's class-level table, replaced whole)
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
    }


class PostError(ValueError):
    """A reason a post cannot be used, with the line it was found on, or the key to find it by."""

    def __init__(self, message: str, line: int | None = None, *, key: str | None = None) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.line = line
        self.key = key


def clean_text(text: str) -> str:
    """Drop characters XML cannot carry, so one stray byte never breaks a feed."""
    return _XML_ILLEGAL.sub("", text)


def to_utc(value: object, zone: tzinfo) -> datetime:
    """Every shape a date takes in front matter -> aware UTC; naive times are in `zone`."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        moment = _parse_date_text(value.strip())
    else:
        raise ValueError(f"expected a date such as 2020-09-06T22:23:29Z, got {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _parse_date_text(text: str) -> datetime:
    try:
        if match := _DASHED_DATE.fullmatch(text):
            year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
            return datetime(year, month, day, hour, minute, second)
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date ({exc})") from None


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is fine) with LF line ends; an error says the line of the bad byte."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PostError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", line) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The YAML mapping and the raw body; a post without one is an error, not an empty dict."""
    if not _HANDLER.detect(text):
        raise PostError("no front matter: a post starts with a line of three dashes (---)", 1)
    try:
        front, body = _HANDLER.split(text)
    except ValueError:
        raise PostError("front matter is never closed: add a line of three dashes (---)", 1) from None
    try:
        meta = _HANDLER.load(clean_text(front), Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise PostError(f"invalid YAML: {exc.problem or exc.context}", line) from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        raise PostError(f"invalid YAML: {exc}", None) from None
    if not isinstance(meta, dict):
        raise PostError(f"front matter must be key: value pairs, not {type(meta).__name__}", 2)
    return meta, body


def load_post(source: str, data: bytes, settings: Settings, *, revision: str = "",
              modified: datetime = EPOCH) -> Post | Problem:
    """Parse one file's bytes; `source` is its path relative to the content folder.

    The body is checked (it must decode) but not kept: only posts that reach a feed need it,
    and at 100,000 posts the bodies would be most of the memory (see `read_body`).
    """
    try:
        meta, _ = split_front_matter(decode(data))
        return _build_post(source, meta, settings, revision, modified)
    except PostError as exc:
        return Problem(path=source, line=exc.line or _line_of(data, exc), message=str(exc))


def read_body(data: bytes) -> str:
    """The Markdown body of a post file's bytes, safe for XML (its front matter was checked when it was read)."""
    try:
        _, body = _HANDLER.split(decode(data))
    except (PostError, ValueError):  # no longer a post: the next rebuild reports it
        return ""
    return clean_text(body).strip("\n")


def _line_of(data: bytes, exc: PostError) -> int | None:
    if not exc.key:
        return None
    pattern = re.compile(rb"^\s*" + re.escape(exc.key.encode()) + rb"\s*:", re.MULTILINE)
    match = pattern.search(data)
    return data.count(b"\n", 0, match.start()) + 1 if match else None


def _field(key: str, message: str) -> PostError:
    return PostError(message, key=key)


def _build_post(source: str, meta: Mapping[str, Any], settings: Settings, revision: str, modified: datetime) -> Post:
    title = _text(meta, "title", required=True)
    published = _date(meta, "date", settings)
    if published is None:
        raise _field("date", "is required (for example 2020-09-06-22-23-29 or 2020-09-06T22:23:29Z)")
    updated = _date(meta, "updated", settings) or published
    slug = _slug(_text(meta, "slug") or PurePosixPath(source).stem)
    if not slug:
        raise _field("slug", "cannot make a URL slug from it; set `slug:` to letters or digits")
    return Post(
        source=source,
        slug=slug,
        id=_entry_id(meta, slug, published, settings),
        url=post_url(slug, published, settings),
        title=title,
        date=published,
        updated=max(updated, published),
        summary=_text(meta, "description") or _text(meta, "summary"),
        revision=revision,
        modified=modified,
        categories=_terms(meta, "categories") or _terms(meta, "category"),
        tags=_terms(meta, "tags"),
        authors=_authors(meta.get("author", meta.get("authors"))),
        image=_image(meta, settings),
        draft=_flag(meta, "draft", default=False),
        in_feeds=_flag(meta, "feed", default=True),
    )


@functools.lru_cache(maxsize=65536)  # category and tag names recur across thousands of posts
def _slug(text: str) -> str:
    return str(slugify(text))


def slug_for(text: str, *, max_length: int = 0) -> str:
    """The URL slug feedsvc makes of `text` (a file name, a category, a tag); '' if it has no letters or digits.

    With `max_length`, cut at a word boundary; the result is still its own slug, so a file named
    after it gets exactly this slug back.
    """
    if not max_length:
        return _slug(text)
    return str(slugify(text, max_length=max_length, word_boundary=True, save_order=True))


@functools.lru_cache(maxsize=65536)  # one shared Term per name, not one per post
def shared_term(slug: str, name: str) -> Term:
    return Term(slug=slug, name=name)


def _text(meta: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = meta.get(key)
    if value is None or value == "":
        if required:
            raise _field(key, "is required")
        return ""
    if isinstance(value, bool):
        raise _field(key, f"YAML read it as {str(value).lower()}; put the text in quotes")
    if not isinstance(value, str | int | float):
        raise _field(key, f"must be text, not {type(value).__name__}")
    text = clean_text(str(value)).strip()  # YAML escapes like "\e" become control characters only now
    if required and not text:
        raise _field(key, "is empty")
    return text


def _date(meta: Mapping[str, Any], key: str, settings: Settings) -> datetime | None:
    value = meta.get(key)
    if value is None or value == "":
        return None
    try:
        return to_utc(value, settings.zone)
    except ValueError as exc:
        raise _field(key, str(exc)) from None


def _terms(meta: Mapping[str, Any], key: str) -> tuple[Term, ...]:
    value = meta.get(key)
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_TERMS:
        raise _field(key, f"has {len(items)} entries; at most {MAX_TERMS} are allowed")
    terms: dict[str, Term] = {}
    for item in items:
        if isinstance(item, bool):
            raise _field(key, f"YAML read a name as {str(item).lower()}; put it in quotes")
        if not isinstance(item, str | int | float):
            raise _field(key, f"each entry must be a name, not {type(item).__name__}")
        name = " ".join(clean_text(str(item)).split())
        if (slug := _slug(name)) and slug not in terms:
            terms[slug] = shared_term(slug, name)
    return tuple(terms.values())


def _authors(value: object) -> tuple[Author, ...]:
    if value is None or value == "":
        return ()
    items = value if isinstance(value, list) else [value]
    authors = []
    for item in items:
        fields: dict[str, Any] = item if isinstance(item, dict) else {"name": item}
        raw = fields.get("name")
        name = clean_text(raw).strip() if isinstance(raw, str) else ""
        if not name:
            raise _field("author", "must be a name, or name/email/uri, or a list of them")
        email, uri = fields.get("email"), fields.get("uri") or fields.get("url")
        authors.append(Author(
            name=name,
            email=email.strip() if isinstance(email, str) and _EMAIL.fullmatch(email.strip()) else None,
            uri=uri.strip() if isinstance(uri, str) and _is_web_url(uri.strip()) else None,
        ))
    return tuple(authors)


def _image(meta: Mapping[str, Any], settings: Settings) -> str | None:
    url = _text(meta, "image")
    if not url:
        return None
    if url.startswith("/") and not url.startswith("//"):
        url = settings.base_url + url
    if not _is_web_url(url):
        raise _field("image", f"must be an http(s) URL or a path starting with /, got {url!r}")
    return url


def _is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not _SPACE_OR_CONTROL.search(url)


def _flag(meta: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = meta.get(key, default)
    if not isinstance(value, bool):
        raise _field(key, f"must be true or false, got {value!r}")
    return value


def post_url(slug: str, published: datetime, settings: Settings) -> str:
    local = published.astimezone(settings.zone)
    return settings.post_url.format(base_url=settings.base_url, slug=slug,
                                    year=f"{local:%Y}", month=f"{local:%m}", day=f"{local:%d}")


def derived_id(slug: str, published: datetime, settings: Settings) -> str:
    """An RFC 4151 tag URI from site, date and slug: editing the title or body never changes it."""
    return f"tag:{settings.id_authority},{published:%Y-%m-%d}:{slug}"


def _entry_id(meta: Mapping[str, Any], slug: str, published: datetime, settings: Settings) -> str:
    own = _text(meta, "id")
    if own:
        if not _URI_SCHEME.fullmatch(own):
            raise _field("id", f"must be a URI such as tag:example.org,2020:post-1, got {own!r}")
        return own
    return derived_id(slug, published, settings)
