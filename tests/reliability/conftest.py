"""Fixtures of the reliability tests: a toy task whose whole state is resumable, and a small text.

Nothing here needs ``$RNNKIT_DATA``: the text is written by the fixture, so these tests run on a fresh
clone."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

#: a tiny language model and short budget: the reliability tests train many runs
TINY_LM = dict(hidden=16, embedding=8, batch_size=4, seq_len=16, sample_length=0, threads=1,
               log_every=1, progress=False, echo=None)


class ToyTask:
    """y = x @ w + noise; minibatches drawn from a seeded NumPy generator (part of the state)."""

    steps_per_epoch = 8

    def __init__(self, seed=0, nan_at=None):
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 1))
        g = np.random.default_rng(123)
        self.x = torch.tensor(g.normal(size=(256, 4)), dtype=torch.float32)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1
        self.rng = np.random.default_rng(seed)
        self.calls, self.nan_at = 0, nan_at

    def next_batch(self):
        idx = torch.as_tensor(self.rng.integers(0, 256, size=32))
        return self.x[idx], self.y[idx]

    def loss(self, batch):
        self.calls += 1
        x, y = batch
        loss_sum = nn.functional.mse_loss(self.model(x), y, reduction="sum")
        if self.nan_at is not None and self.calls >= self.nan_at:
            loss_sum = loss_sum * math.nan
        return loss_sum, len(y)

    def evaluate(self):
        return {"loss": float(nn.functional.mse_loss(self.model(self.x), self.y))}

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, d):
        self.rng.bit_generator.state = d["rng"]


@pytest.fixture
def toy_task():
    return ToyTask


@pytest.fixture
def small_text(tmp_path):
    """About 3,000 characters of varied English-like text (generated, seeded)."""
    g = np.random.default_rng(7)
    words = ["the", "time", "traveller", "machine", "said", "and", "of", "a", "to", "in", "was",
             "it", "that", "he", "his", "we", "at", "for", "strange", "world", "morning", "light"]
    lines = []
    for _ in range(80):
        lines.append(" ".join(g.choice(words, size=g.integers(4, 12))).capitalize() + ".")
    path = tmp_path / "small.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train_losses(history):
    return [r["loss"] for r in history if r["split"] == "train"]
