"""The shortcuts of a post's load (flat front matter, plain slugs and URLs) give what the long way gives."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import examples
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from slugify import slugify

from feedsvc import content
from feedsvc.config import load_settings
from feedsvc.content import load_post
from feedsvc.model import Post, Problem
from feedsvc.yamlfront import _Loader, clean_text, flat_front_matter, split_front_matter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from corpus import post_text

SETTINGS = load_settings(env={}, base_url="https://feeds.example.org")
# Words and characters that mean something to YAML 1.1 or libyaml, and some that look as if they might.
WORDS = ["yes", "No", "ON", "off", "true", "False", "null", "Null", "~", "y", "n", "1", "0x1F", "0o7", "1_000",
         "1:30", "-1", "+1", ".5", "1e3", "1.0e+3", ".inf", "-.Inf", ".NaN", "=", "<<", "2020-09-06", "...", "---",
         "a", "title", "news", "http://x.org/a#b", "C#", "it's", "\"q\"", "x y"]
CHARS = [*" :,[]{}#&*!|>'\"%@`-?~=<.\t\n\\", "\x85", "\u2028", "\u2029", "\ufeff", "\xa0", "\u3000", "\x9f", "é",
         "\U0001f600", "\x00", "\x0b", "\ufffe"]
fragments = st.sampled_from(WORDS) | st.sampled_from(CHARS) | st.text(max_size=4)
values = st.lists(fragments, max_size=6).map("".join)
flow = st.lists(values, max_size=4).map(lambda items: "[" + ",".join(items) + "]")
keys = st.sampled_from(["title", "date", "categories", "yes", "null", "_x", "a-b", "Title", "t1", "<<", " k", "k "])
lines = st.tuples(keys, st.sampled_from([":", ": ", ":  ", " : ", ":\t"]), values | flow,
                  st.sampled_from(["", " ", "  "]))
texts = st.lists(lines.map("".join) | values, min_size=1, max_size=6).map("\n".join)
# Front matter the fast path takes often: one-line `key: value` and `key: [a, b]`, with indicators inside values.
tame = (st.sampled_from(WORDS) | st.sampled_from(WORDS) | st.sampled_from([*" :#,[]{}'\"!&*%@`|>?-~=.", "é", "\xa0"])
        | st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=3))
tame_values = st.lists(tame, max_size=5).map("".join)
tame_keys = st.sampled_from(["title", "date", "categories", "_x", "a-b", "Title", "t1", "yes", "e"])
tame_items = st.one_of(tame_values, st.lists(tame_values, max_size=4).map(", ".join).map(lambda inner: f"[{inner}]"))
tame_texts = st.lists(st.tuples(tame_keys, tame_items, st.sampled_from(["", " "])), min_size=1, max_size=6,
                      unique_by=lambda line: line[0]).map(lambda lines: "\n".join(f"{k}: {v}{e}" for k, v, e in lines))


def pyyaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def typed(value: Any) -> Any:
    """Equality that tells True from 1 and "1" from 1."""
    if isinstance(value, dict):
        return [(typed(k), typed(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


def assert_agrees(text: str) -> None:
    text = clean_text(text)  # what split_front_matter hands both readers
    flat = flat_front_matter(text)
    if flat is None:
        return
    assert typed(pyyaml(text)) == typed(flat), text


@settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
@example("title: a: b")
@example("title: a #b")
@example("t: [a, b,]")
@example("t: [-a]")
@example("t: x\u2028y")
def test_flat_front_matter_agrees_with_pyyaml(text: str) -> None:
    assert_agrees(text)


@settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=tame_texts)
def test_flat_looking_front_matter_agrees_with_pyyaml(text: str) -> None:
    assert_agrees(text)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=st.dictionaries(st.text(max_size=10), st.text() | st.lists(st.text(max_size=12), max_size=4)
                            | st.booleans() | st.none() | st.integers(), max_size=8))
def test_what_pyyaml_writes_is_read_alike(meta: dict[str, Any]) -> None:
    for style in (None, "'", '"'):
        for flow_style in (True, False, None):
            assert_agrees(yaml.safe_dump(meta, default_style=style, default_flow_style=flow_style,
                                         allow_unicode=True))


@pytest.mark.parametrize("index", [0, 1, 2, 17, 999, 54321])
def test_the_seed_format_takes_the_fast_path(index: int) -> None:
    text = post_text(index)
    front = clean_text(text.split("---")[1])
    assert flat_front_matter(front) is not None
    assert_agrees(front)
    assert split_front_matter(text)[0] == pyyaml(front)


def test_the_loader_has_no_resolvers_the_fast_path_would_miss() -> None:
    assert None not in _Loader.yaml_implicit_resolvers  # wildcard resolvers: BaseResolver.resolve tries them too
    assert not _Loader.yaml_path_resolvers


@pytest.mark.parametrize(("front", "line", "words"), [
    ("title: A\ntitle: B", 2, "duplicate key"),
    ("title: yes\ndate: 2020-01-01", 1, "in quotes"),
    ("title: [a, b]\ndate: 2020-01-01", 1, "must be text"),
    ("title: A\ndate: 2020-13-01-00-00-00", 2, "not a valid date"),
    ("title: A\ndate: [2020]", 2, "expected a date"),
    ("title: A\ndate: 2020-01-01\ncategories: [yes]", 3, "put it in quotes"),
    ("title: a: b\ndate: 2020-01-01", 1, "invalid YAML"),
])
def test_problems_still_name_the_line(front: str, line: int, words: str) -> None:
    result = load_post("p.md", f"---\n{front}\n---\nBody.\n".encode(), SETTINGS)
    assert isinstance(result, Problem)
    assert result.path == "p.md" and result.line == line + 1 and words in result.message, result


def test_a_seed_post_loads_alike_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    data = post_text(7).encode()
    fast = load_post("7.txt", data, SETTINGS)
    monkeypatch.setattr("feedsvc.yamlfront.flat_front_matter", lambda text: None)
    assert isinstance(fast, Post) and fast == load_post("7.txt", data, SETTINGS)


@settings(max_examples=examples(1000), deadline=None)
@given(text=st.text(alphabet="abcz019_-.A é", max_size=30))
@example("000123_8e8ec7cb684a81b7")
@example("a__b")
@example("_a")
@example("a-")
@example("1,000")
def test_the_slug_shortcut_is_what_slugify_makes(text: str) -> None:
    assert content._slug.__wrapped__(text) == str(slugify(text))


def slow_is_web_url(url: str) -> bool:
    """`_is_web_url` without its shortcut."""
    if re.search(r"[\s\x00-\x1f\x7f]", url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


@settings(max_examples=examples(1000), deadline=None)
@given(url=st.lists(st.sampled_from(["http", "https", "HTTP", "://", ":", "/", "//", "x", "a.b", "[", "]", "?", "#",
                                     "@", " ", "\t", "é", ":80", "-", "%20"]), max_size=8).map("".join))
@example("https://images.example.org/2015/07/p006668.jpg")
@example("http://")
@example("http://[x")
def test_the_web_url_shortcut_agrees(url: str) -> None:
    assert content._is_web_url(url) == slow_is_web_url(url)
