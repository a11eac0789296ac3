"""`feedsvc new`: the file it names and writes, the path it prints, and that feedsvc reads the post
back with exactly the title, categories, tags and date it was made with."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

import feedparser
import pytest
from conftest import WritePost, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedsvc.cli import main
from feedsvc.config import Settings, load_settings
from feedsvc.content import load_post, slug_for
from feedsvc.model import FeedFormat, Post
from feedsvc.publisher import Publisher
from feedsvc.skeleton import SkeletonError, date_text, new_post
from feedsvc.yamlfront import clean_text

WHEN = "2025-03-04T05:06:07Z"
WHEN_UTC = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
CATEGORIES = ["Health & Science", "news"]
SETTINGS = load_settings(env={}, base_url="https://feeds.example.org")  # UTC

# The awkward titles and the file each one gets.
TITLES = {
    "No": "no",
    "Yes: really": "yes-really",
    "# hash": "hash",
    '"quoted"': "quoted",
    "Café — naïve": "cafe-naive",
    "[bracket]": "bracket",
    "a & b": "a-b",
}
# More values YAML would misread as plain text: booleans, null, numbers, dates, indicators,
# comments, flow syntax, escapes and invisible or line-breaking characters.
MORE_TITLES = [
    "yes", "OFF", "null", "~", "y", "2024", "3.14", "0x1F", "1_000", ".inf", "2025-01-02", "12:30:00",
    "'single'", "Ends with a colon:", "C# and F#", "x #not a comment", "- dash", "? question", "{brace}",
    "*star", "&anchor", "!tag", "%percent", "@at", "`tick`", "|pipe", ">gt", "<< merge", "=",
    "back\\slash", 'say "hi"', "tab\there", "zero\u200bwidth", "line\u2028separator", "no\xa0break",
    "emoji 🎉 party", "bell\x07ring", "日本語のタイトル", "  padded  ",
]
AWKWARD_TERMS = ["Health & Science", "No", "a, b", "[x]", "key: value", "C#", "#1", "{y}", "true", "'q'", "Zürich"]


@pytest.fixture(autouse=True)
def no_feedsvc_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command reads FEEDSVC_* variables; the tests say what they want explicitly."""
    for key in list(os.environ):
        if key.startswith("FEEDSVC_"):
            monkeypatch.delenv(key)


