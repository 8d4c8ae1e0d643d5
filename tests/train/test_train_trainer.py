"""The Trainer against a hand-written loop, exact resumption, signals, divergence, run-folder errors.

The task is ``toy_task`` (tests/conftest.py): a toy regression with dropout and a shuffled data stream,
so the global RNG, a data RNG and the optimizer state all matter for resuming exactly."""
from __future__ import annotations

import json
import math
import os
import signal

import numpy as np
import pytest
import torch

from rnnkit.errors import CheckpointError
from rnnkit.train import Callback, RunFolderError, TrainConfig, Trainer, TrainingDiverged
from rnnkit.train.checkpoint import BEST, CHECKPOINTS, LAST, MANIFEST, TRAINER_STATE, RunFolder, weights_of


CFG = dict(optimizer="adamw", lr=0.01, weight_decay=0.1, clip=0.5, schedule="cosine", warmup=3,
           final_lr=0.1, steps=24, eval_every=6, log_every=1)


def train_losses(history):
    return [r["loss"] for r in history if r["split"] == "train"]


def test_trainer_matches_a_hand_written_loop(toy_task):
    """Same seed, same batches: the trainer's per-step losses equal a plain PyTorch loop with
    AdamW (weight decay on matrices only), gradient clipping and warm-up + cosine."""
    trainer = Trainer(toy_task(), TrainConfig(**CFG), None, echo=lambda s: None)
    trainer.fit()
    ours = train_losses(trainer.history)

    task = toy_task()
    model = task.model
    decay = [p for p in model.parameters() if p.dim() >= 2]
    plain = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": plain, "weight_decay": 0.0}], lr=0.01)
    theirs = []
    for step in range(24):
        warm = min(1.0, (step + 1) / 3)
        t = max(0, step - 3) / 21
        for g in opt.param_groups:
            g["lr"] = 0.01 * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
        loss_sum, n = task.loss(task.next_batch())
        loss = loss_sum / n
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        theirs.append(loss.item())
        if (step + 1) % 6 == 0:   # validations switch to eval mode and back: no RNG is used
            model.eval()
            model.train()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)


class StopAt(Callback):
    def __init__(self, step, sig=None):
        self.at, self.sig = step, sig

    def on_step_end(self, trainer):
        if trainer.step == self.at:
            if self.sig is None:
                trainer.request_stop("test")
            else:
                os.kill(os.getpid(), self.sig)


@pytest.mark.parametrize("stop_at, sig", [(9, signal.SIGINT), (13, signal.SIGTERM), (6, None)])
def test_resumed_run_equals_uninterrupted_run(tmp_path, stop_at, sig, toy_task):
    full = Trainer(toy_task(), TrainConfig(**CFG), tmp_path / "full", echo=lambda s: None)
    full.fit()
    part = Trainer(toy_task(), TrainConfig(**CFG), tmp_path / "cut", callbacks=[StopAt(stop_at, sig)],
                   echo=lambda s: None)
    res = part.fit()
    assert res.status == ("stopped" if sig is None else "interrupted")
    assert res.step == stop_at
    if sig is not None:
        assert res.reason == signal.Signals(sig).name
    again = Trainer(toy_task(seed=99), TrainConfig(**CFG), tmp_path / "cut", resume=True,
                    echo=lambda s: None)
    assert again.fit().status == "finished"
    assert train_losses(again.history) == train_losses(full.history)        # bit for bit
    vals = lambda h: [(r["step"], r["loss"]) for r in h if r["split"] == "val"]
    assert vals(again.history) == vals(full.history)
    for (n, a), b in zip(again.model.state_dict().items(), full.model.state_dict().values()):
        assert torch.equal(a, b), n
    on_disk = RunFolder(tmp_path / "cut").read_history()
    assert train_losses(on_disk) == train_losses(full.history)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, toy_task):
    cfg = TrainConfig(**{**CFG, "log_every": 4})
    trainer = Trainer(toy_task(nan_at=15), cfg, tmp_path / "run", echo=lambda s: None)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 15.*Likely cause: the "
                                               r"learning rate.*last good checkpoint.*step 12") as e:
        trainer.fit()
    assert e.value.step == 15
    run = RunFolder(tmp_path / "run")
    assert run.load_trainer_state()["step"] == 12
    model = toy_task().model
    assert run.load_weights(LAST, model) == 12
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_no_clipping_names_exploding_gradients_as_the_cause(toy_task):
    cfg = TrainConfig(**{**CFG, "clip": 0.0, "log_every": 2})
    with pytest.raises(TrainingDiverged, match=r"step 5\b.*--clip 1.*no checkpoint"):
        Trainer(toy_task(nan_at=5), cfg, None, echo=lambda s: None).fit()


