"""`benchmarks/bench_classify.py --set OPTION=VALUE`: options are read with the types of the classifier's
defaults, unknown ones are refused by name, and they reach every fold's training."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_classify.py"
spec = importlib.util.spec_from_file_location("bench_classify", _PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_set_options_take_the_defaults_types():
    got = bench.parse_sets(["ngrams=262144", "cell=lstm", "word-dropout=0.2", "bidirectional=false"])
    assert got == {"ngrams": 262144, "cell": "lstm", "word_dropout": 0.2, "bidirectional": False}
    assert isinstance(got["ngrams"], int) and isinstance(got["word_dropout"], float)
    for bad in ("nope=1", "ngrams"):
        with pytest.raises(SystemExit, match="--set: expected OPTION=VALUE"):
            bench.parse_sets([bad])


def test_set_options_reach_each_folds_training(monkeypatch, tmp_path):
    seen = []

    def fake_train(**kw):
        seen.append(kw)

    monkeypatch.setattr(bench.classify, "train", fake_train)
    monkeypatch.setattr(bench.classify, "evaluate", lambda run, split: {
        "accuracy": 0.5, "macro_f1": 0.5, "examples": 10})
    r = bench.rnnkit_fold(("data.tsv", 10, 3, 1, {"ngrams": 100}))
    assert seen[0]["ngrams"] == 100 and seen[0]["fold"] == 3 and seen[0]["seed"] == 1
    assert r["fold"] == 3 and r["accuracy"] == 0.5
