"""A post file's bytes -> its front matter (a plain mapping) and its body, read strictly and at bounded cost.

Front matter is written by hand, and files by anyone: dates and numbers stay the text written
(the caller says which line is wrong), duplicate keys are errors, and what YAML aliases can
expand into is counted before anything is built. The only user of python-frontmatter and PyYAML.
"""

from __future__ import annotations

import functools
import re
import reprlib
from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler

MAX_VALUES = 10_000  # nodes one front-matter value may stand for once aliases are expanded; real ones have dozens
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_NUMBERS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
# The keys a post is built from (content's `_build_post`): a problem in one of them is named before others.
POST_KEYS = frozenset({"title", "date", "updated", "slug", "id", "description", "summary", "categories", "category",
                       "tags", "author", "authors", "image", "draft", "feed"})
_REPR = reprlib.Repr()  # values in messages: YAML aliases must never expand into one (billion laughs)
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 60, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 4
# XML 1.0 forbids these; one of them anywhere makes feedgen fail the whole feed.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
_HANDLER = YAMLHandler()


class _Loader(yaml.CSafeLoader):
    """libyaml's safe loader, made for front matter written by hand and files written by anyone.

    Dates and numbers stay the text the editor wrote (`to_utc` can then say which line is wrong,
    and `0x` with 5,000 digits is a title, not an int too long to print); a duplicate key is an
    error, not last-wins; a value that aliases expand past MAX_VALUES is refused before anything
    is built from it.
    """

    yaml_implicit_resolvers = {  # noqa: RUF012  (PyYAML's class-level table, replaced whole)
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
    }
    yaml_constructors = {  # noqa: RUF012  (likewise; `!!int` and `!!float` too)
        **yaml.CSafeLoader.yaml_constructors, **dict.fromkeys(_NUMBERS, yaml.CSafeLoader.construct_yaml_str),
    }

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if isinstance(node, yaml.MappingNode):
            _check_front_matter(node)
        return node


def _check_front_matter(root: yaml.MappingNode) -> None:
    """Refuse duplicate keys, and top-level values that aliases expand past MAX_VALUES nodes."""
    sizes = _expanded_sizes(root)
    oversized = [key for key, value in root.value if sizes.get(value, 1) > MAX_VALUES]
    if oversized:
        key = min(oversized, key=lambda k: not (isinstance(k, yaml.ScalarNode) and k.value in POST_KEYS))
        name = clip(key.value, 60) if isinstance(key, yaml.ScalarNode) else "a key"
        raise PostError(f"front matter too large: more than {MAX_VALUES:,} values, counting what each alias "
                        "(*name) stands for", key.start_mark.line + 1, key=name)


def _expanded_sizes(root: yaml.Node) -> dict[yaml.Node, int]:
    """How many nodes each node stands for with aliases expanded, capped at MAX_VALUES + 1 (also for a cycle).

    Visits each node once, so a billion laughs costs only its few dozen nodes; no recursion,
    so deep nesting cannot overflow the stack.
    """
    cap = MAX_VALUES + 1
    sizes: dict[yaml.Node, int] = {}  # collections only: a scalar is 1
    path: set[yaml.Node] = set()  # collections whose children are being counted
    stack: list[tuple[yaml.Node, list[yaml.Node] | None]] = [(root, None)]
    while stack:
        node, children = stack.pop()
        if children is not None:  # all counted
            path.discard(node)
            sizes[node] = min(cap, 1 + sum(sizes.get(child, 1) for child in children))
        elif node in path:  # an alias inside the collection it names: endless
            sizes[node] = cap
        elif node not in sizes:
            children = _children(node)
            path.add(node)
            stack.append((node, children))
            stack.extend((child, None) for child in children if not isinstance(child, yaml.ScalarNode))
    return sizes


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        _refuse_duplicate_keys(node)
        return [part for pair in node.value for part in pair]
    return list(node.value)


def _refuse_duplicate_keys(node: yaml.MappingNode) -> None:
    """PyYAML keeps the last of two equal keys; an editor who wrote both meant one of them."""
    seen: dict[tuple[str, str], yaml.Node] = {}
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE:  # several `<<:` merge, they do not clash
            tag = _STR if key.tag in _NUMBERS else key.tag  # `1:` and `'1':` are both the text "1"
            first = seen.setdefault((tag, key.value), key)
            if first is not key:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {describe(key.value)} (first on line {first.start_mark.line + 1})",
                    key.start_mark)


class PostError(ValueError):
    """A reason a post cannot be used, with the line it was found on, or the key to find it by."""

    def __init__(self, message: str, line: int | None = None, *, key: str | None = None) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.line = line
        self.key = key


def clean_text(text: str) -> str:
    """Drop characters XML cannot carry, so one stray byte never breaks a feed."""
    return _XML_ILLEGAL.sub("", text)


