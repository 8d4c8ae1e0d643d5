"""A real headless Chromium for the report tests: Debian's ``chromium``, installed with apt-get when it
is missing (the test machines are Debian; the install needs root)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900"]


def _find() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> "Chromium":
    exe = _find()
    if exe is None:
        lock = Path("/tmp/rnnkit-chromium-install.lock")   # two xdist workers must not run apt at once
        with open(lock, "w") as fh:
            import fcntl
            fcntl.flock(fh, fcntl.LOCK_EX)
            exe = _find()
            if exe is None:
                env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
                for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
                    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
                    if proc.returncode != 0:
                        pytest.fail(f"could not install Debian's chromium ({' '.join(cmd)}): "
                                    f"{proc.stderr[-2000:]}")
                exe = _find()
    if exe is None:
        pytest.fail("chromium is not on PATH after apt-get install chromium")
    return Chromium(exe, tmp_path_factory.mktemp("chromium-profile"))


class Chromium:
    """Runs the headless browser on a local file: the DOM after the page's scripts, or a screenshot."""

    def __init__(self, exe: str, profile: Path):
        self.exe, self.profile = exe, profile

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [self.exe, *FLAGS, f"--user-data-dir={self.profile}", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-3000:]}"
        return proc

    def dump_dom(self, page: Path, budget_ms: int = 8000) -> str:
        return self._run(f"--virtual-time-budget={budget_ms}", "--dump-dom", page.resolve().as_uri()).stdout

    def screenshot(self, page: Path, out: Path, budget_ms: int = 5000) -> Path:
        self._run(f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", page.resolve().as_uri())
        assert out.is_file(), f"chromium wrote no screenshot at {out}"
        return out
