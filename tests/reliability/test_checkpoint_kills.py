"""Nothing lost: a process killed (SIGKILL) at random points while it writes checkpoints always leaves
the previous complete checkpoint loadable and never a silently wrong one; a full disk while saving is
a clear error that leaves the previous checkpoint intact; a killed training resumes exactly."""
from __future__ import annotations

import errno
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from rnnkit.errors import CheckpointError
from rnnkit.train import RunFolder, TrainConfig, Trainer
from rnnkit.train import checkpoint as ckpt
from rnnkit.train.checkpoint import BEST, LAST, weights_of

REPO = Path(__file__).resolve().parents[2]
#: kills of a process saving checkpoints in a loop (each after a random delay)
KILLS = 40


def model_at(step: int) -> nn.Module:
    """A model whose every weight says which step it belongs to (so a wrong checkpoint shows)."""
    m = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 8))
    with torch.no_grad():
        for i, p in enumerate(m.parameters()):
            p.fill_(step + i / 10)
    return m


def save_forever(path: str, start: int) -> None:
    """The child: save checkpoints of steps start, start+1, ... until killed."""
    run = RunFolder(path)
    step = start
    while True:
        m = model_at(step)
        best = weights_of(m) if step % 3 == 0 or step == start else None
        history = [{"split": "train", "step": s, "loss": float(s)} for s in range(1, step + 1)]
        run.save_checkpoint(step, weights_of(m), best, {"step": step, "blob": torch.zeros(20_000)},
                            history)
        step += 1


def check_consistent(run: RunFolder) -> int:
    """The current checkpoint loads and every file of it says the manifest's step."""
    step = run.read_manifest()["step"]
    assert run.load_trainer_state()["step"] == step
    last = model_at(-1)
    assert run.load_weights(LAST, last) == step
    for i, p in enumerate(last.parameters()):
        assert torch.all(p == step + i / 10), "last.safetensors is not the manifest's step"
    best = model_at(-1)
    best_step = run.load_weights(BEST, best)
    assert best_step <= step and next(best.parameters())[0, 0] == best_step
    assert [r["step"] for r in run.read_history()] == list(range(1, step + 1))
    return step


def test_sigkill_at_random_points_never_loses_the_previous_checkpoint(tmp_path):
    run = RunFolder(tmp_path / "run")
    t = time.perf_counter()
    run.save_checkpoint(0, weights_of(model_at(0)), weights_of(model_at(0)), {"step": 0}, [])
    save_s = time.perf_counter() - t       # kills land within about three saves of the start
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(0)
    steps_seen, switched = [], 0
    for _ in range(KILLS):
        before = check_consistent(run)
        child = ctx.Process(target=save_forever, args=(str(run.path), before + 1))
        child.start()
        time.sleep(rng.uniform(0.0, 0.05 + 3 * save_s))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
        after = check_consistent(run)          # always a complete checkpoint, never a mix
        assert after >= before
        switched += after > before
        steps_seen.append(after)
    print(f"\n{KILLS} SIGKILLs while saving: {switched} after at least one new checkpoint was "
          f"complete, {KILLS - switched} before; every time the manifest's checkpoint loaded whole")
    # the kills landed both after new checkpoints and before the first one was complete
    assert 0 < switched < KILLS, steps_seen
    leftovers = [p for p in (run / ckpt.CHECKPOINTS).iterdir()]
    assert run.path / run.read_manifest()["folder"] in leftovers   # half-written ones are ignored...
    run.save_checkpoint(999, weights_of(model_at(999)), None, {"step": 999}, [])
    assert len(list((run / ckpt.CHECKPOINTS).iterdir())) == 1      # ...and removed by the next save


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5])
def test_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch, fail_at):
    run = RunFolder(tmp_path / "run")
    run.save_checkpoint(1, weights_of(model_at(1)), weights_of(model_at(1)), {"step": 1},
                        [{"split": "train", "step": 1}])
    real, calls = ckpt.atomic_write, []

    def full_disk(path, data, **kw):
        calls.append(path)
        if len(calls) == fail_at:   # the 1st..5th write of a checkpoint: weights, state, manifest
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data, **kw)

    monkeypatch.setattr(ckpt, "atomic_write", full_disk)
    with pytest.raises(CheckpointError, match=r"writing the checkpoint of step 2 failed \(the disk is "
                                              r"full\).*the checkpoint of step 1 is intact"):
        run.save_checkpoint(2, weights_of(model_at(2)), weights_of(model_at(2)), {"step": 2},
                            [{"split": "train", "step": 1}, {"split": "train", "step": 2}])
    monkeypatch.setattr(ckpt, "atomic_write", real)
    assert check_consistent(run) == 1
    assert len(list((run / ckpt.CHECKPOINTS).iterdir())) == 1   # the half-written one is removed


def test_full_disk_during_training_is_a_clear_error_and_resumes(tmp_path, monkeypatch, toy_task):
    cfg = TrainConfig(optimizer="adamw", lr=0.01, steps=12, eval_every=3, log_every=1)
    full = Trainer(toy_task(), cfg, None, echo=lambda s: None)
    full.fit()
    real, calls = ckpt.atomic_write, []

    def full_disk(path, data, **kw):
        calls.append(path)
        if len(calls) == 12:   # inside the third checkpoint (step 3's validation)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data, **kw)

    monkeypatch.setattr(ckpt, "atomic_write", full_disk)
    with pytest.raises(CheckpointError, match="disk is full"):
        Trainer(toy_task(), cfg, tmp_path / "r", echo=lambda s: None).fit()
    monkeypatch.setattr(ckpt, "atomic_write", real)
    again = Trainer(toy_task(seed=5), cfg, tmp_path / "r", resume=True, echo=lambda s: None)
    again.fit()
    for a, b in zip(again.model.parameters(), full.model.parameters()):
        assert torch.equal(a, b)


CHILD = """
import sys
from rnnkit.tasks import lm
lm.train(sys.argv[1], out=sys.argv[2], steps=60, eval_every=3, hidden=16, embedding=8, batch_size=4,
         seq_len=16, sample_length=0, threads=1, log_every=1, progress=False, echo=None)
"""


def test_killed_training_resumes_to_the_uninterrupted_run(tmp_path, small_text):
    """SIGKILL a real training (no chance to save anything more), resume it; the end is the run
    that was never killed. Repeated at a few random moments."""
    from rnnkit.tasks import lm
    whole = tmp_path / "whole"
    tiny = dict(steps=60, eval_every=3, hidden=16, embedding=8, batch_size=4, seq_len=16,
                sample_length=0, threads=1, log_every=1, progress=False, echo=None)
    lm.train(str(small_text), out=whole, **tiny)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(small_text), str(run)], env=env)
    deadline = time.time() + 60
    while not (run / "checkpoint.json").is_file() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(random.Random(1).uniform(0.05, 0.3))
    proc.kill()
    proc.wait()
    step = RunFolder(run).read_manifest()["step"]
    assert 0 <= step < 60
    res = lm.train(resume=run, progress=False, echo=None)
    assert res.step == 60
    a = [(r["step"], r["loss"]) for r in RunFolder(run).read_history() if r["split"] == "train"]
    b = [(r["step"], r["loss"]) for r in RunFolder(whole).read_history() if r["split"] == "train"]
    assert a == b
    assert json.loads((run / "config.json").read_text())["plan"] == \
        json.loads((whole / "config.json").read_text())["plan"]
