"""Tiny language-model runs to export: one per cell, trained for one step through the public API."""
from __future__ import annotations

import pytest

from rnnkit.tasks import language_model as lm

TEXT = "the time traveller (for so it will be convenient to speak of him) was expounding a recondite " \
       "matter to us. his grey eyes shone and twinkled, and his usually pale face was flushed.\n" * 8


def _make_run(root, cell: str, *, embedding: int = 8, layers: int = 2, hidden: int = 8):
    """Train ``cell`` for one step on a short text; returns the run folder."""
    text = root / "text.txt"
    if not text.exists():
        text.write_text(TEXT, encoding="utf-8")
    run = root / f"run-{cell}-e{embedding}"
    lm.train(str(text), out=run, steps=1, cell=cell, hidden=hidden, layers=layers, embedding=embedding,
             batch_size=2, seq_len=8, dropout=0.0, sample_length=0, progress=False, echo=None)
    return run


@pytest.fixture(scope="session")
def make_run():
    """``make_run(folder, cell, embedding=8, layers=2, hidden=8) -> run folder`` (a fixture, as the test
    folders are not packages)."""
    return _make_run


@pytest.fixture(scope="session")
def lstm_run(tmp_path_factory):
    return _make_run(tmp_path_factory.mktemp("lstm"), "lstm")
