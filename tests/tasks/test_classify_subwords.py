"""Subword (hashed character n-gram) features of the classifier: the n-grams against brute-force
enumeration, ids that do not depend on the process (no salted ``hash``), the model's mean of n-gram
vectors against ``torch.nn.functional.embedding_bag``, padding invariance with n-grams, and a trained
run that tells two unseen words apart by their spelling (and cannot without subwords)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F

from rnnkit.tasks import classify
from rnnkit.tasks.classify.config import ClassifyConfig
from rnnkit.tasks.classify.model import TextClassifier
from rnnkit.tasks.classify.subwords import (
    MAX_N, MIN_N, encode_subwords, ngram_ids, pad_subwords, word_ngrams)


@pytest.mark.parametrize("word", ["a", "ab", "hello", "naïve", "don't", "😀ok"])
def test_ngrams_are_the_substrings_of_the_bracketed_word(word):
    w = f"<{word}>"
    expected = sorted(w[i:j] for i in range(len(w)) for j in range(i + 1, len(w) + 1)
                      if MIN_N <= j - i <= MAX_N)
    assert sorted(word_ngrams(word)) == expected


def test_ids_are_the_same_in_every_process():
    words = ["hello", "naïve", "wonderfull"]
    here = [ngram_ids(w, 1000) for w in words]
    code = ("from rnnkit.tasks.classify.subwords import ngram_ids; "
            f"print([ngram_ids(w, 1000) for w in {words!r}])")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert eval(out) == here
    assert all(1 <= i <= 1000 for ids in here for i in ids)


def test_encoding_pads_with_zero():
    a = encode_subwords(["ab", "hello"], 50)                               # (T=2, K)
    assert a.shape == (2, len(word_ngrams("hello")))
    assert (a[0, len(word_ngrams("ab")):] == 0).all() and (a[0, :len(word_ngrams("ab"))] > 0).all()
    b = pad_subwords([a, a[:1, :3]], 4)                                    # (B=2, T=4, K)
    assert b.shape == (2, 4, a.shape[1])
    assert (b[0, :2].numpy() == a).all() and (b[0, 2:] == 0).all() and (b[1, 1:] == 0).all()


def word_vectors(model: TextClassifier, ids, sub):
    """Each word's vector, computed independently: its embedding plus the mean (``embedding_bag``,
    which skips ``padding_idx``) of its n-gram rows."""
    B, T, K = sub.shape
    bag = F.embedding_bag(sub.reshape(B * T, K), model.subword_embed.weight, mode="mean", padding_idx=0)
    return model.embed(ids) + bag.reshape(B, T, -1)


def test_the_model_adds_the_mean_of_the_ngram_vectors():
    torch.manual_seed(0)
    model = TextClassifier(30, 2, cell="gru", hidden=5, embedding=4, subwords=40, pooling="mean").eval()
    plain = TextClassifier(30, 2, cell="gru", hidden=5, embedding=4, pooling="mean").eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("subword")})
    ids = torch.randint(1, 30, (3, 5))
    sub = torch.randint(0, 41, (3, 5, 6))
    sub[:, :, 0] = torch.randint(1, 41, (3, 5))                          # every word has an n-gram
    lengths = torch.tensor([5, 2, 4])
    x = word_vectors(model, ids, sub)                                      # (B, T, E)

    class Fixed(torch.nn.Module):
        def forward(self, _ids):
            return x.transpose(0, 1)                                       # (T, B, E)

    plain.embed = Fixed()
    torch.testing.assert_close(model(ids, lengths, sub), plain(ids, lengths), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["last", "max", "attention"])
def test_padding_with_ngrams_never_changes_the_logits(pooling):
    torch.manual_seed(1)
    model = TextClassifier(30, 3, cell="lstm", hidden=5, embedding=4, subwords=40, pooling=pooling).eval()
    lengths = torch.tensor([4, 1, 3])
    ids = torch.randint(1, 30, (3, 6))                                     # padded to 6 with garbage
    sub = torch.randint(1, 41, (3, 6, 7))
    a = model(ids, lengths, sub)
    alone = torch.cat([model(ids[i:i + 1, :n], lengths[i:i + 1], sub[i:i + 1, :n])
                       for i, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(a, alone, rtol=1e-5, atol=1e-5)


def test_missing_or_unexpected_ngrams_and_bad_settings_are_refused():
    ids, lengths = torch.ones(2, 3, dtype=torch.long), torch.tensor([3, 2])
    with pytest.raises(ValueError, match=r"subwords=8; expected the words' n-gram ids \(B=2, T=3, K\)"):
        TextClassifier(10, 2, hidden=4, embedding=3, subwords=8)(ids, lengths)
    with pytest.raises(ValueError, match=r"subwords=0; expected no n-gram ids, got shape \(2, 3, 1\)"):
        TextClassifier(10, 2, hidden=4, embedding=3)(ids, lengths, torch.ones(2, 3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"subwords must be an int >= 0 \(0: none\), got -1"):
        ClassifyConfig(subwords=-1)
    assert ClassifyConfig(level="char", subwords=100).model_kwargs()["subwords"] == 0


def test_unseen_words_are_told_apart_by_their_spelling_only_with_subwords(tmp_path):
    data = tmp_path / "toy.tsv"
    rows = [f"the phone is {w}\t{y}" for w, y in (("good", 1), ("great", 1), ("bad", 0), ("awful", 0))] * 10
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    texts = ["the phone is zorblax", "the phone is quimpet"]                # neither word is known
    probs = {}
    for subwords in (0, 64):
        run = tmp_path / f"run{subwords}"
        classify.train(data=str(data), out=run, subwords=subwords, hidden=4, embedding=4, steps=3,
                       test_fraction=0.0, threads=1, progress=False, echo=None)
        probs[subwords] = [p[0] for p in classify.predict(run, texts, top=1)]
    assert probs[0][0] == probs[0][1]                      # both are <unk>: the same text to the model
    assert probs[64][0] != probs[64][1]
