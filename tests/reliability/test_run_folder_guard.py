"""One run per folder: a lock (released on exit, a stale one taken over), --out never overwrites
without --force, a run stopped before its first checkpoint restarts cleanly, and the folder's files
are bound together (every command refuses a vocabulary, weights or model section of another run)."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import pytest

from rnnkit.cli.main import main
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.tasks import lm
from rnnkit.train import RunFolder
from rnnkit.train.runtime import RunLock

TINY = dict(hidden=16, embedding=8, batch_size=4, seq_len=16, sample_length=0, threads=1,
            log_every=1, progress=False, echo=None)


def hold_lock(path, ready):
    RunLock(path).acquire()
    ready.set()
    time.sleep(60)


def test_a_second_writer_is_refused_and_a_killed_ones_lock_is_taken_over(tmp_path, small_text):
    run = tmp_path / "run"
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=hold_lock, args=(str(run), ready))
    holder.start()
    assert ready.wait(30)
    with pytest.raises(CheckpointError, match=rf"is in use by process {holder.pid} on .*choose another"):
        lm.train(str(small_text), out=run, steps=2, **TINY)
    os.kill(holder.pid, signal.SIGKILL)      # no chance to release: the lock file stays, stale
    holder.join()
    assert json.loads((run / ".lock").read_text())["pid"] == holder.pid
    said = []
    lm.train(str(small_text), out=run, steps=2, **{**TINY, "echo": said.append})
    assert any(f"locked by process {holder.pid}" in s and "which is gone" in s for s in said)
    assert (run / ".lock").read_text() == ""          # released on a clean exit
    with RunLock(run) as lock:                        # and free for the next one
        assert lock.stale is None


def test_out_never_overwrites_without_force(tmp_path, small_text, capsys):
    run = tmp_path / "run"
    lm.train(str(small_text), out=run, steps=2, **TINY)
    before = RunFolder(run).read_config()["run_id"]
    with pytest.raises(ConfigError, match="already holds a run; continue it with --resume .*--force"):
        lm.train(str(small_text), out=run, steps=3, **TINY)
    assert RunFolder(run).read_config()["run_id"] == before
    lm.train(str(small_text), out=run, steps=3, force=True, **TINY)
    assert RunFolder(run).read_config()["run_id"] != before
    assert RunFolder(run).read_manifest()["step"] == 3
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("precious")
    with pytest.raises(ConfigError,
                       match=r"not an rnnkit run \(\[.notes.txt.\]\); --force only replaces run folders"):
        lm.train(str(small_text), out=other, steps=2, force=True, **TINY)
    assert (other / "notes.txt").read_text() == "precious"
    assert main(["train", "--data", str(small_text), "--out", str(run), "--steps", "2",
                 "--no-progress"]) == 2
    assert "--force" in capsys.readouterr().err


def test_a_run_stopped_before_its_first_checkpoint_restarts_with_resume(tmp_path, small_text):
    """The checkpoint folder is lost (a kill just after config.json): --out says to --resume (or
    --force), and --resume starts the run from step 0 with its saved configuration -- the same run."""
    run, whole = tmp_path / "run", tmp_path / "whole"
    lm.train(str(small_text), out=whole, steps=6, **TINY)
    lm.train(str(small_text), out=run, steps=6, **TINY)
    for name in ("checkpoint.json", "model.safetensors", "history.jsonl"):
        (run / name).unlink()
    for p in (run / "checkpoints").iterdir():
        for f in p.iterdir():
            f.unlink()
        p.rmdir()
    with pytest.raises(ConfigError, match="stopped before its first checkpoint; start it again with "
                                          "--resume"):
        lm.train(str(small_text), out=run, steps=6, **TINY)
    with pytest.raises(CheckpointError, match="no checkpoint yet.*--resume"):
        lm.load(run)
    res = lm.train(resume=run, progress=False, echo=None)
    assert res.step == 6
    hist = lambda r: [(x["step"], x["loss"]) for x in RunFolder(r).read_history()]
    assert hist(run) == hist(whole)


@pytest.fixture
def two_runs(tmp_path, small_text):
    a, b = tmp_path / "a", tmp_path / "b"
    lm.train(str(small_text), out=a, steps=2, **TINY)
    other = tmp_path / "other.txt"     # another text: another alphabet of the same size
    other.write_text(small_text.read_text().swapcase())
    lm.train(str(other), out=b, steps=2, **TINY)
    return a, b


@pytest.mark.parametrize("command", ["generate", "evaluate", "predict", "resume"])
def test_every_command_refuses_a_vocabulary_of_another_run(two_runs, small_text, command, capsys):
    a, b = two_runs
    assert len(json.loads((a / "vocab.json").read_text())["tokens"]) == \
        len(json.loads((b / "vocab.json").read_text())["tokens"])
    (a / "vocab.json").write_bytes((b / "vocab.json").read_bytes())
    argv = {"generate": ["generate", str(a), "--length", "5"],
            "evaluate": ["evaluate", str(a), "--data", str(small_text)],
            "predict": ["predict", str(a), "the"],
            "resume": ["train", "--resume", str(a), "--no-progress"]}[command]
    assert main(argv) == 4
    assert "vocab.json is not the file this run wrote" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["generate", "resume"])
def test_weights_of_another_run_are_refused(two_runs, command, capsys):
    a, b = two_runs
    (a / "checkpoint.json").write_bytes((b / "checkpoint.json").read_bytes())
    argv = ["generate", str(a)] if command == "generate" else ["train", "--resume", str(a)]
    assert main(argv) == 4
    assert "belongs to another run" in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [
    (lambda d: d["model"].update(hidden=17), "was changed after its checkpoint|differs from the model"),
    (lambda d: d["model"].update(dropout=0.5), "was changed after its checkpoint|differs from the model"),
    (lambda d: d.update(model=[1, 2]), "is corrupt|bad model arguments"),
    (lambda d: d.update(version=99), "format version 99"),
    (lambda d: d.update(version="2"), "format version '2'"),
])
@pytest.mark.parametrize("command", ["generate", "evaluate", "resume"])
def test_damaged_model_section_or_version_is_refused_everywhere(tmp_path, small_text, damage, message,
                                                                command, capsys):
    run = tmp_path / "run"
    lm.train(str(small_text), out=run, steps=2, **TINY)
    d = json.loads((run / "config.json").read_text())
    damage(d)
    (run / "config.json").write_text(json.dumps(d))
    argv = {"generate": ["generate", str(run), "--length", "5"],
            "evaluate": ["evaluate", str(run)],
            "resume": ["train", "--resume", str(run), "--no-progress"]}[command]
    assert main(argv) == 4
    import re
    assert re.search(message, capsys.readouterr().err)
