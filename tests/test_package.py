"""Packaging: the wheel `pip install .` builds holds the console script, py.typed and the C++ sources;
the version is written once and ``rnnkit --version`` prints it."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def source_version() -> str:
    """``__version__`` as written in rnnkit/__init__.py, read without importing the package."""
    tree = ast.parse((ROOT / "rnnkit" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == [
                "__version__"]:
            return ast.literal_eval(node.value)
    raise AssertionError("rnnkit/__init__.py has no __version__")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # build from a copy, so setuptools' build/ and egg-info never land in the shared checkout
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(ROOT / "rnnkit", src / "rnnkit", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("rnnkit-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contents(wheel):
    version = source_version()
    assert wheel.name.startswith(f"rnnkit-{version}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "rnnkit/py.typed" in names
    assert "rnnkit/viz/report.html" in names
    csrc = sorted(p.name for p in (ROOT / "rnnkit" / "core" / "csrc").iterdir() if p.suffix in (".cpp", ".h"))
    assert csrc, "no C++ sources found in the checkout"
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("rnnkit/core/csrc/")) == csrc
    packages = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "rnnkit").rglob("__init__.py")}
    assert {f"{p}/__init__.py" for p in packages} <= names, "a subpackage is missing from the wheel"
    info = f"rnnkit-{version}.dist-info"
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "[console_scripts]" in entry_points and "rnnkit = rnnkit.cli.main:main" in entry_points
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert f"\nVersion: {version}\n" in metadata
    assert not any(n.startswith(("tests/", "examples/", "benchmarks/")) for n in names)


def test_version_is_written_once():
    import rnnkit

    assert rnnkit.__version__ == source_version()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert source_version() not in pyproject, \
        "pyproject.toml repeats the version; it reads rnnkit.__version__"


def test_cli_version():
    proc = subprocess.run([sys.executable, "-m", "rnnkit", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"rnnkit {source_version()}"
