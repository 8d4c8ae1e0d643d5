"""`--val-data`: all of ``--data`` trains and a separate text validates; the run's validation
numbers, `evaluate` and resumption agree with direct computations on that text."""
from __future__ import annotations

import json
import os
import signal

import pytest

from rnnkit.data import load_vocab
from rnnkit.tasks import language_model as lm
from rnnkit.tasks.lm.config import LMConfig
from rnnkit.tasks.lm.data import evaluate_ids, load_lm_data
from rnnkit.train import Callback

TINY = dict(hidden=16, embedding=8, batch_size=4, seq_len=16, sample_length=0, threads=1,
            log_every=1, eval_every=5, progress=False, echo=None, seed=0)


@pytest.fixture
def texts(tmp_path, data_dir):
    whole = (data_dir / "timemachine.txt").read_text()
    train, val = tmp_path / "train.txt", tmp_path / "val.txt"
    train.write_text(whole[:1500])
    val.write_text(whole[5000:5400])
    return train, val


def test_all_of_data_trains_and_the_other_text_validates(texts):
    train, val = texts
    data = load_lm_data(LMConfig(data=str(train), val_data=str(val)))
    assert data.corpus.train_text == train.read_text()
    assert data.corpus.val_text == val.read_text()
    assert len(data.train_ids) == len(train.read_text())      # characters: one token each
    split = load_lm_data(LMConfig(data=str(train)))
    assert len(split.train_ids) < len(data.train_ids)        # without it, a tenth is held out


def test_validation_and_evaluate_score_the_separate_text(tmp_path, texts):
    train, val = texts
    out = tmp_path / "run"
    lm.train(str(train), out=out, val_data=str(val), steps=10, **TINY)
    vocab = load_vocab(out / "vocab.json")
    val_ids = vocab.encode(val.read_text())
    records = [json.loads(r) for r in (out / "history.jsonl").read_text().splitlines()]
    best = min((r for r in records if r["split"] == "val"), key=lambda r: r["loss"])
    saved = lm.load(out)                   # the weights validated best: what `evaluate` scores
    direct = evaluate_ids(saved.model, val_ids, "character")["loss"]
    assert best["loss"] == pytest.approx(direct, rel=1e-6)
    assert lm.evaluate(out)["loss"] == pytest.approx(direct, rel=1e-6)
    assert lm.evaluate(out, str(val))["loss"] == pytest.approx(direct, rel=1e-6)
    training_split = lm.evaluate(out, split="train")
    assert training_split["tokens"] == len(vocab.encode(train.read_text())) - 1


class Interrupt(Callback):
    def on_step_end(self, trainer):
        if trainer.step == 7:
            os.kill(os.getpid(), signal.SIGINT)


def test_a_run_with_val_data_resumes_exactly(tmp_path, texts):
    train, val = texts
    lm.train(str(train), out=tmp_path / "full", val_data=str(val), steps=12, **TINY)
    cut = lm.train(str(train), out=tmp_path / "cut", val_data=str(val), steps=12,
                   callbacks=[Interrupt()], **TINY)
    assert cut.status == "interrupted"
    lm.train(resume=tmp_path / "cut", progress=False, echo=None)
    def losses(run):
        return [(r["split"], r["step"], r["loss"]) for r in
                map(json.loads, (tmp_path / run / "history.jsonl").read_text().splitlines())]
    assert losses("cut") == losses("full")
    assert [s for s, _, _ in losses("full")].count("train") == 12


def test_errors_name_the_option(tmp_path, texts):
    train, _ = texts
    empty = tmp_path / "empty.txt"
    empty.write_text("x")
    with pytest.raises(ValueError, match="val_data .*validation text has 1 tokens"):
        load_lm_data(LMConfig(data=str(train), val_data=str(empty)))
    with pytest.raises(ValueError, match="val_data is for plain text"):
        LMConfig(data=str(train), val_data=str(empty), condition_col="label")
    with pytest.raises(Exception, match="does not exist"):
        load_lm_data(LMConfig(data=str(train), val_data=str(tmp_path / "missing.txt")))
