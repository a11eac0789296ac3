"""Which posts a configured feed holds: a small filter language over front matter.

    featured
    category news AND tag ferry
    everything NOT tag sponsored            (`A NOT B` reads as `A AND NOT B`)
    (author "Sam Rivera" OR tag harbour) AND lang en

Terms: `everything`, `featured`, and `category`, `tag`, `author` or `lang` followed by a name
(quoted if it has spaces or parentheses). Names compare as their URL slugs do, so `News` and
`news` are one category, as in the category feeds. `AND`, `OR`, `NOT` in any case; AND binds
tighter than OR. Parsed once at start-up (a bad filter stops it, with the position of the
problem); evaluating is a walk of a small tuple tree.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from slugify import slugify

from feedsvc.model import Post

_TOKEN = re.compile(r'\s*(?:(\()|(\))|"([^"]*)"|([^\s()"]+))')
_FIELDS = ("category", "tag", "author", "lang")
_WORDS = ("and", "or", "not")


class FilterError(ValueError):
    """A filter that cannot be read; the message says where."""


@dataclass(frozen=True, slots=True)
class Filter:
    text: str
    tree: tuple[object, ...]

    def __call__(self, post: Post) -> bool:
        return _holds(self.tree, post)


def parse_filter(text: str) -> Filter:
    tokens = _tokens(text)
    parser = _Parser(tokens, text)
    tree = parser.expression()
    if parser.at < len(tokens):
        raise FilterError(f"unexpected {tokens[parser.at][1]!r} at character {tokens[parser.at][0] + 1}")
    return Filter(text=text, tree=tree)


def _tokens(text: str) -> list[tuple[int, str, bool]]:
    """(offset, token, quoted) for each token."""
    tokens, at = [], 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if match is None:
            quote = text.index('"', at)
            raise FilterError(f"unclosed quote at character {quote + 1}")
        start = match.start() + len(match.group(0)) - len(match.group(0).lstrip())
        opened, closed, quoted, word = match.groups()
        tokens.append((start, opened or closed or (quoted if quoted is not None else word), quoted is not None))
        at = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[int, str, bool]], text: str) -> None:
        self.tokens, self.text, self.at = tokens, text, 0

    def _peek(self) -> str | None:
        if self.at < len(self.tokens) and not self.tokens[self.at][2]:
            return self.tokens[self.at][1].lower()
        return None

    def _take(self) -> tuple[int, str, bool]:
        if self.at >= len(self.tokens):
            raise FilterError("ends too soon" if self.tokens else "is empty")
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expression(self) -> tuple[object, ...]:
        terms = [self._all_of()]
        while self._peek() == "or":
            self.at += 1
            terms.append(self._all_of())
        return terms[0] if len(terms) == 1 else ("or", *terms)

    def _all_of(self) -> tuple[object, ...]:
        terms = [self._negated()]
        while (word := self._peek()) in ("and", "not"):
            if word == "and":
                self.at += 1
            terms.append(self._negated())
        return terms[0] if len(terms) == 1 else ("and", *terms)

    def _negated(self) -> tuple[object, ...]:
        if self._peek() == "not":
            self.at += 1
            return ("not", self._negated())
        return self._term()

    def _term(self) -> tuple[object, ...]:
        offset, token, quoted = self._take()
        word = token.lower()
        if quoted:
            raise FilterError(f"a name ({token!r}) at character {offset + 1} must follow category, tag, author or lang")
        if word == "(":
            inner = self.expression()
            if self._take()[1] != ")":
                raise FilterError(f"the parenthesis at character {offset + 1} is not closed")
            return inner
        if word in ("everything", "featured"):
            return (word,)
        if word in _FIELDS:
            if self.at >= len(self.tokens):
                raise FilterError(f"{word} at character {offset + 1} needs a name after it")
            name_at, name, name_quoted = self._take()
            if not name_quoted and name.lower() in (*_WORDS, "(", ")"):
                raise FilterError(f"{word} at character {offset + 1} needs a name after it, not {name!r}")
            value = name.strip().lower() if word == "lang" else _slug(name)
            if not value:
                raise FilterError(f"{word} {name!r} at character {name_at + 1} has no letters or digits")
            return (word, value)
        raise FilterError(f"unexpected {token!r} at character {offset + 1} (expected everything, featured, "
                          "category, tag, author, lang, NOT or a parenthesis)")


@functools.lru_cache(maxsize=4096)
def _slug(name: str) -> str:
    """As categories, tags and authors are slugged for their feeds' URLs."""
    return str(slugify(name))


def _holds(tree: tuple[object, ...], post: Post) -> bool:
    kind = tree[0]
    if kind == "or":
        return any(_holds(part, post) for part in tree[1:])  # type: ignore[arg-type]
    if kind == "and":
        return all(_holds(part, post) for part in tree[1:])  # type: ignore[arg-type]
    if kind == "not":
        return not _holds(tree[1], post)  # type: ignore[arg-type]
    if kind == "everything":
        return True
    if kind == "featured":
        return post.featured
    value = tree[1]
    if kind == "category":
        return any(term.slug == value for term in post.categories)
    if kind == "tag":
        return any(term.slug == value for term in post.tags)
    if kind == "author":
        return any(_slug(author.name) == value for author in post.authors)
    return post.lang is not None and (post.lang == value or post.lang.startswith(f"{value}-"))