def describe(value: object) -> str:
    """A short repr for a message, whatever the value: a few items, a few levels, 60 characters of text."""
    try:
        return _REPR.repr(value)
    except ValueError:  # an int too long to print
        return f"a {type(value).__name__}"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is fine) with LF line ends; an error says the line of the bad byte."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PostError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", line) from None
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text  # most have none: no copies


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The YAML mapping and the raw body; a post without one is an error, not an empty dict."""
    if not _HANDLER.detect(text):
        raise PostError("no front matter: a post starts with a line of three dashes (---)", 1)
    try:
        front, body = _HANDLER.split(text)
    except ValueError:
        raise PostError("front matter is never closed: add a line of three dashes (---)", 1) from None
    front = clean_text(front)
    flat = flat_front_matter(front)
    if flat is not None:
        return flat, body
    try:
        meta = _HANDLER.load(front, Loader=_Loader)
    except PostError:
        raise
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise PostError(f"invalid YAML: {exc.problem or exc.context}", line) from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        raise PostError(f"invalid YAML: {exc}", None) from None
    if not isinstance(meta, dict):
        raise PostError(f"front matter must be key: value pairs, not {type(meta).__name__}", 2)
    return meta, body


# Most front matter is flat, as the seed format's is: `key: text` lines and `key: [a, b]` lists. Such front
# matter is read here, many times faster than by PyYAML, whose constructor was most of a post's parse time;
# anything else, and anything this reader is not sure of, goes to PyYAML. It reads only what libyaml reads as
# one-line plain scalars, and resolves them with `_Loader`'s own table, so both give equal results
# (tests/test_yaml_speed_equivalence.py). No tabs, no line breaks but LF (YAML 1.1 also breaks at NEL, LS and PS),
# no characters libyaml refuses (C1 controls) or skips (a BOM).
_FLAT_TEXT = re.compile("[\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*")
_FLAT_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]{0,99}):(?: +(.*))?")  # a key at column 0, on one line
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@` ")  # a plain scalar starting with one is not flat
_FLOW_STOP = re.compile(r"[:\[\]{}#'\"]")  # in a flow sequence's plain scalar: ends it, or may
_RESOLVERS = _Loader.yaml_implicit_resolvers
_NO_RESOLVERS: list[tuple[str, re.Pattern[str]]] = []
_BOOL, _NULL = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"
_TEXT = frozenset({_STR, *_NUMBERS})
_UNSURE = object()


def flat_front_matter(text: str) -> dict[str, Any] | None:
    """The mapping flat front matter stands for, as `_Loader` reads it; None for anything else (use PyYAML)."""
    if not _FLAT_TEXT.fullmatch(text):
        return None
    meta: dict[str, Any] = {}
    for line in text.split("\n"):
        if not line:
            continue
        match = _FLAT_LINE.fullmatch(line)
        if match is None:
            return None
        key, raw = match.groups()
        value = _flat_value(raw.rstrip(" ") if raw else "")
        if value is _UNSURE or key in meta or not _is_text_key(key):  # a duplicate is PyYAML's to report
            return None
        meta[key] = value
    return meta or None


@functools.lru_cache(maxsize=1024)  # the same few keys in every post
def _is_text_key(key: str) -> bool:
    return _scalar(key) == key  # not `yes:` (True) or `null:` (None)


def _flat_value(raw: str) -> object:
    if not raw:
        return None
    if raw[0] != "[":  # a plain scalar: `: ` would start a mapping, ` #` a comment
        plain = raw[0] not in _INDICATORS and raw[-1] != ":" and ": " not in raw and " #" not in raw
        return _scalar(raw) if plain else _UNSURE
    if raw[-1] != "]":
        return _UNSURE
    inner = raw[1:-1].strip(" ")
    values = []
    for item in inner.split(",") if inner else ():
        item = item.strip(" ")
        if not item or item[0] in _INDICATORS or _FLOW_STOP.search(item):
            return _UNSURE
        values.append(_scalar(item))
    return _UNSURE if _UNSURE in values else values


def _scalar(text: str) -> object:
    """A plain scalar's value: its implicit tag from `_Loader`'s table (BaseResolver.resolve), then its constructor."""
    tag = _STR
    for candidate, regexp in _RESOLVERS.get(text[:1], _NO_RESOLVERS):
        if regexp.match(text):
            tag = candidate
            break
    if tag in _TEXT:
        return text
    if tag == _BOOL:
        return _Loader.bool_values[text.lower()]
    return None if tag == _NULL else _UNSURE  # `<<`, `=`: not flat


def read_body(data: bytes) -> str:
    """The Markdown body of a post file's bytes, safe for XML (its front matter was checked when it was read)."""
    try:
        _, body = _HANDLER.split(decode(data))
    except (PostError, ValueError):  # no longer a post: the next rebuild reports it
        return ""
    return clean_text(body).strip("\n")
