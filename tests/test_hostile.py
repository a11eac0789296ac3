"""Broken and hostile posts: each gets a clear problem, and every feed stays valid for everyone else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import front_matter_post, parse
from flask import Flask
from lxml import etree

from feedsvc.cli import main

TOKEN = "operator-token-for-tests"  # FEEDSVC_ADMIN_TOKEN: /healthz names files only to the operator
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}
GOOD = front_matter_post(title="Good neighbour", date="2025-01-01-00-00-00", categories="[news]")
BILLION_LAUGHS = "---\ntitle: T\ndate: 2020-01-01\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{x}: &{x} [{', '.join([f'*{p}'] * 9)}]\n" for p, x in zip("abcdefgh", "bcdefghi", strict=True)
) + "categories: *i\n---\nboom\n"

# (file name, bytes, line or None, words the reason must contain)
BROKEN: list[tuple[str, bytes, int | None, str]] = [
    ("yaml.md", b"---\ntitle: T\ndate: 2020-01-01\ncategories: [a, b\n---\n", 5, "invalid YAML"),
    ("list.md", b"---\n- a\n- b\n---\n", 2, "key: value"),
    ("scalar.md", b"---\njust a string\n---\nbody\n", 2, "key: value"),
    ("unclosed.md", b"---\ntitle: T\ndate: 2020-01-01\nbody without a closing line\n", 1, "never closed"),
    ("no-title.md", b"---\ndate: 2020-01-01\n---\n", None, "title: is required"),
    ("empty-title.md", b"---\ntitle: ''\ndate: 2020-01-01\n---\n", 2, "title: is required"),
    ("no-date.md", b"---\ntitle: T\n---\n", None, "date: is required"),
    ("impossible.md", b"---\ntitle: T\ndate: 2020-02-30\n---\n", 3, "day is out of range"),
    ("title-no.md", b"---\ntitle: No\ndate: 2020-01-01\n---\n", 2, "quotes"),
    ("latin1.md", "---\ntitle: Caf\xe9\ndate: 2020-01-01\n---\n".encode("latin-1"), 2, "not UTF-8"),
    ("empty.md", b"", 1, "no front matter"),
    ("binary.md", bytes(range(256)) * 4, 2, "not UTF-8"),  # 0x80 comes after the \n at 0x0a
    ("laughs.md", BILLION_LAUGHS.encode(), 13, "categories"),
    ("deep.md", b"---\ntitle: T\ndate: 2020-01-01\nx: " + b"[" * 20000 + b"]" * 20000 + b"\n---\n", 4, "nesting"),
    ("many.md", ("---\ntitle: T\ndate: 2020-01-01\ncategories: [" + ", ".join(f"c{i}" for i in range(5000))
                 + "]\n---\n").encode(), 4, "at most"),
    ("image.md", b"---\ntitle: T\ndate: 2020-01-01\nimage: 'javascript:alert(1)'\n---\n", 4, "image"),
]


@pytest.fixture
def check(content_dir: Path, capsys: pytest.CaptureFixture[str]) -> Callable[[], tuple[int, str]]:
    def run() -> tuple[int, str]:
        code = main(["check", "--content", str(content_dir)])
        return code, capsys.readouterr().out
    return run


def assert_feeds_valid(app: Flask, expect_titles: set[str]) -> None:
    client = app.test_client()
    for path in app.extensions["feedsvc"].snapshot.feeds:
        response = client.get(f"/feeds/{path}")
        assert response.status_code == 200, path
        if path.endswith(".json"):
            assert response.json is not None
            continue
        etree.fromstring(response.data)  # well-formed XML, or this raises
        assert {e.title for e in parse(response).entries} <= expect_titles, path
    assert {e.title for e in parse(client.get("/feeds/all.atom")).entries} == expect_titles


@pytest.mark.parametrize(("name", "data", "line", "reason"), BROKEN, ids=[row[0] for row in BROKEN])
def test_broken_post_is_named_and_isolated(
        name: str, data: bytes, line: int | None, reason: str, content_dir: Path,
        make_app: Callable[..., Flask], check: Callable[[], tuple[int, str]]) -> None:
    (content_dir / "good.txt").write_text(GOOD, "utf-8")
    (content_dir / name).write_bytes(data)
    app = make_app(admin_token=TOKEN)
    assert_feeds_valid(app, {"Good neighbour"})
    problems = app.test_client().get("/healthz", headers=OPERATOR).json["problems"]
    assert [(p["file"], p["line"]) for p in problems] == [(name, line)]
    assert reason in problems[0]["message"]
    code, out = check()
    assert code == 1
    assert out.startswith(f"{name}:{line}: " if line else f"{name}: ")


def test_oversized_file_is_refused_without_reading_it(content_dir: Path, make_app: Callable[..., Flask]) -> None:
    (content_dir / "good.txt").write_text(GOOD, "utf-8")
    big = content_dir / "huge.md"
    with big.open("wb") as f:
        f.write(b"---\ntitle: Huge\ndate: 2020-01-01\n---\n")
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MB without using the disk
    app = make_app(max_post_bytes=1024 * 1024, admin_token=TOKEN)
    assert_feeds_valid(app, {"Good neighbour"})
    problem = app.test_client().get("/healthz", headers=OPERATOR).json["problems"][0]
    assert problem["file"] == "huge.md" and "FEEDSVC_MAX_POST_BYTES" in problem["message"]


@pytest.mark.parametrize("text", ["]]>", "<b>bold</b> & <i>", "'single' \"double\"", "&amp; &lt; &#x41;",
                                  "\x00\x0b\x1f\ufffe\uffff nul and friends", "emoji \U0001f600 and RTL \u202e"])
def test_awkward_text_in_every_field(text: str, write_post: Callable[..., Path],
                                     make_app: Callable[..., Flask]) -> None:
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    write_post("odd.md", title=quoted, description=quoted, categories=f"[{quoted}, plain]",
               tags=f"[{quoted}]", author=quoted, body=f"{text}\n\n<p>{text}</p>")
    app = make_app()
    client = app.test_client()
    clean = "".join(c for c in text if c not in "\x00\x0b\x1f\ufffe\uffff").strip()
    for fmt in ("atom", "rss"):
        response = client.get(f"/feeds/all.{fmt}")
        etree.fromstring(response.data)
        entry = parse(response).entries[0]
        assert entry.title == clean
    item = client.get("/feeds/all.json").json["items"][0]
    assert item["title"] == clean and item["summary"] == clean
    assert client.get("/").status_code == 200
    assert client.get("/posts/odd").status_code == 200


def test_bom_and_crlf_are_fine(content_dir: Path, make_app: Callable[..., Flask]) -> None:
    text = GOOD.replace("\n", "\r\n")
    (content_dir / "bom.txt").write_bytes(b"\xef\xbb\xbf" + text.encode())
    app = make_app()
    assert app.test_client().get("/healthz").json["problem_count"] == 0
    assert_feeds_valid(app, {"Good neighbour"})
