"""A file's bytes -> Post or Problem: the formats editors write and the mistakes they make."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedsvc.config import load_settings
from feedsvc.content import load_post
from feedsvc.model import Author, Post, Problem, Term
from feedsvc.yamlfront import read_body

SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "000_8e8ec7cb684a81b7.txt"
SETTINGS = load_settings(env={}, base_url="https://news.example.com")

SEED_STYLE = (
    b"---\nextends: _layouts.post\nsection: content\n"
    b"image: https://img.example.com/2020/09/06/lead.jpg \n"
    b"title: Harbour ferry returns after refit \n"
    b"description: The ferry is back on its old timetable. \n"
    b"date: 2020-09-06-22-23-29 \n"
    b"categories: [latest, news] \nfeatured: true \n--- \n"
    b"First paragraph.\xc2\xa0\n\nSecond paragraph.\n\n"
)


def load(text: str | bytes, name: str = "post.md", **settings: object) -> Post | Problem:
    data = text.encode() if isinstance(text, str) else text
    return load_post(name, data, load_settings(env={}, base_url="https://news.example.com", **settings))


def test_seed_style_post() -> None:
    post = load(SEED_STYLE, "000_8e8ec7cb684a81b7.txt")
    assert isinstance(post, Post), post
    assert post.title == "Harbour ferry returns after refit"
    assert post.summary == "The ferry is back on its old timetable."
    assert post.date == datetime(2020, 9, 6, 22, 23, 29, tzinfo=UTC)
    assert post.categories == (Term(slug="latest", name="latest"), Term(slug="news", name="news"))
    assert post.image == "https://img.example.com/2020/09/06/lead.jpg"
    assert post.slug == "000-8e8ec7cb684a81b7"
    assert post.id == "tag:news.example.com,2020-09-06:000-8e8ec7cb684a81b7"
    assert post.url == "https://news.example.com/posts/000-8e8ec7cb684a81b7"
    assert read_body(SEED_STYLE).startswith("First paragraph.")


@pytest.mark.skipif(not SEED.exists(), reason="the real seed post is not beside the repository")
def test_real_seed_post() -> None:
    post = load(SEED.read_bytes(), SEED.name)
    assert isinstance(post, Post), post
    assert post.date == datetime(2020, 9, 6, 22, 23, 29, tzinfo=UTC)
    assert [t.slug for t in post.categories] == ["latest", "news"]
    assert post.image and post.image.startswith("https://")
    assert post.title and not post.title.endswith(" ")


@pytest.mark.parametrize(("value", "expected"), [
    ("2020-09-06-22-23-29", datetime(2020, 9, 6, 22, 23, 29, tzinfo=UTC)),
    ("2020-09-06T22:23:29Z", datetime(2020, 9, 6, 22, 23, 29, tzinfo=UTC)),
    ("2020-09-06T22:23:29+02:00", datetime(2020, 9, 6, 20, 23, 29, tzinfo=UTC)),
    ("2020-09-06 22:23:29", datetime(2020, 9, 6, 22, 23, 29, tzinfo=UTC)),
    ("'2020-09-06T22:23'", datetime(2020, 9, 6, 22, 23, tzinfo=UTC)),
    ("2020-09-06", datetime(2020, 9, 6, tzinfo=UTC)),
    ("'2020-09-06'", datetime(2020, 9, 6, tzinfo=UTC)),
])
def test_date_forms(value: str, expected: datetime) -> None:
    post = load(f"---\ntitle: T\ndate: {value}\n---\nbody\n")
    assert isinstance(post, Post), post
    assert post.date == expected
    assert post.date.tzinfo is UTC


def test_naive_dates_use_the_configured_zone() -> None:
    post = load("---\ntitle: T\ndate: 2020-07-01-12-00-00\n---\n", timezone="Europe/Paris")
    assert isinstance(post, Post)
    assert post.date == datetime(2020, 7, 1, 10, 0, tzinfo=UTC)


def test_optional_fields() -> None:
    post = load(
        "---\ntitle: T\ndate: 2021-01-01T00:00:00Z\nupdated: 2021-02-01T00:00:00Z\nslug: Custom Slug\n"
        "tags: [Deep Dive, deep dive, Data]\ncategories: Health & Science\n"
        "author: {name: Sam Rivera, email: sam@example.org, uri: https://example.org/sam}\n"
        "extends: _layouts.post\nfeatured: true\ndraft: true\nfeed: false\n---\n"
    )
    assert isinstance(post, Post), post
    assert post.slug == "custom-slug"
    assert post.updated == datetime(2021, 2, 1, tzinfo=UTC)
    assert post.categories == (Term(slug="health-science", name="Health & Science"),)
    assert [t.slug for t in post.tags] == ["deep-dive", "data"]
    assert post.authors == (Author(name="Sam Rivera", email="sam@example.org", uri="https://example.org/sam"),)
    assert post.draft and not post.in_feeds


def test_own_id_wins_and_title_edits_keep_the_id() -> None:
    own = load("---\ntitle: T\ndate: 2021-01-01\nid: urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427\n---\n")
    assert isinstance(own, Post) and own.id == "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    first = load("---\ntitle: First\ndate: 2021-01-01\n---\nOne", "a.md")
    second = load("---\ntitle: Second title\ndate: 2021-01-01\n---\nTwo", "a.md")
    assert isinstance(first, Post) and isinstance(second, Post)
    assert first.id == second.id


def test_bom_crlf_and_control_characters() -> None:
    data = "\ufeff---\r\ntitle: Bad\x0b title\uffff\r\ndate: 2021-01-01\r\n---\r\nBody\x00 here\r\n".encode()
    post = load(data)
    assert isinstance(post, Post), post
    assert post.title == "Bad title"
    assert read_body(data) == "Body here"


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("---\ntitle: T\ndate: [unclosed\n---\n", 4, "invalid YAML"),
    ("---\ntitle: T\n  bad: indent\n---\n", 3, "invalid YAML"),
    ("---\n- a\n- b\n---\n", 2, "key: value"),
    ("---\ntitle: T\ndate: 2021-01-01\n", 1, "never closed"),
    ("just text\n", 1, "no front matter"),
    ("", 1, "no front matter"),
    ("---\ndate: 2021-01-01\n---\n", None, "title: is required"),
    ("---\ntitle: '  '\ndate: 2021-01-01\n---\n", 2, "title: is empty"),
    ("---\ntitle: No\ndate: 2021-01-01\n---\n", 2, "quotes"),
    ("---\ntitle: T\n---\n", None, "date: is required"),
    ("---\ntitle: T\ndate: '2020-02-30'\n---\n", 3, "not a valid date"),
    ("---\ntitle: T\ndate: 2020-02-30\n---\n", 3, "day is out of range"),
    ("---\ntitle: T\ndate: yesterday\n---\n", 3, "not a valid date"),
    ("---\ntitle: T\ndate: 2021-01-01\ncategories: {a: 1}\n---\n", 4, "categories"),
    ("---\ntitle: T\ndate: 2021-01-01\nimage: javascript:alert(1)\n---\n", 4, "image"),
    ("---\ntitle: T\ndate: 2021-01-01\ndraft: maybe\n---\n", 4, "true or false"),
    ("---\ntitle: T\ndate: 2021-01-01\nid: not a uri\n---\n", 4, "URI"),
])
def test_broken_posts_name_line_and_reason(text: str, line: int | None, reason: str) -> None:
    problem = load(text, "broken.md")
    assert isinstance(problem, Problem), problem
    assert problem.path == "broken.md"
    assert problem.line == line
    assert reason in problem.message


def test_invalid_utf8_names_the_line() -> None:
    problem = load(b"---\ntitle: T\ndate: 2021-01-01\n---\nok\n\xff\xfe bad\n")
    assert isinstance(problem, Problem)
    assert problem.line == 6 and "UTF-8" in problem.message


# A source as the walk makes it: file and folder names, never a `.` of its own (pathlib drops those).
@given(st.lists(st.text(st.sampled_from("ab.-_ é"), min_size=1, max_size=8).filter(lambda name: name != "."),
                min_size=1, max_size=3))
@settings(max_examples=300)
def test_a_post_without_a_slug_takes_its_file_name_stem_as_pathlib_does(parts: list[str]) -> None:
    from pathlib import PurePosixPath

    from feedsvc.content import _stem

    source = "/".join(parts)
    assert _stem(source) == PurePosixPath(source).stem
