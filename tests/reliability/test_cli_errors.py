"""The command line's errors: one or two lines without a traceback (``--debug`` shows it), a distinct
exit status per kind, and each traceback the issue found gone (an impossible allocation, an unknown
or absent device, Ctrl-C while starting, a closed pipe, an out-of-range seed)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.errors import CheckpointError, ConfigError, DataError, RnnkitError
from rnnkit.tasks import lm

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
TINY = ["--hidden", "16", "--embedding", "8", "--batch-size", "4", "--seq-len", "16",
        "--sample-length", "0", "--threads", "1", "--no-progress"]


@pytest.fixture
def run(tmp_path, small_text):
    out = tmp_path / "run"
    lm.train(str(small_text), out=out, steps=2, hidden=16, embedding=8, batch_size=4, seq_len=16,
             sample_length=0, threads=1, progress=False, echo=None)
    return out


def error_of(capsys, argv, status):
    assert main(argv) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith(f"rnnkit {argv[0]}: error: "), err
    assert 1 <= len(err.strip().splitlines()) <= 2, err
    return err


def test_the_hierarchy_keeps_value_error_catchers_working():
    for cls in (ConfigError, DataError, CheckpointError):
        assert issubclass(cls, RnnkitError) and issubclass(cls, ValueError)
    assert len({ConfigError.exit_code, DataError.exit_code, CheckpointError.exit_code,
                RnnkitError.exit_code}) == 4


def test_tracebacks_of_the_issue_are_messages(run, small_text, tmp_path, capsys):
    assert "'foo' is not a device" in error_of(capsys, ["generate", str(run), "--device", "foo"], 2)
    assert "'foo' is not a device" in error_of(capsys, ["evaluate", str(run), "--device", "foo"], 2)
    if not torch.cuda.is_available():
        for cmd in ("generate", "evaluate", "predict"):
            argv = [cmd, str(run)] + (["the"] if cmd == "predict" else []) + ["--device", "cuda"]
            assert "sees no CUDA GPU" in error_of(capsys, argv, 2)
    err = error_of(capsys, ["train", "--data", str(small_text), "--out", str(tmp_path / "big"),
                            "--hidden", "10000000", "--steps", "1", "--no-progress"], 2)
    assert "cannot be built here" in err and "--hidden" in err
    assert not (tmp_path / "big").exists()            # nothing written, no folder left behind
    assert "seed must be an int in [0, 2**63)" in error_of(
        capsys, ["generate", str(run), "--seed", str(10 ** 23)], 2)
    assert "seed must be an int in [0, 2**63)" in error_of(
        capsys, ["train", "--data", str(small_text), "--seed", str(10 ** 23), *TINY], 2)
    with pytest.raises(SystemExit) as exc:            # argparse's own usage error, status 2
        main(["generate", str(run), "--seed", "1e23"])
    assert exc.value.code == 2


def test_debug_shows_the_traceback(run):
    with pytest.raises(ConfigError, match="is not a device"):
        main(["--debug", "generate", str(run), "--device", "foo"])


def test_closed_pipe_ends_generate_quietly(run):
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "generate", str(run), "--length", "200000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    first = proc.stdout.read(20)          # `| head -c 20`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and len(first) == 20
    assert "Traceback" not in err and "Broken pipe" not in err, err


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0])
def test_ctrl_c_during_start_up_is_a_clean_interrupt(small_text, tmp_path, delay):
    """SIGINT while torch, the subcommands and the data load (before training starts): status 130,
    no trace. (The interpreter's own first tens of milliseconds, before ``rnnkit`` is imported at
    all, are Python's: not tested.)"""
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "train", "--data", str(small_text),
                             "--out", str(tmp_path / "r"), "--steps", "5", *TINY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert proc.returncode in (0, 130)   # 0: it had already finished its 5 steps


def test_an_interrupt_that_escaped_embedded_python_code_still_exits_130(tmp_path):
    """A Ctrl-C landing in Python code that an extension runs through ``PyRun_String`` made CPython
    kill the finished program with SIGINT (status -2) after rnnkit had handled it ("rnnkit:
    interrupted") and chosen 130 — the start-up interrupt test failed that way now and then."""
    script = tmp_path / "interrupted_run.py"      # run with -m, as `python -m rnnkit` is
    script.write_text(
        "import ctypes, sys\n"
        "import rnnkit.cli.main as m\n"
        "def parser(argv):\n"
        "    # Ctrl-C while an extension runs Python code: the interrupt escapes that code ...\n"
        "    ctypes.pythonapi.PyRun_SimpleString(b'import signal; signal.raise_signal(signal.SIGINT)')\n"
        "    raise KeyboardInterrupt                  # ... and the extension's failure reaches rnnkit\n"
        "m.build_parser = parser\n"
        "sys.exit(m.main())\n")
    env = {**ENV, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ENV['PYTHONPATH']}"}
    proc = subprocess.run([sys.executable, "-m", "interrupted_run"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 130, (proc.returncode, proc.stderr[-500:])
    assert "rnnkit: interrupted" in proc.stderr
