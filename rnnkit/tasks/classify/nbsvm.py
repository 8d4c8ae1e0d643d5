"""The classifier's linear branch: logistic regression on NB-weighted word n-grams (NBSVM's recipe,
Wang & Manning 2012, with a logistic loss), fitted on the training part before the recurrent model
trains; its probabilities are averaged with the recurrent model's (`TextClassifier`).

Features: a text's words (as the vocabulary tokenises them, cut to ``max_len``) give their 1- to
``ORDER``-grams; each distinct n-gram is hashed (CRC-32 of ``" ".join(words)``, stable across
processes, unlike Python's salted ``hash``) to an id ``1 + crc32 % buckets``; 0 pads. A text is the
binary set of its ids (`text_ngram_ids`), ``(N,)``.

NB weighting (`nb_ratios`): for class ``c`` against the others, with ``alpha`` smoothing and the counts
of texts containing each feature, ``p = alpha + count in class c``, ``q = alpha + count in the rest``
(over the features seen in training), ``r_c = log((p / |p|_1) / (q / |q|_1))``; for two classes
``r_1 = -r_0`` is NBSVM's log-count ratio ``r``. Features never seen in training get 0.

The branch's class-``c`` logit is ``b_c + sum_f x_f r_{f,c} w_{f,c}`` over the text's features ``x``
(binary): logistic regression on NB-scaled features, the L2 strength chosen on the validation part
(`fit_nb_logistic`; for two classes the two columns share the penalty, so its ``C`` is scikit-learn's
binary ``C / 2``). The fitted product ``r * w`` is stored as one ``(buckets + 1, C)`` table
(`NBLinear`), a buffer: the recurrent model's optimizer never changes it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.tasks.classify.subwords import bucket_id

ORDER = 2                          # unigrams and bigrams (NBSVM's best on short sentiment texts)
ALPHA = 1.0                        # NBSVM's smoothing
CHOICES_C = (0.1, 1.0, 10.0, 100.0)  # inverse L2 strengths tried (scikit-learn's C, per text)


def text_ngram_ids(tokens: Sequence[str], buckets: int, order: int = ORDER) -> np.ndarray:
    """The sorted distinct ids ``(N,)`` int64 in ``1..buckets`` of ``tokens``' 1- to ``order``-grams
    (module docstring); ``(0,)`` for no tokens."""
    ids = {bucket_id(" ".join(tokens[i:i + n]), buckets)
           for n in range(1, order + 1) for i in range(len(tokens) - n + 1)}
    return np.array(sorted(ids), dtype=np.int64)


def pad_ngrams(arrays: Sequence[np.ndarray]) -> Tensor:
    """``(N_b,)`` id arrays -> ``(B, N)`` int64, right-padded with 0 (``N`` at least 1)."""
    out = np.zeros((len(arrays), max([len(a) for a in arrays] + [1])), dtype=np.int64)
    for b, a in enumerate(arrays):
        out[b, :len(a)] = a
    return torch.from_numpy(out)


def binary_counts(ids: Sequence[np.ndarray], labels: np.ndarray, buckets: int,
                  num_classes: int) -> np.ndarray:
    """``(buckets + 1, C)``: how many texts of each class contain each feature (row 0: padding, 0)."""
    counts = np.zeros((buckets + 1, num_classes))
    for row, y in zip(ids, labels):
        counts[row, y] += 1                     # a text's ids are distinct: binary features
    counts[0] = 0
    return counts


def nb_ratios(ids: Sequence[np.ndarray], labels: np.ndarray, buckets: int, num_classes: int,
              alpha: float = ALPHA) -> np.ndarray:
    """The one-vs-rest NB log-count ratios ``(buckets + 1, C)`` float32 (module docstring)."""
    counts = binary_counts(ids, labels, buckets, num_classes)
    seen = counts.sum(1) > 0                                              # (F,)
    r = np.zeros_like(counts)
    for c in range(num_classes):
        p = alpha + counts[seen, c]
        q = alpha + counts[seen].sum(1) - counts[seen, c]
        r[seen, c] = np.log(p / p.sum()) - np.log(q / q.sum())
    return r.astype(np.float32)


class NBLinear(nn.Module):
    """``forward(ngrams (B, N)) -> logits (B, C)``: ``bias + sum_n table[ngrams[:, n]]`` (row 0, the
    padding, is 0). ``table`` and ``bias`` are buffers set by `fit_nb_logistic` (saved with the
    model's weights, never trained by its optimizer)."""

    table: Tensor
    bias: Tensor

    def __init__(self, buckets: int, num_classes: int):
        super().__init__()
        self.buckets = buckets
        self.register_buffer("table", torch.zeros(buckets + 1, num_classes))
        self.register_buffer("bias", torch.zeros(num_classes))

    def forward(self, ngrams: Tensor) -> Tensor:
        return self.table[ngrams].sum(1) + self.bias                      # (B, C)


def _design(ids: Sequence[np.ndarray], features: np.ndarray) -> Tensor:
    """The binary ``(len(ids), len(features))`` sparse matrix of ``ids`` over the sorted ``features``
    (ids outside them dropped)."""
    rows, cols = [], []
    for i, row in enumerate(ids):
        pos = np.searchsorted(features, row)
        ok = (pos < len(features)) & (features[np.minimum(pos, len(features) - 1)] == row)
        rows.append(np.full(int(ok.sum()), i))
        cols.append(pos[ok])
    index = torch.from_numpy(np.stack([np.concatenate(rows + [np.zeros(0, int)]),
                                       np.concatenate(cols + [np.zeros(0, int)])]).astype(np.int64))
    return torch.sparse_coo_tensor(index, torch.ones(index.shape[1], dtype=torch.float64),
                                   (len(ids), len(features)), check_invariants=True).coalesce()


def _fit(X: Tensor, R: Tensor, y: Tensor, C: float, max_iter: int = 500) -> tuple[Tensor, Tensor]:
    """Minimise ``C * sum_i CE(logits_i, y_i) + |w|^2 / 2`` (scikit-learn's objective; the bias
    unpenalised) with ``logits = X (R * w) + b``, in float64 (a few seconds: the problem is small and
    convex); returns ``(w, b)``."""
    F_, K = R.shape
    w = torch.zeros(F_, K, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(K, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, tolerance_grad=1e-9,
                            tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")
    n = len(y)

    def closure():
        opt.zero_grad()
        logits = torch.sparse.mm(X, R * w) + b
        # divided by C * n: the same minimiser, at a scale L-BFGS's tolerances suit
        loss = F.cross_entropy(logits, y, reduction="sum") / n + (w * w).sum() / (2 * C * n)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def fit_nb_logistic(train_ids: Sequence[np.ndarray], train_y: np.ndarray, val_ids: Sequence[np.ndarray],
                    val_y: np.ndarray, buckets: int, num_classes: int,
                    choices: Sequence[float] = CHOICES_C) -> tuple[Tensor, Tensor, float, dict]:
    """Fit the branch on the training texts for each L2 choice ``C``; keep the one with the lowest
    validation log-loss. Returns ``(table (buckets + 1, C), bias (C,), C, {C: validation log-loss})``."""
    R_full = nb_ratios(train_ids, train_y, buckets, num_classes)
    features = np.flatnonzero(np.abs(R_full).sum(1) > 0)                # the features seen in training
    R = torch.from_numpy(R_full[features]).double()                     # (F, C)
    X, Xv = _design(train_ids, features), _design(val_ids, features)
    y, yv = torch.from_numpy(np.asarray(train_y)), torch.from_numpy(np.asarray(val_y))
    best: tuple[Tensor, Tensor, float] | None = None
    losses: dict[float, float] = {}
    for C in choices:
        w, b = _fit(X, R, y, C)
        with torch.no_grad():
            losses[C] = float(F.cross_entropy(torch.sparse.mm(Xv, R * w) + b, yv))
        if best is None or losses[C] < losses[best[2]]:
            best = (w, b, C)
    assert best is not None, "fit_nb_logistic: no C to choose from"
    w, b, C = best
    table = torch.zeros(buckets + 1, num_classes)
    table[torch.from_numpy(features)] = (R * w).float()
    return table, b.float(), C, losses
