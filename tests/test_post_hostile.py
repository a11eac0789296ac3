"""Hostile post files from the security review: each becomes a Post or a Problem, never an exception.

And whatever a post that loads holds, its feeds still serialise: Atom and RSS parse as XML,
JSON Feed as JSON.
"""

from __future__ import annotations

import itertools
import json
import re
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import examples, front_matter_post, parse
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from feedsvc import content
from feedsvc.catalog import ALL, sort_key
from feedsvc.config import Settings, load_settings
from feedsvc.content import load_post
from feedsvc.markup import render_markdown
from feedsvc.model import FeedFormat, Post, Problem
from feedsvc.paging import cursor, paginate, parse_cursor
from feedsvc.render import render_feed
from feedsvc.urls import feed_info

SETTINGS = load_settings(env={}, base_url="https://news.example.com")
UPDATED = datetime(2030, 1, 1, tzinfo=UTC)
MAX_MESSAGE = 300
# What XML 1.0 forbids, literally or as a numeric character reference (feedgen and lxml refuse both).
ILLEGAL_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
CHAR_REF = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")


def load(text: str, **overrides: object) -> Post | Problem:
    settings = load_settings(env={}, base_url="https://news.example.com", **overrides) if overrides else SETTINGS
    return load_post("post.md", text.encode("utf-8", "surrogatepass"), settings)


def post_with(*lines: str, title: str = "T", date: str = "2020-01-01", body: str = "body") -> str:
    """A post file: title on line 2, date on line 3, then `lines` from line 4."""
    return "\n".join(["---", f"title: {title}", f"date: {date}", *lines, "---", body, ""])


def problem_of(text: str, **overrides: object) -> Problem:
    result = load(text, **overrides)
    assert isinstance(result, Problem), result
    assert len(result.message) < MAX_MESSAGE, result.message[:400]
    return result


def is_xml_char(code: int) -> bool:
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def assert_xml_safe(html: str) -> None:
    assert not ILLEGAL_CHAR.search(html), repr(html)
    for hexa, decimal in CHAR_REF.findall(html):
        assert is_xml_char(int(hexa, 16) if hexa else int(decimal)), repr(html)


def render_all(post: Post, body: str, settings: Settings = SETTINGS) -> None:
    """The post's Atom, RSS and JSON feeds serialise, and parse back with the post in them."""
    page = paginate(ALL, [post], before=None, limit=10, url=lambda c: f"https://news.example.com/feeds/all?b={c}")
    assert page is not None
    for fmt in FeedFormat:
        html = {post.source: render_markdown(body, post.url)}
        rendered = render_feed(feed_info(settings, ALL), page, fmt, bodies=html, updated=UPDATED)
        if fmt is FeedFormat.JSON:
            assert len(json.loads(rendered.body)["items"]) == 1
        else:
            root = etree.fromstring(rendered.body)
            assert len(root.findall(".//{*}entry") or root.findall("channel/item")) == 1


# 1. URLs that urllib cannot split ------------------------------------------------------------------------------


@pytest.mark.parametrize("image", ["'https://[::1'", "'http://[x'", "'https://a]b.example/'", "'//[::1'"])
def test_unsplittable_image_is_a_problem(image: str) -> None:
    problem = problem_of(post_with(f"image: {image}"))
    assert problem.line == 4 and "image" in problem.message


@pytest.mark.parametrize("uri", ["'http://[x'", "'https://[::1'", "'http://a]b/'", "'http://a b/'"])
def test_unsplittable_author_uri_is_dropped(uri: str) -> None:
    post = load(post_with(f"author: {{name: Ann, uri: {uri}}}"))
    assert isinstance(post, Post), post
    assert post.authors[0].name == "Ann" and post.authors[0].uri is None
    render_all(post, "body")


# 2. Numbers that YAML reads as ints or floats, used as text -----------------------------------------------------

HUGE_NUMBERS = ["0x" + "f" * 4000, "0b" + "1" * 20000, "0o" + "7" * 6000, "1" + ":2" * 3000, "-0x" + "a" * 5000]


@pytest.mark.parametrize("number", HUGE_NUMBERS, ids=["hex", "binary", "octal", "sexagesimal", "negative-hex"])
@pytest.mark.parametrize("where", ["title: {}", "title: !!int {}", "categories: [{}, news]", "tags: {}",
                                   "description: {}"])
