"""A new post's file name and text, for `feedsvc new`.

Pure (no clock, no folder, no writes), so that the name, the quoting and the date can be tested
exactly: the command supplies "now", the time zone and the slugs already taken, and does the
writing itself.

The text is in the style of the real content (content/2020/harbour-ferry-returns.txt):
`extends`/`section` for the static site, `title`, `description`, the dashed local `date`, and
flow lists of `categories` and `tags`. A value YAML would read as something else (`No`,
`Yes: really`, `# hash`, `[bracket]`, `"quoted"`) is double-quoted, so the post reads back with
exactly the title, terms and date it was made with.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, datetime, tzinfo
from pathlib import PurePosixPath

from feedsvc.content import MAX_TERMS, slug_for
from feedsvc.yamlfront import clean_text

MAX_SLUG = 80  # characters of the title's slug in the file name (cut at a word boundary)
FALLBACK_SLUG = "post"  # for a title without letters or digits, e.g. only emoji
# Plain words YAML 1.1 reads as booleans or null (PyYAML, and the static site's YAML library).
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
_FLOW_SPECIAL = frozenset(",[]{}:#\"'")  # inside `[a, b]` these end or change a plain value


class SkeletonError(ValueError):
    """An argument that cannot make a post; the message says which and why."""


def new_post(title: str, categories: Iterable[str], tags: Iterable[str], now: datetime, zone: tzinfo, *,
             draft: bool = False, extension: str = ".md",
             taken: Collection[str] = frozenset()) -> tuple[PurePosixPath, str]:
    """(`<year>/<slug><extension>` relative to the content folder, the file's text).

    `now` is the post's date (a naive one is in `zone`); the year folder and the written date are
    in `zone`. The slug is the title's, with -2, -3, ... added while it is in `taken`.
    """
    title = _one_line(title, "the title")
    if not title:
        raise SkeletonError("the title is empty")
    category_names = _names(categories, "--category")
    tag_names = _names(tags, "--tag")
    local = (now.replace(tzinfo=zone) if now.tzinfo is None else now.astimezone(zone)).replace(microsecond=0)
    slug = unique_slug(slug_for(title, max_length=MAX_SLUG) or FALLBACK_SLUG, taken)
    lines = [
        "---",
        "extends: _layouts.post",
        "section: content",
        f"title: {yaml_scalar(title)}",
        "description:",
        f"date: {date_text(local, zone)}",
        f"categories: {flow_list(category_names)}",
    ]
    if tag_names:
        lines.append(f"tags: {flow_list(tag_names)}")
    if draft:
        lines.append("draft: true")
    lines += ["---", ""]
    return PurePosixPath(f"{local:%Y}", slug + extension), "\n".join(lines)


def unique_slug(slug: str, taken: Collection[str]) -> str:
    if slug not in taken:
        return slug
    number = 2
    while f"{slug}-{number}" in taken:
        number += 1
    return f"{slug}-{number}"


def date_text(moment: datetime, zone: tzinfo) -> str:
    """The seed's dashed local form, 2020-09-06-22-23-29; ISO with an offset for a local time that
    happens twice (the hour the clocks go back), which the dashed form cannot tell apart."""
    local = moment.astimezone(zone)
    naive = local.replace(tzinfo=None, fold=0)  # what a reader of the dashed form gets back
    if naive.replace(tzinfo=zone).astimezone(UTC) == local.astimezone(UTC):
        return f"{local:%Y-%m-%d-%H-%M-%S}"
    return local.isoformat(timespec="seconds")


def flow_list(names: Iterable[str]) -> str:
    return "[" + ", ".join(yaml_scalar(name, in_flow=True) for name in names) + "]"


def yaml_scalar(text: str, *, in_flow: bool = False) -> str:
    """`text` as a YAML value that reads back as exactly this string: plain when that is
    certainly safe, else double-quoted with escapes."""
    if _plain_is_safe(text, in_flow=in_flow):
        return text
    return '"' + "".join(_escape(ch) for ch in text) + '"'


def _plain_is_safe(text: str, *, in_flow: bool) -> bool:
    return (
        text[:1].isalpha()  # not an indicator, quote, bracket, digit (numbers, dates), '.' or '~'
        and text.lower() not in _YAML_WORDS
        and text.isprintable()  # no line or paragraph separators, no invisible characters
        and ": " not in text and " #" not in text and not text.endswith(":")
        and not (in_flow and not _FLOW_SPECIAL.isdisjoint(text))
    )


def _escape(ch: str) -> str:
    if ch in '"\\':
        return "\\" + ch
    if ch.isprintable():
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _one_line(text: str, what: str) -> str:
    """The text as it will read back: characters XML cannot carry dropped, whitespace runs made one space."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SkeletonError(f"{what} is not valid UTF-8 text") from None
    return " ".join(clean_text(text).split())


def _names(values: Iterable[str], option: str) -> list[str]:
    """Category or tag names, first spelling of each slug kept (as feedsvc reads them)."""
    names: dict[str, str] = {}
    for value in values:
        name = _one_line(value, f"{option} {value!r}")
        slug = slug_for(name)
        if not slug:
            raise SkeletonError(f"{option} {value!r} has no letters or digits to make a feed URL from")
        names.setdefault(slug, name)
    if len(names) > MAX_TERMS:
        raise SkeletonError(f"{option} given {len(names)} times; a post may have at most {MAX_TERMS}")
    return list(names.values())
