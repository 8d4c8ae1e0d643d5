"""Static checks as tests, so CI runs them: ``ruff check`` (configured in pyproject.toml) on the code and
``mypy`` on the whole package (its files and per-package settings are in pyproject.toml too): default
settings everywhere, the strict flags on `rnnkit.core`, `rnnkit.cells` and `rnnkit.nn`, no module exempt."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

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
    # every module of the package was read (none left out of `files`)
    n = len(list((ROOT / "rnnkit").rglob("*.py")))
    assert f"Success: no issues found in {n} source files" in proc.stdout, proc.stdout[-2000:]


def test_mypy_exempts_nothing():
    """No module is let off: no override turns errors off, no file opts out, and every
    ``# type: ignore`` names its error code (the reason is written beside it)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert cfg["files"] == ["rnnkit"]
    overrides = cfg.get("overrides", [])
    exempt = [o["module"] for o in overrides if o.get("ignore_errors")]
    assert not exempt, f"pyproject.toml exempts {exempt} from mypy"
    strict = {m for o in overrides if o.get("disallow_untyped_defs") and o.get("check_untyped_defs")
              for m in o["module"]}
    assert {"rnnkit.core.*", "rnnkit.cells.*", "rnnkit.nn.*"} <= strict, strict
    bad = []
    for path in sorted((ROOT / "rnnkit").rglob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"#\s*mypy:\s*ignore-errors|#\s*type:\s*ignore(?!\[)", line):
                bad.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not bad, "a file opts out of mypy, or ignores without an error code:\n" + "\n".join(bad)
