"""The ``rnnkit`` command end to end on a tiny text: train, checkpoint, resume, generate, evaluate;
a real SIGTERM to a training process; and one clear line (no traceback) for each kind of bad input."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnkit.cli import evaluate as evaluate_cmd
from rnnkit.cli import generate as generate_cmd
from rnnkit.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[2]
TINY = ["--hidden", "16", "--embedding", "8", "--batch-size", "4", "--seq-len", "16",
        "--sample-length", "20", "--threads", "1", "--no-progress", "--log-every", "2"]


@pytest.fixture
def text(tmp_path, data_dir):
    path = tmp_path / "tiny.txt"
    path.write_text((data_dir / "timemachine.txt").read_text()[:2000])
    return path


def history(run):
    return [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]


def test_train_resume_generate_evaluate(tmp_path, text, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(text), "--out", str(run), "--steps", "12",
                 "--eval-every", "6", *TINY]) == 0
    out = capsys.readouterr().out
    assert f"run folder: {run}" in out and "hidden = 16" in out          # the resolved config
    assert "step 6 (epoch" in out and "validation: loss" in out and "training: loss" in out
    for name in ("config.json", "vocab.json", "model.safetensors", "checkpoint.json",
                 "history.jsonl", "curves.png", "samples.txt"):
        assert (run / name).is_file(), name
    assert main(["train", "--resume", str(run), "--steps", "18", "--no-progress"]) == 0
    assert "(resuming)" in capsys.readouterr().out
    assert max(r["step"] for r in history(run)) == 18

    args = build_parser().parse_args(["generate", str(run), "--prompt", "The Time", "--length",
                                      "40", "--seed", "3", "--num-samples", "2"])
    sink = io.StringIO()
    samples = generate_cmd.run(args, out=sink)
    assert len(samples) == 2 and all(len(s) == len("The Time") + 40 for s in samples)
    assert sink.getvalue() == "".join(f"{'' if i == 0 else chr(10)}=== sample {i + 1} ===\n{s}\n"
                                      for i, s in enumerate(samples))
    assert main(["generate", str(run), "--prompt", "The", "--length", "10",
                 "--temperature", "0"]) == 0
    greedy = capsys.readouterr().out
    assert greedy.startswith("The") and len(greedy) == len("The") + 10 + 1

    args = build_parser().parse_args(["evaluate", str(run), "--data", str(text)])
    result = evaluate_cmd.run(args, out=io.StringIO())
    assert result["tokens"] == 1999 and result["bpc"] == pytest.approx(result["loss"] / 0.693147, 1e-5)
    assert main(["evaluate", str(run), "--data", str(text)]) == 0
    assert "perplexity" in capsys.readouterr().out
    assert main(["evaluate", "--baseline", "ngram", "--order", "3", "--order", "4",
                 "--data", str(text)]) == 0
    assert "best: order" in capsys.readouterr().out


def test_sigterm_writes_the_last_checkpoint_and_says_how_to_resume(tmp_path, text):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "train", "--data", str(text), "--out",
                             str(run), "--steps", "100000", "--eval-every", "5", *TINY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 180   # start-up, data, 5 steps, a validation: seconds; a busy machine: more
    validated = lambda: (run / "history.jsonl").is_file() and any(r["step"] >= 5 for r in history(run))
    while not validated():
        assert time.time() < deadline, "no validation at step 5 within 180 s"
        time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "SIGTERM received" in out and f"resume with: rnnkit train --resume {run}" in out
    assert "Traceback" not in err
    state_step = max(r["step"] for r in history(run))
    assert main(["train", "--resume", str(run), "--steps", str(state_step + 2), "--no-progress"]) == 0


def run_error(capsys, argv, status: int) -> str:
    """The one-line error of ``argv``; its exit status says the kind: 2 usage, 3 data, 4 run folder."""
    assert main(argv) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith(f"rnnkit {argv[0]}: error: ")
    return err


def test_bad_input_is_one_clear_line(tmp_path, text, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert "is empty" in run_error(capsys, ["train", "--data", str(empty), *TINY], 3)
    short = tmp_path / "short.txt"
    short.write_text("too short " * 5)
    assert "fewer than one batch needs" in run_error(capsys, ["train", "--data", str(short), *TINY], 2)
    # a name that is no corpus is a wrong argument value (status 2), as a batch too big for the text is
    err = run_error(capsys, ["train", "--data", "timemashine", *TINY], 2)
    assert "known names: shakespeare, stdlib, timemachine" in err
    assert "does not exist" in run_error(capsys, ["train", "--data", str(tmp_path / "no.txt"), *TINY],
                                         3)
    binary = tmp_path / "latin1.txt"
    binary.write_bytes(b"caf\xe9 " * 400)
    assert "at byte offset 3" in run_error(capsys, ["train", "--data", str(binary), *TINY], 3)
    (tmp_path / "folder").mkdir()
    assert "holds no .txt files" in run_error(capsys, ["train", "--data", str(tmp_path / "folder"),
                                                       *TINY], 3)
    assert "refused for language models" in run_error(capsys, ["train", "--data", str(text),
                                                               "--bidirectional", *TINY], 2)
    run = tmp_path / "run"
    assert main(["train", "--data", str(text), "--out", str(run), "--steps", "2", *TINY]) == 0
    capsys.readouterr()
    assert "length must be an int >= 1" in run_error(capsys, ["generate", str(run), "--length", "0"], 2)
    assert "temperature must be >= 0" in run_error(capsys, ["generate", str(run),
                                                            "--temperature", "-0.5"], 2)
    assert "['Ω'] are not in the run's vocabulary" in run_error(capsys, ["generate", str(run),
                                                                        "--prompt", "Ω"], 2)
    assert "does not exist" in run_error(capsys, ["generate", str(tmp_path / "norun")], 4)
    checkpoint = run / json.loads((run / "checkpoint.json").read_text())["folder"]
    (checkpoint / "trainer_state.pt").write_bytes(b"junk")
    assert "trainer_state.pt is damaged" in run_error(capsys, ["train", "--resume", str(run)], 4)
    (checkpoint / "model.safetensors").unlink()
    assert "model.safetensors is missing" in run_error(capsys, ["evaluate", str(run), "--data",
                                                                str(text)], 4)


def test_python_dash_m_runs_the_same_program():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-m", "rnnkit", "train", "--help"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert res.returncode == 0 and "--resume RUN" in res.stdout and "--bf16" in res.stdout
