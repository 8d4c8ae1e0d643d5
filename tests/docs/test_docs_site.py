"""The documentation site builds with ``mkdocs build --strict`` (broken links, missing pages and API
references that no longer resolve are errors), and its command-line page covers every subcommand."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mkdocs_build_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = tmp_path / "site"
    for page in ("two-doors", "cells-and-kernels", "tasks", "cli", "run-folder", "performance",
                 "reliability", "distributed", "export", "explain"):
        assert (site / page / "index.html").is_file(), page
    api = (site / "api" / "nn" / "index.html").read_text()
    for name in ("RNN", "LSTM", "GRU"):   # mkdocstrings found the classes and rendered their docstrings
        assert f'id="rnnkit.nn.{name}"' in api, name
    assert "torch.nn" in api


def test_cli_page_covers_every_subcommand():
    from rnnkit.cli.main import COMMANDS

    page = (ROOT / "docs" / "cli.md").read_text()
    for module in COMMANDS:
        name = module.__name__.rsplit(".", 1)[1]
        assert f"rnnkit {name}" in page, f"docs/cli.md does not show `rnnkit {name}`"
