"""Each third-party library lives behind one module, so swapping it touches one file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "feedsvc"
OWNER = {"feedgen": "render", "frontmatter": "yamlfront", "yaml": "yamlfront", "apscheduler": "schedule",
         "watchdog": "watch", "cmarkgfm": "gfm", "nh3": "markup", "granian": "server",
         "prometheus_client": "metrics", "feedparser": "doctor", "zlib_ng": "render"}


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.stem)
def test_libraries_stay_behind_their_module(path: Path) -> None:
    for name in imported_packages(path):
        assert OWNER.get(name, path.stem) == path.stem, f"{path.stem} imports {name}"


def test_create_app_starts_no_threads(tmp_path: Path) -> None:
    import threading

    from feedsvc.app import create_app
    from feedsvc.config import load_settings

    before = set(threading.enumerate())
    create_app(load_settings(env={}, content_dir=tmp_path))
    assert set(threading.enumerate()) - before == set()
