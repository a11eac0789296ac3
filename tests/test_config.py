"""Settings: defaults, TOML file, environment and flags, in that order; errors name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedsvc.config import ConfigError, load_settings, setting_docs


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


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    for variable, _, _ in setting_docs():
        assert f"`{variable}`" in readme, variable
