"""The language model's default validation split: blocks spread over one text (recorded in
config.json), whole files of a folder; a run recorded with ``split: null`` keeps the tail."""
from __future__ import annotations

import json

from rnnkit.data import load_corpus
from rnnkit.data.corpora import spread_cuts
from rnnkit.tasks import language_model as lm
from rnnkit.tasks.lm.config import LMConfig
from rnnkit.tasks.lm.data import load_lm_data

TINY = dict(hidden=16, layers=1, embedding=8, batch_size=4, seq_len=16, sample_length=0, threads=1,
            dropout=0.0, steps=4, eval_every=2, progress=False, echo=None, seed=0)


def test_a_new_run_validates_on_spread_blocks_and_records_the_split(tmp_path, data_dir):
    text = (data_dir / "timemachine.txt").read_text()[:60_000]
    p = tmp_path / "t.txt"
    p.write_text(text)
    lm.train(str(p), out=tmp_path / "run", **TINY)
    section = json.loads((tmp_path / "run" / "config.json").read_text())["lm"]
    assert section["split"] == "spread"
    held = "".join(text[a:b] for a, b in spread_cuts(text, 0.1))
    assert len(spread_cuts(text, 0.1)) == 3                     # 6,000 characters: blocks of 2,000
    result = lm.evaluate(tmp_path / "run")                      # the run's own validation text
    assert result["tokens"] == len(held) - 1
    (tmp_path / "held.txt").write_text(held)
    direct = lm.evaluate(tmp_path / "run", str(tmp_path / "held.txt"))   # the blocks as a text
    assert abs(direct["loss"] - result["loss"]) < 1e-9


def test_a_run_recorded_with_a_null_split_still_validates_on_the_tail(tmp_path, data_dir):
    text = (data_dir / "timemachine.txt").read_text()[:30_000]
    p = tmp_path / "t.txt"
    p.write_text(text)
    old = load_lm_data(LMConfig(data=str(p), split=None))       # what an older run recorded
    assert old.corpus.val_text == load_corpus(p, split="tail").val_text == text[-3_000:]
    assert LMConfig(data=str(p)).split is None                   # only a new run settles it
