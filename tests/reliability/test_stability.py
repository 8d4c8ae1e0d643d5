"""Stability of learning: extreme inputs (values of 1e6, 10,000 steps) give finite outputs and
gradients in the stock cells; the scan cells stay finite over 100,000 steps; and a loss that becomes
NaN stops training by name (the guard is the trainer's, so every task has it) with the last good
checkpoint kept."""
from __future__ import annotations

import pytest
import torch

from rnnkit import nn as rnn
from rnnkit.errors import RnnkitError
from rnnkit.train import TrainConfig, Trainer, TrainingDiverged

STOCK = [("RNN", {}), ("LSTM", {}), ("GRU", {}), ("LayerNormLSTM", {}), ("LayerNormGRU", {})]


@pytest.mark.parametrize("name, kw", STOCK, ids=[n for n, _ in STOCK])
def test_huge_inputs_over_ten_thousand_steps_stay_finite(name, kw):
    torch.manual_seed(0)
    layer = getattr(rnn, name)(4, 8, **kw)
    x = torch.full((10_000, 2, 4), 1e6)
    x[::7] *= -1                                  # both signs, not one constant: the state moves
    x.requires_grad_(True)
    out = layer(x)[0]
    assert torch.isfinite(out).all(), f"{name}: non-finite output"
    out[-100:].sum().backward()
    assert torch.isfinite(x.grad).all(), f"{name}: non-finite input gradient"
    for pname, p in layer.named_parameters():
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient of {pname}"


@pytest.mark.parametrize("name", ["MinGRU", "MinLSTM"])
def test_scan_cells_stay_finite_over_a_hundred_thousand_steps(name):
    torch.manual_seed(0)
    layer = getattr(rnn, name)(3, 8)
    x = torch.randn(100_000, 1, 3) * 10
    x.requires_grad_(True)
    out = layer(x)[0]
    assert torch.isfinite(out).all()
    assert out.abs().max() < 1e6            # a bounded mixture of bounded candidates, not a drift
    out[-1000:].sum().backward()
    assert torch.isfinite(x.grad).all()


def test_a_nan_loss_stops_training_naming_the_step_and_keeps_the_checkpoint(tmp_path, toy_task):
    cfg = TrainConfig(optimizer="adamw", lr=0.01, steps=30, eval_every=5, log_every=1)
    with pytest.raises(TrainingDiverged, match=r"the loss became nan at step 12.*step 10") as exc:
        Trainer(toy_task(nan_at=12), cfg, tmp_path / "r", echo=lambda s: None).fit()
    assert isinstance(exc.value, RnnkitError) and exc.value.step == 12
    from rnnkit.train import RunFolder
    assert RunFolder(tmp_path / "r").read_manifest()["step"] == 10


def test_every_task_trains_through_the_guarded_trainer():
    """The guard lives in `Trainer` (one loop for every task): each registered task's training goes
    through `rnnkit.tasks.base.train`, whose trainer checks every loss and gradient norm."""
    import inspect

    from rnnkit.tasks import TASKS, base, get_task
    assert "Trainer(" in inspect.getsource(base._train)
    for name in TASKS:
        cls = get_task(name)
        assert not hasattr(cls, "fit"), f"task {name} has a training loop of its own"


def test_a_diverging_language_model_stops_with_a_clear_message(tmp_path, small_text):
    from rnnkit.tasks import lm
    with pytest.raises(TrainingDiverged, match="Likely cause: exploding gradients with clipping off"):
        lm.train(str(small_text), out=tmp_path / "r", steps=60, lr=1e4, clip=0.0, optimizer="sgd",
                 hidden=16, embedding=8, batch_size=4, seq_len=16, sample_length=0, threads=1,
                 log_every=1, progress=False, echo=None, ema=0.0)