def test_run_folder_contents(tmp_path, toy_task):
    Trainer(toy_task(), TrainConfig(**CFG), tmp_path / "r", echo=lambda s: None).fit()
    run = RunFolder(tmp_path / "r")
    for name in (BEST, MANIFEST, "history.jsonl", "curves.png"):
        assert (run / name).is_file(), name
    manifest = run.read_manifest()
    assert manifest["step"] == 24 and len(list((run / CHECKPOINTS).iterdir())) == 1  # older ones gone
    for name in (BEST, LAST, TRAINER_STATE, "history.jsonl"):
        assert run.checkpoint_file(name).parent == run.path / manifest["folder"]
    assert not (run / "samples.txt").exists()  # samples are the language model's (its callback)
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert records == run.read_history()   # the top-level copy is the checkpoint's history
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in val] == [6, 12, 18, 24]
    best = min(val, key=lambda r: r["loss"])
    model = toy_task().model
    assert run.load_weights(BEST, model) == best["step"]
    assert not [p for p in (run.path).rglob("*") if p.name.endswith(".tmp")]


def test_corrupt_or_mismatched_checkpoint_is_a_clear_error(tmp_path, toy_task):
    Trainer(toy_task(), TrainConfig(**CFG), tmp_path / "r", echo=lambda s: None).fit()
    run = RunFolder(tmp_path / "r")
    state_path = run.checkpoint_file(TRAINER_STATE)
    state_path.write_bytes(b"not a checkpoint")
    with pytest.raises(RunFolderError, match="trainer_state.pt is damaged"):
        Trainer(toy_task(), TrainConfig(**CFG), run, resume=True, echo=lambda s: None).fit()
    last = run.path / run.read_manifest()["folder"] / LAST
    last.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(RunFolderError, match="last.safetensors is damaged"):
        run.load_weights(LAST, toy_task().model)
    last.unlink()
    with pytest.raises(RunFolderError, match="last.safetensors is missing"):
        run.load_weights(LAST, toy_task().model)


def test_inconsistent_checkpoint_is_refused(tmp_path, toy_task):
    """A trainer state and weights from different steps (checksums made to match, so only the
    step stamps disagree) are refused, not resumed."""
    t = Trainer(toy_task(), TrainConfig(**CFG), tmp_path / "r", callbacks=[StopAt(6)],
                echo=lambda s: None)
    t.fit()
    state = t.run.load_trainer_state()
    state["step"] = 5
    t.run.save_checkpoint(6, weights_of(t.model), None, state, t.history)
    with pytest.raises(RunFolderError, match="from step 6 but trainer_state.pt from step 5"):
        Trainer(toy_task(), TrainConfig(**CFG), t.run, resume=True, echo=lambda s: None).fit()


def test_minutes_budget_becomes_a_step_budget_once(toy_task):
    """A budget in minutes is measured into steps before the first step (on a throwaway copy of the
    state), and then the run is exactly the run of that many steps: same losses, same weights."""
    cfg = TrainConfig(**{**CFG, "steps": None, "minutes": 0.02, "eval_every": None, "warmup": 0})
    t = Trainer(toy_task(), cfg, None, echo=lambda s: None)
    res = t.fit()
    (phase,) = t.plan
    assert res.status == "finished" and res.step == phase["end"] > 0
    assert phase["budget"] == {"minutes": 0.02} and phase["measured"]["step_seconds"] > 0
    assert t.history[-1]["split"] == "val" and t.history[-1]["step"] == res.step
    same = TrainConfig(**{**CFG, "steps": phase["end"], "eval_every": phase["eval_every"], "warmup": 0})
    u = Trainer(toy_task(), same, None, echo=lambda s: None)
    u.fit()
    assert train_losses(u.history) == train_losses(t.history)
    for a, b in zip(t.model.parameters(), u.model.parameters()):
        assert torch.equal(a, b)


def test_resuming_a_finished_run_does_nothing_until_the_budget_grows(tmp_path, toy_task):
    Trainer(toy_task(), TrainConfig(**CFG), tmp_path / "r", echo=lambda s: None).fit()
    again = Trainer(toy_task(), TrainConfig(**CFG), tmp_path / "r", resume=True, echo=lambda s: None)
    res = again.fit()
    assert res.step == 24 and "already did 24 of its 24 steps" in res.reason
    more = Trainer(toy_task(), TrainConfig(**{**CFG, "steps": 30}), tmp_path / "r", resume=True,
                   echo=lambda s: None)
    lrs = []

    class Watch(Callback):
        def on_step_end(self, trainer):
            lrs.append(trainer.optimizer.param_groups[0]["lr"])

    more.callbacks.append(Watch())
    assert more.fit().step == 30
    # the extension is a recorded phase with its own cosine (a warm restart), not a jump back
    # into the old schedule: steps 25..30 follow lr * cos-shape((step - 24) / 6)
    assert [(p["start"], p["end"]) for p in more.plan] == [(0, 24), (24, 30)]
    want = [0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 6))) for k in range(1, 7)]
    assert lrs == pytest.approx(want)
    with pytest.raises(ValueError, match="at step 30 already"):
        Trainer(toy_task(), TrainConfig(**{**CFG, "steps": 28}), tmp_path / "r", resume=True,
                echo=lambda s: None).fit()