def test_a_number_too_long_to_print_is_text(number: str, where: str) -> None:
    line = where.format(number)
    result = load(post_with(title=line[7:]) if line.startswith("title: ") else post_with(line))
    assert isinstance(result, Post), result
    assert number in (result.title, result.summary, *(t.name for t in result.categories + result.tags))


@pytest.mark.parametrize(("raw", "title"), [("0x1F", "0x1F"), ("1.10", "1.10"), ("1_000", "1_000"), ("007", "007"),
                                            (".inf", ".inf"), ("1e400", "1e400"), ("!!float 2", "2")])
def test_numbers_keep_the_text_the_editor_wrote(raw: str, title: str) -> None:
    post = load(post_with(title=raw))
    assert isinstance(post, Post), post
    assert post.title == title


# 3. Dates at the ends of the range -------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "zone"), [
    ("date", "'0001-01-01T00:00:00+05:00'", "UTC"),
    ("date", "'0001-01-01 04:59:59+05:00'", "UTC"),
    ("date", "'9999-12-31T23:00:00-05:00'", "UTC"),
    ("date", "'9999-12-31T23:59:59.999999-00:01'", "UTC"),
    ("date", "'0001-01-01T00:00:00Z'", "America/New_York"),  # fine in UTC, not in the site's zone
    ("date", "'9999-12-31T23:00:00Z'", "Asia/Tokyo"),
    ("date", "0001-01-01", "Asia/Tokyo"),  # a naive date is in the site's zone: before year 1 in UTC
    ("date", "!!timestamp 0001-01-01 00:00:00 +05:00", "UTC"),
    ("updated", "'9999-12-31T23:00:00-05:00'", "UTC"),
])
def test_date_beyond_the_range_is_a_problem(key: str, value: str, zone: str) -> None:
    problem = problem_of(post_with(date=value) if key == "date" else post_with(f"{key}: {value}"), timezone=zone)
    assert problem.line == (3 if key == "date" else 4)
    assert key in problem.message and "out of range" in problem.message


@pytest.mark.parametrize(("value", "zone"), [
    ("'0001-01-01T00:00:00Z'", "UTC"), ("'0001-01-01T00:00:00Z'", "Asia/Tokyo"),
    ("'9999-12-31T23:59:59.999999Z'", "UTC"),
    ("'9999-12-31T23:59:59Z'", "America/New_York"), ("0999-06-01", "UTC"),
])
def test_dates_at_the_ends_of_the_range_publish(value: str, zone: str) -> None:
    settings = load_settings(env={}, base_url="https://news.example.com", timezone=zone)
    post = load(post_with(date=value), timezone=zone)
    assert isinstance(post, Post), post
    render_all(post, "body", settings)


def test_dates_are_aware_utc_even_at_the_edges() -> None:
    post = load(post_with(date="'0001-01-01T23:59:59+23:59'"))
    assert isinstance(post, Post), post
    assert post.date == datetime(1, 1, 1, 0, 0, 59, tzinfo=UTC) and post.date.tzinfo is UTC


# 4. Bodies with character references to what XML forbids ---------------------------------------------------------

HOSTILE_BODIES = [
    "x &#1; y", "&#x0B;", "a &#xFFFE; b", "&#xFFFF;", "&#xD800; &#xDFFF; &#x110000; &#0; &#9999999;",
    "&#x1FFFE; &#x10FFFF; &#65534;", "<p>&#1; &#xFFFE; &#0;</p>", "[a](http://x.example/&#1;&#xFFFF; 'ti&#1;tle')",
    "<a href='http://x.example/&#1;' title='&#x0C;'>q</a>", "`&#1;` and\n\n    &#xFFFE;\n", "![&#1;](/i.png '&#8;')",
    "| a &#1; |\n|---|\n| &#xFFFE; |", "raw \x00\x0b\ufffe\uffff characters", "&#x00000000041; &#00000065;",
]


@pytest.mark.parametrize("body", [*HOSTILE_BODIES, "lone \ud800 and \udfff surrogates"])
def test_rendered_body_is_xml_safe(body: str) -> None:
    assert_xml_safe(render_markdown(body, "https://news.example.com/posts/p"))


def test_references_to_legal_characters_still_render() -> None:
    html = render_markdown("&#65; &#x42; &amp; &#x1F600; `&#65;` &#1; `&#1;`", "https://news.example.com/posts/p")
    # A reference to a forbidden character is U+FFFD, also in code, which cmark would otherwise show as written.
    assert html == "<p>A B &amp; \U0001f600 <code>&amp;#65;</code> \ufffd <code>\ufffd</code></p>\n"