def new(content_dir: Path, title: str, *options: str,
        capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["new", title, *options, "--content", str(content_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def made(out: str) -> Path:
    """The one line `feedsvc new` prints: the path of the file it wrote."""
    lines = out.splitlines()
    assert len(lines) == 1, out
    path = Path(lines[0])
    assert path.is_file(), path
    return path


def read_back(path: Path, content_dir: Path, settings: Settings) -> Post:
    post = load_post(path.relative_to(content_dir).as_posix(), path.read_bytes(), settings)
    assert isinstance(post, Post), post
    return post


def as_read(text: str) -> str:
    """What feedsvc reads back of a name: XML-illegal characters dropped, whitespace runs made one space."""
    return " ".join(clean_text(text).split())


# --- what the command writes -----------------------------------------------------------------

@pytest.mark.parametrize("title", TITLES)
def test_new_names_the_file_after_the_title_and_reads_back_exactly(
        title: str, content_dir: Path, make_settings: Callable[..., Settings],
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = new(content_dir, title, "--category", "Health & Science", "--category", "news",
                         "--tag", "No", "--tag", "a, b", "--date", WHEN, capsys=capsys)
    assert code == 0, err
    path = made(out)
    assert path == content_dir / "2025" / f"{TITLES[title]}.md"
    post = read_back(path, content_dir, make_settings())
    assert post.title == title
    assert [t.name for t in post.categories] == CATEGORIES
    assert [t.name for t in post.tags] == ["No", "a, b"]
    assert post.date == WHEN_UTC
    assert post.slug == TITLES[title]
    assert not post.draft
    assert err == ""


@pytest.mark.parametrize("title", MORE_TITLES)
def test_any_title_reads_back_as_written(title: str) -> None:
    relative, text = new_post(title, CATEGORIES, [], WHEN_UTC, UTC)
    post = load_post(relative.as_posix(), text.encode(), SETTINGS)
    assert isinstance(post, Post), (text, post)
    assert post.title == as_read(title)
    assert post.slug == relative.stem


@pytest.mark.parametrize("term", AWKWARD_TERMS)
def test_any_category_or_tag_reads_back_as_written(term: str) -> None:
    relative, text = new_post("Terms", [term, "news"], [term, "plain"], WHEN_UTC, UTC)
    post = load_post(relative.as_posix(), text.encode(), SETTINGS)
    assert isinstance(post, Post), (text, post)
    assert [t.name for t in post.categories] == [term, "news"]
    assert [t.name for t in post.tags] == [term, "plain"]


@given(title=st.text(min_size=1, max_size=60), terms=st.lists(st.text(min_size=1, max_size=20), max_size=4))
@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_text_round_trips(title: str, terms: list[str]) -> None:
    try:
        relative, text = new_post(title, terms, terms, WHEN_UTC, UTC)
    except SkeletonError:  # empty once cleaned, or a term with no letters or digits
        return
    post = load_post(relative.as_posix(), text.encode(), SETTINGS)
    assert isinstance(post, Post), (text, post)
    assert post.title == as_read(title)
    expected: dict[str, str] = {}
    for term in terms:
        expected.setdefault(slug_for(as_read(term)), as_read(term))  # the first spelling of a slug
    assert [t.name for t in post.categories] == [t.name for t in post.tags] == list(expected.values())
    assert post.date == WHEN_UTC
    assert post.slug == relative.stem


def test_skeleton_is_in_the_style_of_the_real_content() -> None:
    relative, text = new_post("Harbour ferry returns", ["latest", "news"], ["ferry"],
                              datetime(2020, 9, 6, 18, 42, 10, 999, tzinfo=UTC), UTC)
    assert relative == PurePosixPath("2020/harbour-ferry-returns.md")
    assert text == (
        "---\n"
        "extends: _layouts.post\n"
        "section: content\n"
        "title: Harbour ferry returns\n"
        "description:\n"
        "date: 2020-09-06-18-42-10\n"
        "categories: [latest, news]\n"
        "tags: [ferry]\n"
        "---\n"
    )


def test_draft_is_written_but_never_published(content_dir: Path, make_settings: Callable[..., Settings],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = new(content_dir, "Budget explainer", "--category", "news", "--draft", capsys=capsys)
    assert code == 0
    path = made(out)
    assert "\ndraft: true\n" in path.read_text("utf-8")
    assert read_back(path, content_dir, make_settings()).draft
    snapshot = Publisher(make_settings()).rebuild()
    assert snapshot.post_count == 0 and not snapshot.problems


def test_a_long_title_makes_a_short_file_name(content_dir: Path, make_settings: Callable[..., Settings],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    title = "The harbour ferry " + "and the island bus " * 20 + "return"
    code, out, _ = new(content_dir, title, "--category", "news", capsys=capsys)
    assert code == 0
    path = made(out)
    assert len(path.stem) <= 80 and not path.stem.endswith("-")
    post = read_back(path, content_dir, make_settings())
    assert post.title == title and post.slug == path.stem


def test_a_title_without_letters_gets_a_generic_name(content_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = new(content_dir, "🎉🎉", "--category", "news", "--date", WHEN, capsys=capsys)
    assert code == 0
    assert made(out) == content_dir / "2025" / "post.md"


def test_the_file_ending_is_one_the_folder_uses(content_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FEEDSVC_EXTENSIONS", ".txt,.markdown")
    code, out, _ = new(content_dir, "Plain text", "--category", "news", "--date", WHEN, capsys=capsys)
    assert code == 0
    assert made(out) == content_dir / "2025" / "plain-text.txt"


# --- never overwrite, never share a slug -----------------------------------------------------

def test_the_same_title_again_never_overwrites(content_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--category", "news", "--date", WHEN)
    first = made(new(content_dir, "Ferry returns", *args, capsys=capsys)[1])
    before = first.read_bytes()
    second = made(new(content_dir, "Ferry returns", "--category", "sport", "--date", WHEN, capsys=capsys)[1])
    third = made(new(content_dir, "Ferry returns", *args, capsys=capsys)[1])
    assert (first.name, second.name, third.name) == ("ferry-returns.md", "ferry-returns-2.md", "ferry-returns-3.md")
    assert first.read_bytes() == before
    assert "categories: [sport]" in second.read_text("utf-8")
    assert {p.name for p in first.parent.iterdir()} == {first.name, second.name, third.name}  # no temp files left


def test_a_file_made_after_the_folder_was_looked_at_is_not_overwritten(
        content_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Two editors making the same post at once: the second writer must not replace the first's file."""
    import feedsvc.cli

    first = made(new(content_dir, "Ferry returns", "--category", "news", "--date", WHEN, capsys=capsys)[1])
    before = first.read_bytes()
    monkeypatch.setattr(feedsvc.cli, "_slugs_in", lambda folder, extensions: set())  # it did not see `first`
    second = made(new(content_dir, "Ferry returns", "--category", "sport", "--date", WHEN, capsys=capsys)[1])
    assert second.name == "ferry-returns-2.md"
    assert first.read_bytes() == before
    assert {p.name for p in first.parent.iterdir()} == {first.name, second.name}


def test_a_slug_used_in_another_year_is_not_reused(content_dir: Path, write_post: WritePost,
                                                   make_settings: Callable[..., Settings],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    write_post("2020/harbour-ferry-returns.txt", title="Harbour ferry returns", date="2020-09-06-18-42-10")
    write_post("archive/Cup-Final.markdown", title="Cup final", date="2020-09-06-18-42-10")
    code, out, _ = new(content_dir, "Harbour ferry returns", "--category", "news", "--date", WHEN, capsys=capsys)
    assert code == 0
    assert made(out) == content_dir / "2025" / "harbour-ferry-returns-2.md"
    assert made(new(content_dir, "Cup final", "--category", "sport", capsys=capsys)[1]).stem == "cup-final-2"
    snapshot = Publisher(make_settings()).rebuild()
    assert snapshot.post_count == 4 and not snapshot.problems, snapshot.problems


# --- dates and time zones --------------------------------------------------------------------

def test_the_date_is_now_in_the_configured_zone(content_dir: Path, make_settings: Callable[..., Settings],
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FEEDSVC_TIMEZONE", "Pacific/Auckland")
    before = datetime.now(UTC).replace(microsecond=0)
    code, out, _ = new(content_dir, "Morning news", "--category", "news", capsys=capsys)
    after = datetime.now(UTC)
    assert code == 0
    path = made(out)
    post = read_back(path, content_dir, make_settings(timezone="Pacific/Auckland"))
    assert before <= post.date <= after
    local = post.date.astimezone(ZoneInfo("Pacific/Auckland"))
    assert path.parent.name == f"{local:%Y}"
    assert f"\ndate: {local:%Y-%m-%d-%H-%M-%S}\n" in path.read_text("utf-8")


def test_a_given_date_is_written_in_the_configured_zone(content_dir: Path, make_settings: Callable[..., Settings],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FEEDSVC_TIMEZONE", "America/New_York")
    code, out, _ = new(content_dir, "New year", "--category", "news", "--date", "2025-01-01T03:00:00+00:00",
                       capsys=capsys)
    assert code == 0
    path = made(out)
    assert path == content_dir / "2024" / "new-year.md"  # 22:00 on New Year's Eve in New York
    assert "\ndate: 2024-12-31-22-00-00\n" in path.read_text("utf-8")
    post = read_back(path, content_dir, make_settings(timezone="America/New_York"))
    assert post.date == datetime(2025, 1, 1, 3, tzinfo=UTC)
    # Without an offset, --date is in the configured zone too (as dates in posts are).
    path = made(new(content_dir, "Local", "--category", "news", "--date", "2025-06-01 09:30", capsys=capsys)[1])
    assert "\ndate: 2025-06-01-09-30-00\n" in path.read_text("utf-8")


def test_an_hour_that_happens_twice_keeps_its_offset(make_settings: Callable[..., Settings]) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2025, 10, 26, 0, 30, tzinfo=UTC)  # 02:30 summer time
    second = first + timedelta(hours=1)  # 02:30 again, winter time
    assert date_text(first, berlin) == "2025-10-26-02-30-00"
    assert date_text(second, berlin) == "2025-10-26T02:30:00+01:00"
    for moment in (first, second):
        relative, text = new_post("Clocks go back", ["news"], [], moment, berlin)
        post = load_post(relative.as_posix(), text.encode(), make_settings(timezone="Europe/Berlin"))
        assert isinstance(post, Post) and post.date == moment


# --- the feeds -------------------------------------------------------------------------------

def test_the_new_post_is_in_the_feeds_built_from_the_folder(
        content_dir: Path, write_post: WritePost, make_settings: Callable[..., Settings],
        capsys: pytest.CaptureFixture[str]) -> None:
    write_post("2020/older.md", title="Older", date="2020-09-06-18-42-10", categories="[news]")
    code, out, _ = new(content_dir, "Yes: really", "--category", "Health & Science", "--category", "news",
                       "--tag", "No", capsys=capsys)
    assert code == 0
    slug = made(out).stem
    publisher = Publisher(make_settings())
    snapshot = publisher.rebuild()
    assert not snapshot.problems, snapshot.problems
    assert snapshot.posts[slug].title == "Yes: really"
    for path in ("all", "category/health-science", "category/news", "tag/no"):
        feed = publisher.page(path, FeedFormat.ATOM)
        assert feed is not None, path
        parsed = feedparser.parse(feed.body)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.entries[0].title == "Yes: really", path  # the newest
    assert {t.term for t in feedparser.parse(publisher.page("all", FeedFormat.ATOM).body).entries[0].tags} >= {
        "Health & Science", "news"}


# --- mistakes --------------------------------------------------------------------------------

def test_a_missing_content_folder_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-folder"
    code, out, err = new(missing, "Title", "--category", "news", capsys=capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "FEEDSVC_CONTENT_DIR" in err and str(missing) in err, err
    monkeypatch.setenv("FEEDSVC_CONTENT_DIR", str(missing))
    assert main(["new", "Title", "--category", "news"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not missing.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["   ", "--category", "news"], "the title is empty"),
    (["Title", "--category", "!!!"], "--category '!!!' has no letters or digits"),
    (["Title", "--category", "news", "--tag", "  "], "--tag '  ' has no letters or digits"),
    (["Title", "--category", "news", "--date", "next tuesday"], "--date: 'next tuesday' is not a valid date"),
    (["Title\udcff", "--category", "news"], "the title is not valid UTF-8"),
])
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(
        args: list[str], message: str, content_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = new(content_dir, *args, capsys=capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"feedsvc: {message}") and err.count("\n") == 1, err
    assert list(content_dir.rglob("*")) == []


def test_a_category_is_required(content_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["new", "Title", "--content", str(content_dir)])
    assert exit_.value.code == 2
    assert "--category" in capsys.readouterr().err
