"""Interpolated Kneser-Ney: normalisation by brute force, a slow naive oracle, and the d2l baseline."""
from __future__ import annotations

import math

import pytest

from rnnkit.baselines.ngram import KneserNeyLM
from rnnkit.data.corpora import load_corpus
from rnnkit.data.vocab import normalize

TINY = "abracadabra cadabra abba dabba doo; a bad cab.\nbaccarat arcade"


def naive_kn(text: str, order: int, D: float, vocab: list[str]):
    """Interpolated KN straight from its definition, counting by scanning the text every time."""
    def count(g):                      # occurrences of g in text (overlapping)
        return sum(text[i:i + len(g)] == g for i in range(len(text) - len(g) + 1))

    def continuation(g):               # distinct characters seen right before g
        return len({text[i - 1] for i in range(1, len(text) - len(g) + 1) if text[i:i + len(g)] == g})

    def prob(w, h, top):
        c = count if top else continuation
        lower = prob(w, h[1:], False) if h else 1 / len(vocab)
        counts = {v: c(h + v) for v in vocab}
        total = sum(counts.values())
        if total == 0:
            return lower
        types = sum(1 for v in vocab if counts[v] > 0)
        return (max(counts[w] - D, 0) + D * types * lower) / total

    def p(w, h):                       # h: up to order-1 preceding characters
        return prob(w, h, top=len(h) == order - 1)

    return p


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("discount", [0.75, "auto", 1.0])
def test_probabilities_sum_to_one(order, discount):
    lm = KneserNeyLM(order, discount).fit(TINY)
    for context in ["", "a", "ab", "abra", "dabba ", "zzzz", "ca\n", "q", "xbr", TINY[-6:]]:
        dist = lm.distribution(context)
        assert dist.shape == (len(lm.vocab),) and (dist > 0).all()
        assert math.isclose(dist.sum(), 1.0, rel_tol=1e-12), (context, dist.sum())
        assert sum(lm.prob(w, context) for w in lm.vocab) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("discount", [0.75, 0.4])
def test_matches_a_naive_reference(order, discount):
    lm = KneserNeyLM(order, discount).fit(TINY)
    ref = naive_kn(TINY, order, discount, lm.vocab)
    contexts = {TINY[max(0, i - order + 1):i] for i in range(len(TINY))} | {"", "zz"[:order - 1]}
    worst = 0.0
    for h in sorted(contexts):
        for w in lm.vocab:
            mapped = "".join(c if c in lm.vocab else lm.unk for c in h)
            worst = max(worst, abs(lm.prob(w, h) - ref(w, mapped)))
    assert worst < 1e-12, f"largest |P_model - P_naive| = {worst}"
    val = "cab abracadabra? dab"                                   # "?" is unseen: <unk>
    naive_bits = -sum(math.log2(ref(val[i] if val[i] in lm.vocab else lm.unk,
                                    val[max(0, i - order + 1):i].replace("?", lm.unk)))
                      for i in range(len(val))) / len(val)
    assert lm.bits_per_char(val) == pytest.approx(naive_bits, rel=1e-12)
    assert lm.perplexity(val) == pytest.approx(2 ** naive_bits, rel=1e-12)
    history = "xy dab"                                            # contexts reach back into it
    full = (history + val).replace("?", lm.unk).replace("x", lm.unk).replace("y", lm.unk)
    start = len(history)
    naive_bits = -sum(math.log2(ref(full[i], full[max(0, i - order + 1):i]))
                      for i in range(start, len(full))) / len(val)
    assert lm.bits_per_char(val, history=history) == pytest.approx(naive_bits, rel=1e-12)


def test_auto_discounts_follow_the_count_of_counts():
    lm = KneserNeyLM(3, "auto").fit(TINY)
    for j, D in enumerate(lm.discounts):
        values = list(lm._counts[j].values())
        n1, n2 = values.count(1), values.count(2)
        assert D == (n1 / (n1 + 2 * n2) if n1 else 0.75)


def test_errors():
    with pytest.raises(ValueError, match="order must be an int in \\[1, 12\\], got 0"):
        KneserNeyLM(0)
    with pytest.raises(ValueError, match="discount must be a number in \\(0, 1\\] or 'auto', got 1.5"):
        KneserNeyLM(3, 1.5)
    with pytest.raises(ValueError, match="call fit"):
        KneserNeyLM(3).bits_per_char("abc")
    with pytest.raises(ValueError, match="text has 2 characters; order 3 needs at least 3"):
        KneserNeyLM(3).fit("ab")


def test_timemachine_order6_reaches_the_d2l_baseline(real_data_dir):
    c = load_corpus(real_data_dir / "timemachine.txt", val_fraction=0)
    text = normalize(c.train_text, letters_only=True)
    cut = len(text) - round(0.1 * len(text))
    lm = KneserNeyLM(6).fit(text[:cut])
    assert len(lm.vocab) == 28
    bpc = lm.bits_per_char(text[cut:])
    assert 1.85 < bpc < 1.95, bpc                  # the measurement: ~1.91
