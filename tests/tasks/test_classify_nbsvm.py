"""The classifier's NB-weighted n-gram branch (`rnnkit.tasks.classify.nbsvm`): the word n-gram ids, the
NB log-count ratios against a direct count over the n-gram strings, the fitted logistic regression
against scikit-learn's on the same NB-scaled features, and the model's output as the mean of the two
models' probabilities."""
from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from rnnkit.tasks.classify import ClassifyConfig, TextClassifier, load, predict_proba
from rnnkit.tasks.classify import train as train_classifier
from rnnkit.tasks.classify.data import read_splits
from rnnkit.tasks.classify.ensemble import build_classifier
from rnnkit.tasks.classify.task import encode_inputs
from rnnkit.tasks.classify.nbsvm import (
    NBLinear, fit_nb_logistic, nb_ratios, pad_ngrams, text_ngram_ids)

BUCKETS = 1 << 20      # large: the tests' few n-grams get distinct ids (asserted)


def corpus(seed: int, n: int, classes: int):
    """``n`` random texts over a 12-word vocabulary whose words lean to a class, and their labels."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(12)]
    labels = rng.integers(0, classes, n)
    texts = []
    for y in labels:
        p = np.ones(12)
        p[y::classes] += 3                                   # each class has its favourite words
        texts.append(list(rng.choice(words, rng.integers(1, 7), p=p / p.sum())))
    return texts, labels


def grams(tokens: list[str]) -> set[str]:
    return {" ".join(tokens[i:i + n]) for n in (1, 2) for i in range(len(tokens) - n + 1)}


def test_text_ngram_ids_are_the_distinct_hashed_word_unigrams_and_bigrams():
    tokens = "the food was good , the food".split()
    ids = text_ngram_ids(tokens, BUCKETS)
    want = grams(tokens)                                     # 5 unigrams + 5 distinct bigrams
    assert len(want) == 10 and len(ids) == len(want) and list(ids) == sorted(set(ids.tolist()))
    assert set(ids.tolist()) == {1 + zlib.crc32(g.encode()) % BUCKETS for g in want}
    assert ids.min() >= 1 and text_ngram_ids([], BUCKETS).shape == (0,)
    assert text_ngram_ids(tokens, 7).max() <= 7              # hashed into 1..buckets
    padded = pad_ngrams([ids, ids[:3], np.zeros(0, np.int64)])
    assert padded.shape == (3, 10) and padded[1, 3:].eq(0).all() and padded[2].eq(0).all()


@pytest.mark.parametrize("classes", [2, 3])
def test_nb_ratios_match_a_direct_count_over_the_ngram_strings(classes):
    texts, labels = corpus(0, 60, classes)
    ids = [text_ngram_ids(t, BUCKETS) for t in texts]
    r = nb_ratios(ids, labels, BUCKETS, classes, alpha=1.0)
    # the oracle: count texts containing each n-gram string, per class, with NumPy
    vocab = sorted(set().union(*map(grams, texts)))
    bucket = np.array([1 + zlib.crc32(g.encode()) % BUCKETS for g in vocab])
    assert len(set(bucket.tolist())) == len(vocab)         # no collisions in the test
    X = np.array([[g in grams(t) for g in vocab] for t in texts], dtype=float)   # (n, F) binary
    for c in range(classes):
        p = 1.0 + X[labels == c].sum(0)
        q = 1.0 + X[labels != c].sum(0)
        np.testing.assert_allclose(r[bucket, c], np.log((p / p.sum()) / (q / q.sum())), rtol=1e-5,
                                   atol=1e-6)
    unseen = np.setdiff1d(np.arange(BUCKETS + 1), bucket)
    assert not r[unseen].any()                              # padding and unseen n-grams: 0
    if classes == 2:                                        # NBSVM's r and its negation
        np.testing.assert_allclose(r[bucket, 0], -r[bucket, 1], atol=1e-6)


def test_the_fitted_branch_is_scikit_learns_logistic_regression_on_nb_scaled_features():
    """For each C: the branch's probabilities on held-out texts equal scikit-learn's L2 logistic
    regression (same C) on the binary features scaled by NBSVM's r; the validation part picks the C
    with the lowest log-loss."""
    texts, labels = corpus(1, 160, 2)
    ids = [text_ngram_ids(t, BUCKETS) for t in texts]
    tr, va = np.arange(120), np.arange(120, 160)
    train_ids, val_ids = [ids[i] for i in tr], [ids[i] for i in va]
    vocab = sorted(set().union(*(grams(texts[i]) for i in tr)))
    bucket = np.array([1 + zlib.crc32(g.encode()) % BUCKETS for g in vocab])
    X = np.array([[g in grams(t) for g in vocab] for t in texts], dtype=float)
    r = nb_ratios(train_ids, labels[tr], BUCKETS, 2)[bucket, 1]
    losses_sk = {}
    for C in (0.1, 1.0, 10.0):
        table, bias, chosen, losses = fit_nb_logistic(train_ids, labels[tr], val_ids, labels[va], BUCKETS,
                                                      2, choices=(C,))
        assert chosen == C
        # two classes: the branch has a weight column per class, each on +-r, so its penalty on the
        # one effective vector u = w_1 + w_0 is |u|^2 / 4: scikit-learn's single-vector C doubled
        sk = LogisticRegression(C=2 * C, tol=1e-10, max_iter=10000).fit(X[tr] * r, labels[tr])
        want = sk.predict_proba(X[va] * r)
        branch = NBLinear(BUCKETS, 2)
        branch.table.copy_(table)
        branch.bias.copy_(bias)
        with torch.no_grad():
            got = torch.softmax(branch(pad_ngrams(val_ids)), 1).numpy()
        np.testing.assert_allclose(got, want, atol=2e-4)
        losses_sk[C] = -np.mean(np.log(want[np.arange(len(va)), labels[va]]))
        assert losses[C] == pytest.approx(losses_sk[C], abs=1e-3)
    _, _, chosen, _ = fit_nb_logistic(train_ids, labels[tr], val_ids, labels[va], BUCKETS, 2,
                                      choices=(0.1, 1.0, 10.0))
    assert chosen == min(losses_sk, key=losses_sk.get)


def test_the_model_averages_the_recurrent_and_the_branch_probabilities():
    torch.manual_seed(0)
    model = TextClassifier(30, 3, cell="gru", hidden=5, embedding=4, ngrams=50, pooling="max").eval()
    model.nb.table.normal_()
    model.nb.table[0] = 0                                    # the padding row, as fitted
    model.nb.bias.normal_()
    ids, lengths = torch.randint(2, 30, (2, 4)), torch.tensor([4, 2])
    ng = pad_ngrams([np.array([3, 7, 9]), np.array([50])])
    with torch.no_grad():
        out = model(ids, lengths, None, ng)
        rnn, branch = model.branch_logits(ids, lengths, None, ng)
        manual = torch.stack([model.nb.table[[3, 7, 9]].sum(0), model.nb.table[50]]) + model.nb.bias
        more_padding = model(ids, lengths, None, torch.cat([ng, torch.zeros(2, 4, dtype=torch.long)], 1))
    torch.testing.assert_close(branch, manual)
    torch.testing.assert_close(torch.softmax(out, 1), (torch.softmax(rnn, 1) + torch.softmax(manual, 1)) / 2)
    torch.testing.assert_close(more_padding, out)
    with pytest.raises(ValueError, match=r"ngrams=50; expected n-gram ids \(B=2, N\), got None"):
        model(ids, lengths)
    with pytest.raises(ValueError, match="ngrams=0; expected no n-gram ids"):
        TextClassifier(30, 3, hidden=5, embedding=4)(ids, lengths, None, ng)
    # the branch is fitted, never trained: no parameters of its own
    assert not any(name.startswith("nb.") for name, _ in model.named_parameters())
    assert {"nb.table", "nb.bias"} <= set(model.state_dict())


def test_config_ngrams():
    assert ClassifyConfig(data="x").model_kwargs()["ngrams"] == 262144    # on by default
    assert ClassifyConfig(data="x", ngrams=100).model_kwargs()["ngrams"] == 100
    assert ClassifyConfig(data="x", ngrams=0).model_kwargs()["ngrams"] == 0
    assert ClassifyConfig(data="x", level="char", ngrams=100).model_kwargs()["ngrams"] == 0
    with pytest.raises(ValueError, match="ngrams must be an int >= 0"):
        ClassifyConfig(data="x", ngrams=-1)
    for bad in (True, 1.5):
        with pytest.raises(TypeError, match="ngrams must be int"):
            ClassifyConfig(data="x", ngrams=bad)


def test_recurrent_only_probabilities_leave_the_branch_out():
    torch.manual_seed(1)
    model = TextClassifier(30, 3, cell="gru", hidden=5, embedding=4, ngrams=50, pooling="max").eval()
    model.nb.table.normal_()
    model.nb.bias.normal_()
    ensemble = build_classifier(30, 3, ensemble=2, cell="gru", hidden=5, embedding=4, ngrams=50).eval()
    for m in ensemble.members:
        m.nb.table.normal_()
    seqs = [np.array([3, 4, 5, 6]), np.array([7, 8]), np.array([9])]
    ngs = [np.array([3, 7, 9]), np.array([50]), np.array([1, 2])]
    for net in (model, ensemble):
        got = predict_proba(net, seqs, 0, ngrams=ngs, recurrent_only=True)
        mixed = predict_proba(net, seqs, 0, ngrams=ngs)
        members = net.members if net is ensemble else [net]
        with torch.no_grad():
            want = [torch.stack([torch.softmax(m.branch_logits(torch.from_numpy(s).unsqueeze(0),
                                                               torch.tensor([len(s)]), None,
                                                               pad_ngrams([g]))[0], 1)[0]
                                 for s, g in zip(seqs, ngs)]) for m in members]
        torch.testing.assert_close(got, torch.stack(want).mean(0))
        assert not torch.allclose(got, mixed)           # the branch does move the mixture


def test_validation_selects_by_the_recurrent_model_and_reports_the_mixture(tmp_path):
    rng = np.random.default_rng(0)
    good, bad = ["great", "lovely", "fine", "superb"], ["awful", "broken", "rude", "cold"]
    rows = []
    for i in range(200):
        label = i % 2
        words = list(rng.choice(good if label else bad, 2)) + list(rng.choice(["the", "a", "phone"], 3))
        rows.append(" ".join(rng.permutation(words)) + f"\t{label}")
    (tmp_path / "data.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    train_classifier(data=str(tmp_path / "data.tsv"), out=out, ngrams=300, hidden=8, embedding=8,
                     epochs=2, batch_size=16, progress=False, echo=None)
    records = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    vals = [r for r in records if r.get("split") == "val"]
    assert vals and all("mixed_accuracy" in r for r in vals)
    best = [r for r in vals if r.get("best")][-1]
    loaded = load(out)
    cfg = loaded.config
    val = read_splits(cfg).val
    x, sub, ng = encode_inputs(loaded.vocab, val, cfg.max_len, loaded.model.subwords, loaded.model.ngrams)
    y = np.array([loaded.labels.index(lab) for lab in val.labels])
    own = predict_proba(loaded.model, x, loaded.pad_id, subwords=sub, ngrams=ng, recurrent_only=True)
    mixed = predict_proba(loaded.model, x, loaded.pad_id, subwords=sub, ngrams=ng)
    assert best["accuracy"] == pytest.approx(float((own.argmax(1).numpy() == y).mean()))
    assert best["mixed_accuracy"] == pytest.approx(float((mixed.argmax(1).numpy() == y).mean()))
