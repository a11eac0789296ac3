"""The Settings fields are the one description of the settings: the README's table is made from them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from feedsvc.config import Settings, env_name, load_settings_with_sources
from feedsvc.settingsdoc import README_BEGIN, README_END, markdown_table, readme_table, text_report

README = Path(__file__).resolve().parents[1] / "README.md"
FIELDS = dataclasses.fields(Settings)


def test_readme_table_is_the_generated_one() -> None:
    found = readme_table(README.read_text("utf-8"))
    assert found is not None, f"README.md has no table between {README_BEGIN} and {README_END}"
    assert found == markdown_table(), (
        "README.md's configuration table differs from config.py: edit the help in config.py, then put the "
        "output of `python -m feedsvc config --markdown` between the markers")


def test_the_table_has_one_row_per_setting_and_the_config_file() -> None:
    rows = markdown_table().splitlines()[2:]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == (
        ["`FEEDSVC_CONFIG`"] + [f"`{env_name(f.name)}`" for f in FIELDS])
    assert all(row.count(" | ") == 2 for row in rows)  # no `|` inside a cell splits it


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_every_setting_says_what_it_does(field: dataclasses.Field[object]) -> None:
    help_text = field.metadata["help"]
    assert len(help_text) > 10 and help_text.endswith("."), help_text  # a sentence, not a stub


def test_readme_table_is_found_only_between_the_markers() -> None:
    assert readme_table("no table here") is None
    assert readme_table(f"intro\n{README_BEGIN}\n\n| a |\n\n{README_END}\nrest") == "| a |\n"


def test_a_secret_is_never_shown_only_whether_it_is_set() -> None:
    token = "t0ken-only-the-operator-knows"
    settings, sources = load_settings_with_sources(env={"FEEDSVC_ADMIN_TOKEN": token})
    assert token not in repr(settings)
    report = text_report(settings, sources)
    assert token not in report
    assert "(set)" in next(line for line in report.splitlines() if line.startswith("FEEDSVC_ADMIN_TOKEN"))


def test_a_value_with_a_newline_stays_on_its_line() -> None:
    settings, sources = load_settings_with_sources(env={"FEEDSVC_SITE_TITLE": "Two\nlines"})
    report = text_report(settings, sources)
    assert len(report.splitlines()) == len(FIELDS)
    assert "Two\\x0alines" in report
