"""Settings: defaults, TOML file, environment and flags, in that order; errors name the setting."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from feedsvc.config import ConfigError, Settings, load_settings, load_settings_with_sources


def test_defaults() -> None:
    settings = load_settings(env={})
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.max_items == 50 and settings.rebuild_interval == 60
    assert settings.content_dir == Path("content")
    assert settings.extensions == (".md", ".markdown", ".txt")


def test_precedence_toml_env_flags(tmp_path: Path) -> None:
    toml = tmp_path / "feedsvc.toml"
    toml.write_text('max_items = 10\nsite_title = "From TOML"\nextensions = [".md"]\nport = 9000\n')
    env = {"FEEDSVC_CONFIG": str(toml), "FEEDSVC_MAX_ITEMS": "20", "FEEDSVC_BASE_URL": "https://x.org/"}
    settings = load_settings(env=env, port="9100")
    assert settings.site_title == "From TOML"
    assert settings.max_items == 20
    assert settings.port == 9100
    assert settings.extensions == (".md",)
    assert settings.base_url == "https://x.org"
    assert settings.id_authority == "x.org"


@pytest.mark.parametrize(("env", "named"), [
    ({"FEEDSVC_BASE_URL": "ftp://x"}, "FEEDSVC_BASE_URL"),
    ({"FEEDSVC_MAX_ITEMS": "many"}, "FEEDSVC_MAX_ITEMS"),
    ({"FEEDSVC_MAX_ITEMS": "0"}, "FEEDSVC_MAX_ITEMS"),
    ({"FEEDSVC_STOP_TIMEOUT": "0"}, "FEEDSVC_STOP_TIMEOUT"),  # killed before writing the cache
    ({"FEEDSVC_PORT": "-1"}, "FEEDSVC_PORT"),
    ({"FEEDSVC_TIMEZONE": "Mars/Olympus"}, "FEEDSVC_TIMEZONE"),
    ({"FEEDSVC_POST_URL": "{base_url}/{nope}"}, "FEEDSVC_POST_URL"),
    ({"FEEDSVC_COLOUR": "blue"}, "FEEDSVC_COLOUR"),
    ({"FEEDSVC_CONFIG": "/nonexistent/feedsvc.toml"}, "FEEDSVC_CONFIG"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(env=env)


def test_unknown_toml_key(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("max_itemz = 3\n")
    with pytest.raises(ConfigError, match="max_itemz"):
        load_settings(env={"FEEDSVC_CONFIG": str(toml)})


# --- where each value came from ---------------------------------------------------------------

def test_sources_name_the_layer_that_won(tmp_path: Path) -> None:
    toml = tmp_path / "feedsvc.toml"
    toml.write_text('max_items = 10\nsite_title = "From TOML"\nport = 9000\n')
    env = {"FEEDSVC_CONFIG": str(toml), "FEEDSVC_MAX_ITEMS": "20", "FEEDSVC_PORT": "9050",
           "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    settings, sources = load_settings_with_sources(env=env, port="9100", content_dir=tmp_path, host=None)
    assert settings == load_settings(env=env, port="9100", content_dir=tmp_path)
    assert sources["site_title"] == f"file {toml}"
    assert sources["max_items"] == "env FEEDSVC_MAX_ITEMS"  # the environment over the file
    assert sources["port"] == "flag --port"  # a flag over both
    assert sources["content_dir"] == "flag --content"  # as cli.py spells it
    assert sources["host"] == "default"  # None: the flag was not given
    assert sources["cache_dir"] == "default ($XDG_CACHE_HOME)"
    assert set(sources) == {f.name for f in dataclasses.fields(Settings)}


@pytest.mark.parametrize(("env", "cache_dir", "source"), [
    ({"HOME": "/home/ana"}, "/home/ana/.cache/feedsvc", "default ($HOME)"),
    ({"HOME": "/home/ana", "XDG_CACHE_HOME": "relative"}, "/home/ana/.cache/feedsvc", "default ($HOME)"),
    ({}, "", "default"),
    ({"HOME": "/home/ana", "FEEDSVC_CACHE_DIR": "off"}, "off", "env FEEDSVC_CACHE_DIR"),
])
def test_the_cache_folders_source(env: dict[str, str], cache_dir: str, source: str) -> None:
    settings, sources = load_settings_with_sources(env=env)
    assert (settings.cache_dir, sources["cache_dir"]) == (cache_dir, source)


# --- one spelling per value: normalised before Settings is made, validated once ------------------

def test_create_normalises_and_direct_construction_only_validates() -> None:
    made = Settings.create(base_url="https://x.org/", retired=("tag/b", "tag/a", "tag/b"),
                           redirects=(("tag/y", "tag/z"), ("tag/x", "tag/y")))
    assert made.base_url == "https://x.org" and made.site_url == "https://x.org/"
    assert made.retired == ("tag/a", "tag/b")
    assert made.redirects == (("tag/x", "tag/z"), ("tag/y", "tag/z"))  # one hop each, sorted
    assert Settings(base_url="https://x.org").base_url == "https://x.org"
    as_given = Settings(retired=("tag/b", "tag/a"))
    assert as_given.retired == ("tag/b", "tag/a")  # kept as given: nothing rewrites a frozen instance
    with pytest.raises(ConfigError, match="FEEDSVC_BASE_URL"):
        Settings(base_url="https://x.org/")  # would make every URL `https://x.org//...`
    with pytest.raises(ConfigError, match="circle"):
        Settings.create(redirects=(("tag/a", "tag/b"), ("tag/b", "tag/a")))
    with pytest.raises(ConfigError, match="FEEDSVC_TIMEZONE"):
        dataclasses.replace(made, timezone="Mars/Olympus")


# --- importing the settings (and what parse workers import) stays cheap -----------------------------

HEAVY = ("flask", "werkzeug", "jinja2", "apscheduler", "watchdog", "feedgen", "lxml", "granian",
         "prometheus_client")


@pytest.mark.system  # a fresh interpreter
def test_parse_workers_import_no_web_or_scheduling_libraries() -> None:
    """A parse worker (feedsvc.scan's ProcessPoolExecutor) imports feedsvc.scan, and with it the
    package: `create_app` must stay a lazy attribute, or every worker loads Flask and the rest."""
    code = ("import json, sys; import feedsvc.scan, feedsvc.content, feedsvc.config, feedsvc.cli; "
            "print(json.dumps(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert sorted(loaded & set(HEAVY)) == []
    lazy = subprocess.run([sys.executable, "-c", "from feedsvc import create_app; print(create_app.__module__)"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert lazy.stdout.strip() == "feedsvc.app"