def test_hostile_bodies_make_valid_served_feeds(content_dir: Path, make_app: Callable[..., Flask]) -> None:
    for index, body in enumerate(HOSTILE_BODIES):
        text = front_matter_post(title=f"Post {index}", date=f"2025-01-{index + 1:02d}", categories="[news]",
                                 body=body)
        (content_dir / f"p{index}.md").write_text(text, "utf-8", "surrogatepass")
    app = make_app()
    client = app.test_client()
    assert app.extensions["feedsvc"].snapshot.problems == ()
    titles = {f"Post {index}" for index in range(len(HOSTILE_BODIES))}
    for fmt in ("atom", "rss"):
        response = client.get(f"/feeds/all.{fmt}")
        assert response.status_code == 200
        etree.fromstring(response.data)
        assert {entry.title for entry in parse(response).entries} == titles
    assert {item["title"] for item in json.loads(client.get("/feeds/all.json").data)["items"]} == titles


# 5. Author e-mail and URI with characters XML forbids -----------------------------------------------------------


@pytest.mark.parametrize(("fields", "email", "uri"), [
    ('email: "a@b.example\\uFFFE"', "a@b.example", None),
    ('uri: "http://a.example/\\uFFFF"', None, "http://a.example/"),
    ('email: "\\x0ba@b.example\\x00", uri: "https://a.example/\\x1f~"', "a@b.example", "https://a.example/~"),
    ('email: "\\uFFFE"', None, None),
])
def test_author_email_and_uri_are_cleaned(fields: str, email: str | None, uri: str | None) -> None:
    post = load(post_with(f"author: {{name: Ann, {fields}}}"))
    assert isinstance(post, Post), post
    assert (post.authors[0].email, post.authors[0].uri) == (email, uri)
    render_all(post, "body")


# 6. Aliases that expand a tiny file into a huge value ------------------------------------------------------------


def laughs(last: str, levels: int = 9) -> str:
    """The billion laughs: each anchor is a list of nine aliases to the one before; `last` uses the top one."""
    names = "abcdefghijk"[:levels]
    lines = [f"a: &a [{', '.join(['lol'] * 9)}]"]
    lines += [f"{x}: &{x} [{', '.join([f'*{p}'] * 9)}]" for p, x in itertools.pairwise(names)]
    return "\n".join(["---", "title: T", "date: 2020-01-01", *lines, last.replace("TOP", names[-1]), "---", "boom", ""])


def laughs_within(key: str) -> str:
    """The same bomb inside one value, so that no other key is large."""
    levels = [f"&l0 [{', '.join(['lol'] * 9)}]"] + [f"&l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 9)]
    return f"---\ntitle: T\ndate: 2020-01-01\n{key}: [{', '.join(levels)}]\n---\n"


LAUGHS = [laughs(f"{key}: *TOP") for key in ("categories", "draft", "date", "image", "title", "featured", "author",
                                             "tags", "feed", "id", "slug", "summary", "updated")]
LAUGHS += [
    laughs("author: {name: *TOP}"), laughs("author: [{name: A, email: *TOP, uri: *TOP}]"),
    laughs("tags: [x, *TOP]"), laughs("draft: {<<: *TOP}"), laughs("x: {y: [*TOP, *TOP]}"),
    "---\ntitle: T\ndate: 2020-01-01\na: &a [*a]\ncategories: *a\n---\n",  # an alias to the list it is in
    "---\ntitle: T\ndate: 2020-01-01\ndraft: &d {x: [*d]}\n---\n",
    "---\ntitle: &t [*t, *t]\ndate: 2020-01-01\n---\n",
    *(laughs_within(key) for key in ("featured", "categories", "draft", "author", "image", "title")),
]


@pytest.mark.parametrize("text", LAUGHS, ids=range(len(LAUGHS)))
def test_alias_bombs_are_small_problems(text: str) -> None:
    tracemalloc.start()
    try:
        problem = problem_of(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak
    assert problem.line is not None


def test_the_key_a_post_reads_is_blamed_first() -> None:
    problem = problem_of(laughs("categories: *TOP"))
    assert problem.line == 13 and problem.message.startswith("categories: ")
    assert "too large" in problem.message and "alias" in problem.message


def test_aliases_within_the_budget_still_work() -> None:
    post = load(post_with("common: &tags [x, y]", "tags: *tags", "base: &who {name: Ann}", "author: *who"))
    assert isinstance(post, Post), post
    assert [t.name for t in post.tags] == ["x", "y"] and post.authors[0].name == "Ann"


@pytest.mark.parametrize("value", [[1] * 5, {"a": [1, [2, [3, [4, [5]]]]]}, "x" * 10_000, list(range(1000)),
                                   {str(i): i for i in range(50)}])
def test_problem_messages_stay_short(value: object) -> None:
    for key in ("draft", "date", "image", "id", "feed"):
        text = json.dumps(value)
        problem = problem_of(post_with(date=text) if key == "date" else post_with(f"{key}: {text}"))
        assert key in problem.message


# 7. Duplicate keys -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lines", "line", "key", "first"), [
    (["draft: true", "draft: false"], 5, "draft", 4),
    (["title: Again"], 4, "title", 2),
    (["author: {name: A, name: B}"], 4, "name", 4),
    (["author:", "  name: A", "  email: a@b.example", "  name: B"], 7, "name", 5),
    (["'draft': true", "\"draft\": false"], 5, "draft", 4),
    (["1: a", "'1': b"], 5, "1", 4),
])
def test_duplicate_keys_are_a_problem(lines: list[str], line: int, key: str, first: int) -> None:
    problem = problem_of(post_with(*lines))
    assert problem.line == line
    assert f"duplicate key '{key}' (first on line {first})" in problem.message


