"""The text classifier: padding never changes the logits (every pooling, both directions, the fused and
the loop kernels), the backward direction starts at each text's real end (against torch.nn.LSTM with
pack_padded_sequence), and the metrics against scikit-learn's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from rnnkit.tasks.classify.metrics import classification_metrics
from rnnkit.tasks.classify.model import POOLINGS, TextClassifier

sk_metrics = pytest.importorskip("sklearn.metrics")


def batch(seed: int, lengths: list[int], extra: int, V: int = 40):
    """The same texts padded to max(lengths) and to max(lengths) + extra, with random garbage as
    padding (not a pad id: nothing may read it)."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    short = torch.randint(1, V, (len(lengths), T), generator=g)
    long = torch.randint(1, V, (len(lengths), T + extra), generator=g)
    for b, n in enumerate(lengths):
        long[b, :n] = short[b, :n]
        short[b, n:] = torch.randint(1, V, (T - n,), generator=g)
    return short, long, torch.tensor(lengths)


@pytest.mark.parametrize("cell", ["lstm", "gru", "lnlstm", "mingru"])   # fused, C++, scan kernels
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_padding_never_changes_the_logits(cell, bidirectional, pooling):
    torch.manual_seed(0)
    model = TextClassifier(40, 3, cell=cell, hidden=6, layers=2, embedding=5,
                           bidirectional=bidirectional, pooling=pooling, dropout=0.3).eval()
    short, long, lengths = batch(1, [7, 2, 5, 1, 7], extra=4)
    a, b = model(short, lengths), model(long, lengths)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # each text alone, unpadded: the same logits as inside the padded batch
    alone = torch.cat([model(short[i:i + 1, :n], lengths[i:i + 1]) for i, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(a, alone, rtol=1e-5, atol=1e-5)


def test_last_pooling_matches_torch_lstm_on_packed_sequences():
    """The bidirectional final states (the backward one read from each text's real end) are those of
    torch.nn.LSTM on a PackedSequence holding the same weights."""
    torch.manual_seed(0)
    model = TextClassifier(40, 2, cell="lstm", hidden=6, layers=2, embedding=5, bidirectional=True,
                           pooling="last").eval()
    ref = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True)
    weights = {}
    for k in range(2):
        for stack, suffix in ((model.forward_layers[k], ""), (model.backward_layers[k], "_reverse")):
            weights.update({n.replace("_l0", f"_l{k}{suffix}"): w for n, w in stack.state_dict().items()})
    ref.load_state_dict(weights)
    ids, _, lengths = batch(2, [6, 3, 1, 4], extra=0)
    x = model.embed(ids.t())                                              # (T, B, E)
    _, (h, _) = ref(pack_padded_sequence(x, lengths, enforce_sorted=False))
    expected = model.head(torch.cat([h[-2], h[-1]], 1))                  # (B, C)
    torch.testing.assert_close(model(ids, lengths), expected, rtol=1e-5, atol=1e-6)


def test_bad_lengths_are_refused():
    model = TextClassifier(10, 2, hidden=4, embedding=3)
    with pytest.raises(ValueError, match=r"expected lengths \(B=2,\) in \[1, T=3\], got \[3, 0\]"):
        model(torch.ones(2, 3, dtype=torch.long), torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="pooling must be one of"):
        TextClassifier(10, 2, pooling="sum")


@pytest.mark.parametrize("seed", range(4))
def test_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    C = 4
    gold = rng.integers(0, C - (seed % 2), size=60)                  # odd seeds: a class never gold
    pred = np.where(rng.random(60) < 0.6, gold, rng.integers(0, C - 1, size=60))  # class 3 rarely predicted
    labels = [f"c{i}" for i in range(C)]
    m = classification_metrics(gold, pred, labels)
    ids = list(range(C))
    assert m["accuracy"] == pytest.approx(sk_metrics.accuracy_score(gold, pred))
    assert m["macro_f1"] == pytest.approx(sk_metrics.f1_score(gold, pred, labels=ids, average="macro",
                                                               zero_division=0))
    p, r, f, s = sk_metrics.precision_recall_fscore_support(gold, pred, labels=ids, zero_division=0)
    for i, lab in enumerate(labels):
        c = m["per_class"][lab]
        assert (c["precision"], c["recall"], c["f1"], c["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    assert m["confusion"] == sk_metrics.confusion_matrix(gold, pred, labels=ids).tolist()
