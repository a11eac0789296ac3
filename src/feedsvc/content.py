"""One post file's bytes -> a checked `Post`, or a `Problem` naming file, line and reason.

This is the boundary: everything after it trusts what it gets. The file's text is read by
`yamlfront`; this module turns its values into a Post.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from urllib.parse import urlsplit

from slugify import slugify

from feedsvc.config import Settings
from feedsvc.model import EPOCH, Author, Post, Problem, Term
from feedsvc.yamlfront import PostError, clean_text, clip, decode, describe, split_front_matter

logger = logging.getLogger(__name__)

# The static-site form of the seed post: `date: 2020-09-06-22-23-29`.
_DASHED_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})(?:-(\d{2}))?")
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[!-~\u00a0-\U0010ffff]+")  # no spaces or controls
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")
# Text that python-slugify turns into itself, but for `_` -> `-` (file names such as 000123_8e8ec7cb684a81b7):
# most posts' slugs come from their file names, and slugify takes several microseconds each.
_PLAIN_SLUG = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
_PLAIN_WEB_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?:[/?#][!-~]*)?")  # what `_is_web_url` says yes to, sooner
MAX_TERMS = 100  # categories or tags per post; each makes feeds, so a runaway list is a mistake
MAX_MESSAGE = 240  # characters of a problem message: it is logged, shown by /healthz and `feedsvc check`


def to_utc(value: object, zone: tzinfo) -> datetime:
    """Every shape a date takes in front matter -> aware UTC; naive times are in `zone`.

    The time must exist in UTC and in `zone` (post URLs and pages show it there): near the
    ends of years 1 and 9999 an offset can push it off the calendar.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        moment = _parse_date_text(value.strip())
    else:
        raise ValueError(f"expected a date such as 2020-09-06T22:23:29Z, got {describe(value)}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        utc = moment.astimezone(UTC)
        utc.astimezone(zone)
    except OverflowError:
        raise ValueError(f"{describe(value)} is out of range: a date must fall in the years 1 to 9999, "
                         f"both in UTC and in the site's time zone ({zone})") from None
    return utc


def _parse_date_text(text: str) -> datetime:
    try:
        if match := _DASHED_DATE.fullmatch(text):
            year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
            return datetime(year, month, day, hour, minute, second)
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{describe(text)} is not a valid date ({clip(str(exc), 80)})") from None


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
        return Problem(path=source, line=exc.line or _line_of(data, exc), message=clip(str(exc), MAX_MESSAGE))
    except Exception as exc:  # a case no check above foresaw: it costs this post, never the feeds of the others
        logger.debug("%s: unexpected error while reading", source, exc_info=True)
        return Problem(path=source, line=None,
                       message=clip(f"cannot be read: {type(exc).__name__}: {exc}", MAX_MESSAGE))


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
    slug = _slug(_text(meta, "slug") or _stem(source))
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
        featured=_featured(meta.get("featured")),
        lang=_lang(meta),
    )


def _stem(source: str) -> str:
    """PurePosixPath(source).stem, without a PurePosixPath (its parts are interned: 5% of a parse)."""
    name = source.rpartition("/")[2]
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


@functools.lru_cache(maxsize=65536)  # category and tag names recur across thousands of posts
def _slug(text: str) -> str:
    if _PLAIN_SLUG.fullmatch(text):
        return text.replace("_", "-")
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
    if not isinstance(value, str):  # numbers are text already (see `_Loader`)
        raise _field(key, f"must be text, not {type(value).__name__}")
    text = clean_text(value).strip()  # YAML escapes like "\e" become control characters only now
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
        if not isinstance(item, str):
            raise _field(key, f"each entry must be a name, not {type(item).__name__}")
        name = " ".join(clean_text(item).split())
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
        name = _clean(fields.get("name"))
        if not name:
            raise _field("author", "must be a name, or name/email/uri, or a list of them")
        email, uri = _clean(fields.get("email")), _clean(fields.get("uri") or fields.get("url"))
        authors.append(Author(name=name, email=email if _EMAIL.fullmatch(email) else None,
                              uri=uri if _is_web_url(uri) else None))  # a bad address is left out, not fatal
    return tuple(authors)


def _clean(value: object) -> str:
    return clean_text(value).strip() if isinstance(value, str) else ""


def _image(meta: Mapping[str, Any], settings: Settings) -> str | None:
    url = _text(meta, "image")
    if not url:
        return None
    if url.startswith("/") and not url.startswith("//"):
        url = settings.base_url + url
    if not _is_web_url(url):
        raise _field("image", f"must be an http(s) URL or a path starting with /, got {describe(url)}")
    return url


def _is_web_url(url: str) -> bool:
    if _PLAIN_WEB_URL.fullmatch(url):
        return True
    if _SPACE_OR_CONTROL.search(url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # `http://[x`: an unclosed IPv6 address, and other hosts urllib refuses
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _flag(meta: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = meta.get(key, default)
    if not isinstance(value, bool):
        raise _field(key, f"must be true or false, got {describe(value)}")
    return value


def _featured(value: Any) -> bool:
    """`featured: true` (also "yes", "1"); any other value means not featured. Unlike `draft`, a
    mistyped value here must not take the post out of its feeds."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str | int) and str(value).strip().lower() in ("true", "yes", "on", "1")


_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


def _lang(meta: Mapping[str, Any]) -> str | None:
    """`lang:` (or `language:`), a BCP 47 tag such as `fr` or `pt-BR`; its feed is /feeds/lang/<tag>.

    Anything else (`English`, a list) is left alone, as before the key meant something: posts that
    carried it for their templates stay published, in no language feed."""
    value = meta.get("lang", meta.get("language"))
    if not isinstance(value, str) or not _LANGUAGE_TAG.fullmatch(value.strip()):
        return None
    return value.strip()


def post_url(slug: str, published: datetime, settings: Settings) -> str:
    local = published.astimezone(settings.zone)
    return settings.post_url.format(base_url=settings.base_url, slug=slug,
                                    year=f"{local.year:04d}", month=f"{local.month:02d}", day=f"{local.day:02d}")


def derived_id(slug: str, published: datetime, settings: Settings) -> str:
    """An RFC 4151 tag URI from site, date and slug: editing the title or body never changes it."""
    day = f"{published.year:04d}-{published.month:02d}-{published.day:02d}"  # 4 digits before 1000 too
    return f"tag:{settings.id_authority},{day}:{slug}"


def _entry_id(meta: Mapping[str, Any], slug: str, published: datetime, settings: Settings) -> str:
    own = _text(meta, "id")
    if own:
        if not _URI_SCHEME.fullmatch(own):
            raise _field("id", f"must be a URI such as tag:example.org,2020:post-1, got {describe(own)}")
        return own
    return derived_id(slug, published, settings)