def test_merge_keys_still_work() -> None:
    post = load(post_with("base: &base {name: Ann, uri: 'https://ann.example/'}", "other: &other {email: a@b.example}",
                          "author:", "  <<: [*base, *other]", "  name: Ann Lee"))
    assert isinstance(post, Post), post
    assert post.authors[0].name == "Ann Lee" and post.authors[0].uri == "https://ann.example/"
    assert post.authors[0].email == "a@b.example"


# 8. Cursors before year 1000 -------------------------------------------------------------------------------------


def dated(moment: datetime, slug: str) -> Post:
    return Post(source=f"{slug}.md", slug=slug, id=f"urn:x:{slug}", url=f"https://x.example/{slug}", title=slug,
                date=moment, updated=moment)


@settings(max_examples=examples(300), deadline=None)
@given(moment=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999),
                           timezones=st.just(UTC)),
       slug=st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True))
def test_cursor_round_trips_over_the_whole_range(moment: datetime, slug: str) -> None:
    post = dated(moment, slug)
    assert parse_cursor(cursor(post)) == sort_key(post)


def test_next_links_walk_past_posts_before_year_1000() -> None:
    moments = [datetime(2020, 1, 1, tzinfo=UTC), datetime(999, 12, 31, tzinfo=UTC), datetime(10, 5, 1, 1, tzinfo=UTC),
               datetime(1, 1, 1, tzinfo=UTC)]
    posts = sorted((dated(m, f"p{i}") for i, m in enumerate(moments)), key=sort_key)
    seen, before = [], None
    for _ in range(len(posts) + 1):
        page = paginate(ALL, posts, before=before, limit=1, url=lambda c: c or "")
        assert page is not None, before
        seen += [p.slug for p in page.posts]
        if page.links.next is None:
            break
        before = page.links.next
    assert seen == [p.slug for p in posts]


# 9. Anything at all in any key load_post reads -------------------------------------------------------------------

KEYS = ["title", "date", "updated", "slug", "id", "description", "summary", "categories", "category", "tags",
        "author", "authors", "image", "draft", "feed", "featured"]
PRELUDE = "anchor: &anchor [1, [2, 3], {x: y}]\nmap: &map {name: Ann, email: a@b.example}\n"
RAW = [  # YAML as an editor, or someone else, might type it under any key
    "0x" + "f" * 4400, "0b" + "1" * 15000, "1" + ":5" * 2000, "1" * 5000, ".nan", "-.inf", "1e999", "~", "No", "yes",
    "'0001-01-01T00:00:00+05:00'", "9999-12-31T23:59:59-01:00", "'9999-12-31T23:59:59.999999Z'", "0001-01-01",
    "'2020-02-30'", "2020-09-06-22-23-29", "!!timestamp 0001-01-01 00:00:00 +05:00", "!!timestamp 2001-12-14t21:59:43Z",
    "'https://[::1'", "'http://[x'", "/images/a.png", "//evil.example/x", "'javascript:alert(1)'", "!!binary aGk=",
    "!!set {a, b}", "!!omap [a: 1, b: 2]", '"\\x00\\x0b\\uFFFE\\uFFFF\\e"', '"a@b\\uFFFE"', '"http://a.example/\\uFFFF"',
    "*anchor", "[*anchor, *anchor]", "{<<: *map, name: x}", "tag:x.example,2020:a", "'urn:\\x01'", '"\\ud800"',
    "!!python/object:os.system {}",
]


