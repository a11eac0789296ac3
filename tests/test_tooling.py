"""The code stays lint-clean and the benchmark keeps running, so neither rots."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(),
                    reason="ruff is not installed (pip install -e '.[test]' brings it)")
def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "check", "src", "tests", "bench"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(shutil.which("mypy") is None and not (Path(sys.executable).parent / "mypy").exists(),
                    reason="mypy is not installed (pip install -e '.[test]' brings it)")
def test_mypy_strict_clean() -> None:
    mypy = shutil.which("mypy") or str(Path(sys.executable).parent / "mypy")
    result = subprocess.run([mypy, "src/feedsvc"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout


def test_scale_benchmark_quick_mode() -> None:
    result = subprocess.run([sys.executable, "bench/scale.py", "--quick"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for row in ("cold build, s", "restart, unchanged, s", "one post -> served, p95 s", "peak RSS, MB",
                "baseline (parse everything), s"):
        assert re.search(rf"\| {re.escape(row)} \| [\d.,]+", result.stdout), (row, result.stdout)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (.ci/run installs it)")
def test_load_benchmark_quick_mode_has_no_errors() -> None:
    result = subprocess.run([sys.executable, "bench/load.py", "--quick"], cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    match = re.search(r"requests/s (\d+) .* requests (\d+)\s+errors (\d+)", result.stdout)
    assert match, result.stdout
    assert int(match[2]) > 0 and int(match[3]) == 0, result.stdout
