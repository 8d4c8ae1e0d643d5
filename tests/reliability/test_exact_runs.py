"""A run is a function of its config and seed: a budget in minutes is measured into steps once and
recorded; an interrupted and resumed run equals an uninterrupted one (for a budget in minutes as
well as in steps); ``--config RUN/config.json`` replays a run; an extension is a recorded phase."""
from __future__ import annotations

import json

import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.tasks import lm
from rnnkit.tasks.lm import recipe
from rnnkit.train import Callback, RunFolder

TINY = dict(hidden=16, embedding=8, batch_size=4, seq_len=16, sample_length=0, threads=1,
            log_every=1, progress=False, echo=None)


class StopAt(Callback):
    def __init__(self, step):
        self.at = step

    def on_step_end(self, trainer):
        if trainer.step == self.at:
            trainer.request_stop("test")


def losses(run, split="train"):
    return [(r["step"], r["loss"]) for r in RunFolder(run).read_history() if r["split"] == split]


def weights(run, name="last.safetensors"):
    return lm.load(run, weights=name).model.state_dict()


def assert_same_run(a, b):
    assert losses(a) == losses(b)                      # every step's training loss, bit for bit
    assert losses(a, "val") == losses(b, "val")
    for name in ("last.safetensors", "model.safetensors"):
        wa, wb = weights(a, name), weights(b, name)
        for k in wa:
            assert torch.equal(wa[k], wb[k]), (name, k)


def config(run):
    return json.loads((run / "config.json").read_text())


@pytest.mark.parametrize("budget", [{"minutes": 0.04}, {"steps": 14}])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, small_text, budget):
    """Cut a run at step 5 and resume it; replay its config.json uninterrupted: the same run. With
    minutes, the measurement is made once (recorded in config.json's plan) and never again."""
    cut = tmp_path / "cut"
    res = lm.train(str(small_text), out=cut, callbacks=[StopAt(5)], **budget, **TINY)
    assert res.status == "stopped" and res.step == 5
    plan = config(cut)["plan"]["phases"]
    assert len(plan) == 1 and plan[0]["budget"] == budget and plan[0]["end"] > 5
    if "minutes" in budget:
        measured = plan[0]["measured"]
        assert measured["minutes"] == 0.04 and measured["step_seconds"] > 0
        assert measured["validation_seconds"] > 0
    again = lm.train(resume=cut, **{k: v for k, v in TINY.items() if k in ("progress", "echo")})
    assert again.status == "finished" and again.step == plan[0]["end"]
    assert config(cut)["plan"]["phases"] == plan          # resuming measured nothing new

    whole = tmp_path / "whole"
    replay = lm.train(config=cut / "config.json", out=whole, progress=False, echo=None)
    assert replay.step == plan[0]["end"]
    assert config(whole)["plan"] == config(cut)["plan"]
    assert_same_run(cut, whole)


@pytest.mark.parametrize("bf16_gain", [recipe.BF16_GAIN, 0.0])
def test_minutes_run_equals_the_steps_run_it_recorded(tmp_path, small_text, monkeypatch, bf16_gain):
    """The calibration runs on a throwaway copy: the minutes run is exactly the run of the steps it
    measured (same data order, RNG, weights). ``bf16_gain`` 0: the recipe keeps bf16 wherever the CPU
    has it natively, as a busy machine's probe can make it do."""
    monkeypatch.setattr(recipe, "BF16_GAIN", bf16_gain)
    a = tmp_path / "a"
    lm.train(str(small_text), out=a, minutes=0.03, **TINY)
    (phase,) = config(a)["plan"]["phases"]
    b = tmp_path / "b"
    # what the recipe chose for the minutes run (the precision too: its bf16 probe can win on a busy
    # machine) given to the steps run
    lm.train(str(small_text), out=b, steps=phase["end"], eval_every=phase["eval_every"],
             **{**TINY, **{k: config(a)["lm"][k] for k in ("layers", "dropout", "weight_drop")},
                "precision": config(a)["train"]["precision"], "lr": config(a)["train"]["lr"]})
    assert losses(a) == losses(b)


def test_extension_is_a_recorded_phase_and_replays_exactly(tmp_path, small_text):
    """--steps 10, then --resume --steps 16: a second phase (a warm restart of the cosine) recorded
    in config.json; replaying that config.json gives the same 16 steps."""
    run = tmp_path / "run"
    lm.train(str(small_text), out=run, steps=10, **TINY)
    lm.train(resume=run, steps=16, progress=False, echo=None)
    phases = config(run)["plan"]["phases"]
    assert [(p["start"], p["end"], p["budget"]) for p in phases] == [(0, 10, {"steps": 10}),
                                                                     (10, 16, {"steps": 16})]
    lr = [r["lr"] for r in RunFolder(run).read_history() if r["split"] == "train"]
    assert lr[10] > lr[9]     # the new phase restarts the cosine rather than continuing at its end
    lm.train(config=run / "config.json", out=tmp_path / "again", progress=False, echo=None)
    assert_same_run(run, tmp_path / "again")


def test_cli_config_replay_and_refusals(tmp_path, small_text, capsys):
    run = tmp_path / "run"
    flags = ["--hidden", "16", "--embedding", "8", "--batch-size", "4", "--seq-len", "16",
             "--sample-length", "0", "--threads", "1", "--no-progress"]
    assert main(["train", "--data", str(small_text), "--out", str(run), "--steps", "4", *flags]) == 0
    assert main(["train", "--config", str(run / "config.json"), "--out", str(tmp_path / "b"),
                 "--no-progress"]) == 0
    assert losses(run) == losses(tmp_path / "b")
    capsys.readouterr()
    assert main(["train", "--config", str(run / "config.json"), "--out", str(tmp_path / "c"),
                 "--hidden", "8", "--no-progress"]) == 2
    assert "replays a run as recorded" in capsys.readouterr().err