def test_averaged_weights_are_the_warmed_up_moving_average(tmp_path, toy_task):
    """The best checkpoint holds the EMA of the weight trajectory, computed here by hand with the
    documented decay min(ema, (1+t)/(10+t)); the raw weights stay the last checkpoint's."""
    class Record(Callback):
        def __init__(self):
            self.seen = []

        def on_train_start(self, trainer):
            self.seen.append([p.detach().clone() for p in trainer.model.parameters()])

        def on_step_end(self, trainer):
            self.seen.append([p.detach().clone() for p in trainer.model.parameters()])

    rec = Record()
    cfg = TrainConfig(**{**CFG, "ema": 0.9, "steps": 12, "eval_every": 12})
    trainer = Trainer(toy_task(), cfg, tmp_path / "r", callbacks=[rec], echo=lambda s: None)
    trainer.fit()
    avg = [p.clone() for p in rec.seen[0]]
    for t, params in enumerate(rec.seen[1:]):
        decay = min(0.9, (1 + t) / (10 + t))
        avg = [decay * a + (1 - decay) * p for a, p in zip(avg, params)]
    best, last = toy_task().model, toy_task().model
    assert trainer.run.load_weights(BEST, best) == 12
    assert trainer.run.load_weights(LAST, last) == 12
    for a, b, raw, final in zip(best.parameters(), avg, last.parameters(), rec.seen[-1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert torch.equal(raw, final)
    assert not torch.equal(next(best.parameters()), next(last.parameters()))


@pytest.mark.parametrize("stop_at", [4, 9])   # before the first validation, and between two
def test_resumed_run_keeps_the_moving_average_exactly(tmp_path, stop_at, toy_task):
    """With a decay whose average differs visibly from the raw weights, a run stopped between
    validations and resumed holds the same averaged weights as an uninterrupted one at every
    validation (its validation losses), in its best checkpoint and in its saved state, bit for bit:
    the average travels with the checkpoint, it is not restarted from the resumed weights."""
    cfg = TrainConfig(**{**CFG, "ema": 0.9})
    full = Trainer(toy_task(), cfg, tmp_path / "full", echo=lambda s: None)
    full.fit()
    part = Trainer(toy_task(), cfg, tmp_path / "cut", callbacks=[StopAt(stop_at)], echo=lambda s: None)
    assert part.fit().step == stop_at
    again = Trainer(toy_task(seed=99), cfg, tmp_path / "cut", resume=True, echo=lambda s: None)
    assert again.fit().status == "finished"
    vals = lambda h: [(r["step"], r["loss"]) for r in h if r["split"] == "val"]
    assert vals(again.history) == vals(full.history)
    best_a, best_b = toy_task().model, toy_task().model
    assert again.run.load_weights(BEST, best_a) == full.run.load_weights(BEST, best_b)
    for (n, a), b in zip(best_a.state_dict().items(), best_b.state_dict().values()):
        assert torch.equal(a, b), n
    saved_a = again.run.load_trainer_state()["ema"]
    saved_b = full.run.load_trainer_state()["ema"]
    assert len(saved_a) == len(saved_b) == len(list(full.model.parameters()))
    for a, b in zip(saved_a, saved_b):
        assert torch.equal(a, b)
    # the average is not the raw weights (so the checks above could tell them apart)
    assert not all(torch.equal(a, p) for a, p in zip(saved_b, full.model.parameters()))


def test_resuming_with_averaging_from_a_state_without_it_is_refused(tmp_path, toy_task):
    """A trainer state saved without averaged weights cannot continue a run that averages: the
    error names the run and the option instead of silently restarting the average."""
    cfg = TrainConfig(**{**CFG, "ema": 0.9})
    part = Trainer(toy_task(), cfg, tmp_path / "r", callbacks=[StopAt(5)], echo=lambda s: None)
    part.fit()
    run = RunFolder(tmp_path / "r")
    state = run.load_trainer_state()
    state["ema"] = None
    run.save_checkpoint(5, weights_of(part.model), None, state, run.read_history())
    with pytest.raises(CheckpointError, match=r"holds no averaged weights for ema=0\.9"):
        Trainer(toy_task(), cfg, run, resume=True, echo=lambda s: None).fit()
