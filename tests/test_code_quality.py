"""House rules that CI enforces: ruff lint and format, mypy on monitor/ and dashboard/
(README.md, Development)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CODE = ["monitor", "dashboard", "simulators", "tests", "bench"]


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    present = [c for c in cmd if not c.startswith(tuple(CODE)) or (ROOT / c).exists()]
    return subprocess.run(present, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_no_lint_errors() -> None:
    """ruff check passes on all code."""
    r = run(str(BIN / "ruff"), "check", *CODE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_code_is_ruff_formatted() -> None:
    """ruff format --check passes on all code."""
    r = run(str(BIN / "ruff"), "format", "--check", *CODE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_runs_strict_on_the_monitor_and_the_panel() -> None:
    """README.md (Development): `make typecheck` is mypy --strict, set in pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert config["strict"] is True
    assert set(config["packages"]) == {"monitor", "dashboard"}


def test_mypy_is_clean_on_the_monitor_and_the_panel() -> None:
    """mypy passes on monitor/ and dashboard/ (type hints everywhere)."""
    r = run(str(BIN / "mypy"), "monitor", "dashboard")
    assert r.returncode == 0, r.stdout + r.stderr
