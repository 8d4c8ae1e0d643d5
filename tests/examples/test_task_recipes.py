"""The task recipes in examples/ (recipe_*.py), each run on its tiny settings (`RNNKIT_EXAMPLES_TINY=1`)
on the named data sets (the real files, or the stand-ins a fresh clone gets), and what each prints
checked against a computation of its own: the chance level and the coin-flip margin of the test
split, the months after the CSV's last one and the naive forecast's error, the treebank's own word
count and tag set, unigram perplexities of the training texts."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def recipe(data_dir, monkeypatch):
    """``recipe(name, needs)`` loads ``examples/<name>.py`` on the tiny settings and the named data
    (skipping when ``needs``, a path under the data folder, is absent); one thread, as a user's
    laptop-sized smoke run would (and so two test workers do not fight over the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def load(name: str, needs: str):
        if not (data_dir / needs).exists():
            pytest.skip(f"{needs} is not in $RNNKIT_DATA ({data_dir})")
        monkeypatch.setenv("RNNKIT_EXAMPLES_TINY", "1")
        monkeypatch.setenv("RNNKIT_DATA", str(data_dir))
        spec = importlib.util.spec_from_file_location(f"recipe_{name}", EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    yield load
    torch.set_num_threads(threads)


def unigram_perplexity(sequences, vocabulary=None, unk="<unk>") -> float:
    """The perplexity of the best context-free model of ``sequences`` on themselves (tokens outside
    ``vocabulary``, when given, counted as one ``unk`` token): what a model that learned nothing from
    its input or history at best reaches."""
    counts = Counter(t if vocabulary is None or t in vocabulary else unk for s in sequences for t in s)
    p = np.array(list(counts.values()), dtype=np.float64) / sum(counts.values())
    return float(np.exp(-(p * np.log(p)).sum()))


def test_classify_recipe_beats_chance(recipe, tmp_path, capsys):
    module = recipe("recipe_classify", "sentiment-labelled-sentences")
    out = module.main(str(tmp_path))
    printed = capsys.readouterr().out
    s = out["scores"]
    # chance: the most frequent class's share of the test split, from the per-class supports
    majority = max(c["support"] for c in s["per_class"].values()) / s["examples"]
    assert out["majority"] == majority and s["examples"] >= 100
    # beyond what a coin flip reaches by luck on this many sentences (two standard errors)
    assert s["accuracy"] > majority + 2 * math.sqrt(0.25 / s["examples"]), s
    assert f"test: accuracy {s['accuracy']:.3f}" in printed and f"class: {majority:.3f})" in printed
    assert len(out["predictions"]) == len(module.REVIEWS)
    for text, ranked in zip(module.REVIEWS, out["predictions"]):
        assert sorted(lab for lab, _ in ranked) == ["0", "1"]
        assert abs(sum(p for _, p in ranked) - 1) < 1e-5 and ranked[0][1] >= ranked[1][1]
        assert f"{ranked[0][1]:.2f}  {text}" in printed


def test_forecast_recipe_prints_the_next_months(recipe, tmp_path, capsys, data_dir):
    module = recipe("recipe_forecast", "timeseries/airline-passengers.csv")
    out = module.main(str(tmp_path))
    printed = capsys.readouterr().out
    with open(data_dir / "timeseries" / "airline-passengers.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    year, month = map(int, rows[-1][0].split("-"))
    months = [f"{year + (month - 1 + k) // 12}-{(month - 1 + k) % 12 + 1:02d}" for k in range(1, 13)]
    assert [r["date"] for r in out["rows"]] == months
    assert f"the 12 months after {rows[-1][0]}:" in printed
    assert "  " + ", ".join(f"{m} {r['value']:.0f}" for m, r in zip(months, out["rows"])) in printed
    values = np.array([float(r[1]) for r in rows])
    assert all(0.5 * values.min() < r["value"] < 2 * values.max() for r in out["rows"])
    # the naive forecast's one-step error over the printed origins, computed here from the CSV
    s = out["scores"]
    start = len(values) - (s["origins"] + s["horizon"] - 1)
    origins = np.arange(start, start + s["origins"])
    naive_mae = float(np.mean(np.abs(values[origins] - values[origins - 1])))
    assert s["naive"][0]["mae"] == pytest.approx(naive_mae)
    assert f"{'naive':>15} {naive_mae:>10.4f}" in printed
    assert s["rnn"][0]["mae"] < naive_mae          # the model beats the last value one month ahead
    assert (tmp_path / "run" / "next-year.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def conllu_tokens(path: Path) -> list[tuple[str, str]]:
    """(form, UPOS) of every word line of a CoNLL-U file (not multi-word ranges nor empty nodes)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        if len(cols) == 10 and cols[0].isdigit():
            out.append((cols[1], cols[3]))
    return out


def test_tag_recipe_prints_tags(recipe, tmp_path, capsys, data_dir):
    module = recipe("recipe_tag", "ud-english-ewt")
    out = module.main(str(tmp_path))
    printed = capsys.readouterr().out
    folder = data_dir / "ud-english-ewt"
    train_tags = {t for p in sorted(folder.glob("*train*.conllu")) for _, t in conllu_tokens(p)}
    test = [t for p in sorted(folder.glob("*test*.conllu")) for _, t in conllu_tokens(p)]
    s = out["scores"]
    assert s["words"] == len(test)
    # better than tagging every word with the test file's own commonest tag
    constant = Counter(test).most_common(1)[0][1] / len(test)
    assert s["accuracy"] > constant + 0.1, (s["accuracy"], constant)
    assert f"test: token accuracy {s['accuracy']:.3f} on {len(test):,} words" in printed
    assert len(out["tagged"]) == len(module.SENTENCES)
    for sentence, pairs in zip(module.SENTENCES, out["tagged"]):
        assert [w for w, _ in pairs] == sentence.split()         # the recipe's sentences are pre-split
        assert {t for _, t in pairs} <= train_tags
        assert "  " + " ".join(f"{w}/{t}" for w, t in pairs) in printed


def test_translate_recipe_learns_and_translates(recipe, tmp_path, capsys, data_dir):
    from rnnkit.tasks.translate_data import tokenize_sentence
    module = recipe("recipe_translate", "fra-eng.txt")
    out = module.main(str(tmp_path))
    printed = capsys.readouterr().out
    run = tmp_path / "run"
    s, best = out["scores"], out["result"].best
    for key in ("bleu_greedy", "bleu_multi_greedy", "chrf_greedy", "bleu_beam3", "chrf_beam3"):
        assert 0 <= s[key] <= 100, (key, s[key])
    assert f"greedy: BLEU {s['bleu_greedy']:.2f} (single reference)" in printed
    # the dev perplexity at the best step against the unigram model of the French side of the pairs
    # the recipe reads (its own training targets among them), with the run's vocabulary
    vocab = set(json.loads((run / "tgt_vocab.json").read_text())["tokens"])
    lines = (data_dir / "fra-eng.txt").read_text(encoding="utf-8").splitlines()
    pairs = [line.split("\t") for line in lines if line.strip()]
    short = [tokenize_sentence(f) + ["<eos>"] for e, f in pairs[:5000]
             if len(tokenize_sentence(e)) <= 10 and len(tokenize_sentence(f)) <= 10][:3000]
    assert best["ppl"] < unigram_perplexity(short, vocab) / 2, best
    assert len(out["translations"]) == len(module.SENTENCES)
    for english, french in zip(module.SENTENCES, out["translations"]):
        assert set(french.split()) <= vocab
        assert f"  {english:<14} -> {french}" in printed


def test_conditional_lm_recipe_writes_from_each_label(recipe, tmp_path, capsys, data_dir):
    module = recipe("recipe_conditional_lm", "sentiment-labelled-sentences")
    out = module.main(str(tmp_path))
    printed = capsys.readouterr().out
    texts = [line.rsplit("\t", 1)[0][:400]
             for p in sorted((data_dir / "sentiment-labelled-sentences").glob("*_labelled.txt"))
             for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    s = out["scores"]
    assert s["ppl"] == pytest.approx(math.exp(s["loss"]))
    # characters of a text and the newline that ends it, against the best context-free model
    assert s["ppl"] < unigram_perplexity([list(t) + ["\n"] for t in texts]) * 0.8, s
    assert f"perplexity {s['ppl']:.2f}" in printed
    chars = set("".join(texts))
    for label, name in (("0", "negative"), ("1", "positive")):
        assert len(out["samples"][label]) == 3
        for text in out["samples"][label]:
            assert "\n" not in text and len(text) <= 120 and set(text) <= chars
            assert f"{name:>8}: {text}" in printed