def mixed(*tokens: str, max_size: int) -> st.SearchStrategy[str]:
    """Any characters, and some that matter here more often than chance would pick them."""
    return st.lists(st.characters(codec="utf-8") | st.sampled_from(tokens), max_size=max_size).map("".join)


texts = mixed("\x00", "\x01", "\x0b", "\x1f", "\x7f", "\ufffe", "\uffff", "\u2028", "\x85", "0x", "&#1;", "@",
              "http://", ":", "'", max_size=30)
offsets = st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))
dates = (st.datetimes() | st.datetimes(timezones=offsets)).map(datetime.isoformat)  # often at the ends of the range
plain = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(10**20, 10**80), st.floats(allow_nan=False),
                  texts, dates)
nested = st.recursive(plain, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["name", "email", "uri", "url"]) | texts, inner, max_size=4), max_leaves=10)


def as_yaml(value: object) -> str:
    """JSON is YAML too; C1 controls escaped, which libyaml refuses raw (a Problem, but a dull one)."""
    return re.sub("[\x80-\x9f]", lambda c: f"\\u{ord(c[0]):04x}", json.dumps(value, default=str, ensure_ascii=False))


one = st.one_of(texts.map(as_yaml), nested.map(as_yaml), st.sampled_from(RAW))
values = st.one_of(one, texts.map(as_yaml), st.lists(one, min_size=1, max_size=3).map(lambda v: f"[{', '.join(v)}]"),
                   st.dictionaries(st.sampled_from(["name", "email", "uri", "url"]), one, min_size=1).map(
                       lambda fields: "{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"))
front_matter = st.dictionaries(st.sampled_from(KEYS), values, max_size=5)
bodies = mixed("&#0;", "&#1;", "&#xD800;", "&#x110000;", "&#xFFFF;", "&#xFFFE;", "&#x0B;", "&#65;", "&#9999999;",
               "&#x1FFFE;", "<p>", "</p>", "<a href='&#1;'>", "`", "\n\n", "    ", "*", "[x](", ")", "\x00", "\ufffe",
               max_size=200)


def as_file(meta: dict[str, str], body: str) -> bytes:
    head = "".join(f"{key}: {value}\n" for key, value in meta.items())
    return f"---\n{PRELUDE}{head}---\n{body}".encode("utf-8", "surrogatepass")


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=front_matter, body=bodies, usable=st.integers(0, 3).map(bool))
def test_any_post_file_gives_a_post_or_a_short_problem(meta: dict[str, str], body: str, usable: bool) -> None:
    if usable:  # mostly a date that works and a title, so that more examples get as far as the feeds
        meta = {"title": "T", **meta, "date": "2020-01-01"}
    result = load_post("any.md", as_file(meta, body), SETTINGS)
    assert isinstance(result, Post | Problem)
    if isinstance(result, Problem):
        assert result.path == "any.md" and 0 < len(result.message) < MAX_MESSAGE
        return
    assert result.date.tzinfo is UTC and result.updated >= result.date
    render_all(result, body)


def test_an_unexpected_error_is_a_problem_too(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> Post:
        raise RuntimeError("x" * 10_000)

    monkeypatch.setattr(content, "_build_post", broken)
    problem = problem_of(post_with())
    assert problem.message.startswith("cannot be read: RuntimeError: xxx")


def test_ids_of_posts_before_year_1000_are_valid_tag_uris(tmp_path: Path) -> None:
    settings = load_settings(env={}, content_dir=tmp_path, base_url="https://example.org")
    post = load_post("old.md", b"---\ntitle: Old\ndate: 0999-03-04T05:06:07Z\n---\nBody\n", settings)
    assert isinstance(post, Post)
    assert post.id == "tag:example.org,0999-03-04:old"  # RFC 4151: date = year [ "-" month [ "-" day ] ], 4 digits
