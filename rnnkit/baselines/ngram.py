"""A character n-gram language model with interpolated Kneser-Ney smoothing: the baseline to beat.

For an order-``N`` model, the probability of character ``w`` after the context ``h`` (the last
``k <= N-1`` characters; fewer at the start of a text) is defined level by level, from the uniform
distribution over the V characters up to the context's full length (Chen & Goodman 1998, eq. 26):

    P_0(w)      = 1 / V
    P_j(w | h_j) = ( max(c_j(h_j w) - D_j, 0) + D_j * N1+(h_j .) * P_{j-1}(w | h_{j-1}) ) / c_j(h_j .)

where ``h_j`` is the last ``j`` characters of the context, ``c_j(h_j .) = sum_v c_j(h_j v)`` and
``N1+(h_j .) = |{v : c_j(h_j v) > 0}|``. The count ``c_j`` is the raw count of the n-gram in the
training text at the highest order ``j = N-1``, and its *continuation count* -- the number of distinct
characters seen just before it -- at every lower order (the Kneser-Ney idea: a lower order is used only
when the longer context was rare, so it should model how many contexts a character follows). When
``c_j(h_j .) = 0`` (an unseen context) ``P_j = P_{j-1}``. Each level sums to 1 over the vocabulary.

The vocabulary is the training text's characters plus one ``<unk>`` symbol that every unseen character
maps to (so d2l's letters-and-space text gives V = 28, as a character RNN's vocabulary). Discounts:
``0.75`` at every level, or ``"auto"``: ``D_j = n1 / (n1 + 2 n2)`` from the number of n-grams seen
once and twice at that level (Ney, Essen & Kneser 1994; 0.75 when no n-gram is seen once).

Pure Python with dict counts: orders 3-7 fit on 160k characters in a second or two each.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import numpy as np


def _tail(text: str, k: int) -> str:
    """The last ``k`` characters of ``text`` (all of it when shorter; ``""`` when ``k == 0``)."""
    return text[len(text) - k:] if 0 < k < len(text) else (text if k else "")


class KneserNeyLM:
    """Interpolated Kneser-Ney character model of order ``N`` (context of up to N-1 characters).

    ``KneserNeyLM(order=6).fit(train_text).bits_per_char(val_text)``.
    """

    def __init__(self, order: int = 5, discount: float | str = 0.75):
        if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= 12:
            raise ValueError(f"KneserNeyLM: order must be an int in [1, 12], got {order!r}")
        if isinstance(discount, str):
            if discount != "auto":
                raise ValueError(f"KneserNeyLM: discount must be a number in (0, 1] or 'auto', "
                                 f"got {discount!r}")
        elif isinstance(discount, bool) or not isinstance(discount, (int, float)) \
                or not 0 < discount <= 1:
            raise ValueError(f"KneserNeyLM: discount must be a number in (0, 1] or 'auto', "
                             f"got {discount!r}")
        self.order = order
        self.discount = discount
        self.vocab: list[str] = []
        self.unk = ""
        self.discounts: list[float] = []   # D_j for context length j = 0 .. N-1

    # -- training ------------------------------------------------------------------------------
    def fit(self, text: str) -> KneserNeyLM:
        """Count the n-grams of ``text`` (a str of at least ``order`` characters); returns self."""
        if not isinstance(text, str):
            raise TypeError(f"KneserNeyLM.fit: text must be a str, got {type(text).__name__}")
        N = self.order
        if len(text) < N:
            raise ValueError(f"KneserNeyLM.fit: text has {len(text)} characters; order {N} needs at "
                             f"least {N}")
        chars = sorted(set(text))
        self.unk = next(chr(c) for c in range(0xE000, 0x110000) if chr(c) not in set(chars))
        self.vocab = [*chars, self.unk]
        self._known = frozenset(chars)
        n = len(text)
        # counts[j]: n-gram of length j+1 -> raw count (j = N-1) or continuation count (j < N-1)
        counts: list[dict[str, int]] = [dict() for _ in range(N)]
        counts[N - 1] = Counter(text[i:i + N] for i in range(n - N + 1))
        for j in range(N - 1):
            # continuation count of g (length j+1) = number of distinct (j+2)-grams x g
            longer = counts[N - 1].keys() if j + 1 == N - 1 else {text[i:i + j + 2]
                                                                    for i in range(n - j - 1)}
            counts[j] = Counter(g[1:] for g in longer)
        self._counts = counts
        self._ctx_total: list[dict[str, int]] = []
        self._ctx_types: list[dict[str, int]] = []
        for j in range(N):
            total: dict[str, int] = {}
            types: dict[str, int] = {}
            for g, c in counts[j].items():
                h = g[:-1]
                total[h] = total.get(h, 0) + c
                types[h] = types.get(h, 0) + 1
            self._ctx_total.append(total)
            self._ctx_types.append(types)
        self.discounts = [self._discount_for(counts[j].values()) for j in range(N)]
        return self

    def _discount_for(self, values: Iterable[int]) -> float:
        if self.discount != "auto":
            return float(self.discount)
        cc = Counter(v for v in values if v <= 2)
        n1, n2 = cc[1], cc[2]
        return n1 / (n1 + 2 * n2) if n1 else 0.75

    def _check_fitted(self) -> None:
        if not self.vocab:
            raise ValueError("KneserNeyLM: call fit(text) before asking for probabilities")

    def _map(self, text: str) -> str:
        known, unk = self._known, self.unk
        if all(c in known for c in set(text)):
            return text
        return "".join(c if c in known else unk for c in text)

    # -- probabilities -------------------------------------------------------------------------
    def _prob(self, w: str, h: str) -> float:
        """P(w | h) for an already mapped char ``w`` and context ``h`` of at most N-1 chars."""
        p = 1.0 / len(self.vocab)
        for j in range(len(h) + 1):
            ctx = h[len(h) - j:]
            tot = self._ctx_total[j].get(ctx)
            if tot is None:   # unseen context: every longer one is unseen too
                break
            D = self.discounts[j]
            c = self._counts[j].get(ctx + w, 0)
            p = (max(c - D, 0.0) + D * self._ctx_types[j][ctx] * p) / tot
        return p

    def prob(self, char: str, context: str = "") -> float:
        """P(char | context); only the last ``order - 1`` characters of ``context`` are used."""
        self._check_fitted()
        if not isinstance(char, str) or len(char) != 1:
            raise ValueError(f"KneserNeyLM.prob: char must be one character, got {char!r}")
        h = self._map(_tail(context, self.order - 1))
        return self._prob(self._map(char), h)

    def distribution(self, context: str = "") -> np.ndarray:
        """P(. | context) over ``self.vocab`` (the last entry is ``<unk>``), shape ``(V,)``; sums to 1."""
        self._check_fitted()
        h = self._map(_tail(context, self.order - 1))
        return np.array([self._prob(w, h) for w in self.vocab])

    def bits_per_char(self, text: str, history: str = "") -> float:
        """Mean ``-log2 P(text[i] | previous N-1 chars)`` over ``text``.

        The first characters' contexts reach back into ``history`` (say, the end of the training
        text); with the default ``""`` they are just shorter.
        """
        self._check_fitted()
        if not isinstance(text, str) or not text:
            raise ValueError("KneserNeyLM.bits_per_char: text must be a non-empty str")
        k = self.order - 1
        pre = self._map(_tail(history, k))
        full = pre + self._map(text)
        start = len(pre)
        log2 = math.log2
        total = 0.0
        prob = self._prob
        for i in range(start, len(full)):
            total -= log2(prob(full[i], full[max(0, i - k):i]))
        return total / len(text)

    def perplexity(self, text: str, history: str = "") -> float:
        """``2 ** bits_per_char(text)``: the per-character perplexity."""
        return 2.0 ** self.bits_per_char(text, history)

    def __repr__(self) -> str:
        return f"KneserNeyLM(order={self.order}, discount={self.discount!r}, V={len(self.vocab)})"
