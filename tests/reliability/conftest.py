"""Fixtures of the reliability tests: a small text (the toy task whose whole state is resumable,
``toy_task``, is the trainer tests' own, in tests/conftest.py).

Nothing here needs ``$RNNKIT_DATA``: the text is written by the fixture, so these tests run on a fresh
clone."""
from __future__ import annotations

import numpy as np
import pytest

#: a tiny language model and short budget: the reliability tests train many runs
TINY_LM = dict(hidden=16, embedding=8, batch_size=4, seq_len=16, sample_length=0, threads=1,
               log_every=1, progress=False, echo=None)


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
