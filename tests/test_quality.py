"""Static checks as tests, so CI runs them: ``ruff check`` (configured in pyproject.toml) on the code and
``mypy`` on the package (its files and per-package settings are in pyproject.toml too)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_ruff_finds_nothing():
    proc = run("ruff", "check", "--no-cache", "rnnkit", "tests", "examples", "benchmarks")
    assert proc.returncode == 0, f"ruff found problems:\n{proc.stdout}{proc.stderr}"


def test_mypy_finds_nothing():
    proc = run("mypy")
    assert proc.returncode == 0, f"mypy found problems:\n{proc.stdout}{proc.stderr}"
    assert "Success: no issues found" in proc.stdout
