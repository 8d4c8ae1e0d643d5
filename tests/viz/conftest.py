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

    def probe(self, page: str, script: str, tmp_path: Path, min_spans: int = 40) -> dict:
        """Load ``page`` with ``script`` (which defines ``runProbe()``, writing JSON into
        ``<pre id="test-result">``), call it once the report's first lazily rendered chunk holds
        ``min_spans`` spans (a loaded machine renders it late; at most ~20 s of virtual time), and
        return what it wrote."""
        import html
        import json
        import re
        rendered = 'document.querySelectorAll("#text .chunk.rendered span").length'
        run = ("  try { runProbe(); } catch (err) {\n"      # a failing probe reports why
               "    var pre = document.createElement('pre'); pre.id = 'test-result';\n"
               "    pre.textContent = JSON.stringify({probe_error: String(err && err.stack || err)});\n"
               "    document.body.appendChild(pre);\n"
               "  }\n")
        wait = ("<script>(function wait(n) {\n"
                "  if (typeof runProbe !== 'function') { return; }   // the script writes its own result\n"
                f"  if ({rendered} >= {min_spans} || n > 80) {{\n{run}  }}\n"
                "  else { setTimeout(function () { wait(n + 1); }, 250); }\n"
                "})(0);</script>\n")
        path = tmp_path / "probe.html"
        path.write_text(page.replace("</body>", script + wait + "</body>"), encoding="utf-8")
        dom = self.dump_dom(path, budget_ms=30000)   # virtual time: only as long as the page needs
        m = re.search(r'<pre id="test-result">(.*?)</pre>', dom, re.S)
        assert m, "the probe wrote no result: the page's script failed?\n" + dom[-2000:]
        result = json.loads(html.unescape(m.group(1)))
        assert "probe_error" not in result, f"the probe's script failed: {result.get('probe_error')}"
        return result


def _conllu_slice(path: Path, n: int) -> str:
    """The first ``n`` sentences of a CoNLL-U file (blocks end at a blank line)."""
    return "\n\n".join(path.read_text(encoding="utf-8").split("\n\n")[:n]) + "\n\n"


@pytest.fixture(scope="session")
def tag_run(data_dir, tmp_path_factory) -> Path:
    """A tiny 2-layer bidirectional LSTM tagger (UPOS) trained for seconds on 150 EWT sentences."""
    from rnnkit.cli.main import main
    folder = tmp_path_factory.mktemp("tag-data")
    ewt = data_dir / "ud-english-ewt"
    (folder / "xx-ud-train.conllu").write_text(_conllu_slice(ewt / "en_ewt-ud-train.conllu", 150))
    (folder / "xx-ud-dev.conllu").write_text(_conllu_slice(ewt / "en_ewt-ud-dev.conllu", 30))
    run = tmp_path_factory.mktemp("runs") / "tagger"
    assert main(["train", "--task", "tag", "--data", str(folder), "--out", str(run), "--steps", "20",
                 "--eval-every", "20", "--hidden", "12", "--embedding", "12", "--char-hidden", "6",
                 "--char-embedding", "6", "--layers", "2", "--batch-size", "16", "--lr", "0.01",
                 "--threads", "1", "--no-progress"]) == 0
    return run


@pytest.fixture(scope="session")
def classify_run(data_dir, tmp_path_factory) -> Path:
    """A tiny 2-layer bidirectional LSTM sentiment classifier with attention pooling, trained for
    seconds on 300 sentences."""
    from rnnkit.cli.main import main
    lines = (data_dir / "sentiment-labelled-sentences" / "amazon_cells_labelled.txt").read_text(
        encoding="utf-8").split("\n")
    data = tmp_path_factory.mktemp("classify-data") / "train.tsv"
    data.write_text("\n".join(ln for ln in lines[:300] if ln.strip()) + "\n", encoding="utf-8")
    run = tmp_path_factory.mktemp("runs") / "classifier"
    assert main(["train", "--task", "classify", "--data", str(data), "--out", str(run), "--steps", "20",
                 "--cell", "lstm", "--layers", "2", "--hidden", "10", "--embedding", "12",
                 "--pooling", "attention", "--batch-size", "16", "--threads", "1", "--no-progress"]) == 0
    return run
