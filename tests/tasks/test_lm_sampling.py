"""Sampling (`rnnkit.decode.sampling`) against brute force and the distribution it must draw from."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.decode.sampling import check_sampling, filter_logits, sample_next, sample_tokens


def brute_top_p(logits: np.ndarray, p: float) -> set[int]:
    """The smallest set of most likely tokens with probability >= p, by enumeration."""
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    kept, mass = set(), 0.0
    for i in order:
        kept.add(int(i))
        mass += probs[i]
        if mass >= p:
            break
    return kept


def test_top_k_and_top_p_keep_exactly_the_right_tokens():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 20, generator=g, dtype=torch.float64)
    for k in (1, 3, 20):
        kept = torch.isfinite(filter_logits(logits, top_k=k))
        for row, mask in zip(logits.numpy(), kept):
            assert set(np.flatnonzero(mask.numpy())) == set(np.argsort(-row)[:k])
    for p in (0.05, 0.5, 0.9, 1.0):
        kept = torch.isfinite(filter_logits(logits, top_p=p))
        for row, mask in zip(logits.numpy(), kept):
            assert set(np.flatnonzero(mask.numpy())) == brute_top_p(row, p), p
    both = torch.isfinite(filter_logits(logits, top_k=5, top_p=0.5))
    for row, mask in zip(logits.numpy(), both):
        top5 = np.full_like(row, -np.inf)
        top5[np.argsort(-row)[:5]] = row[np.argsort(-row)[:5]]
        assert set(np.flatnonzero(mask.numpy())) == brute_top_p(top5, 0.5)


def test_samples_follow_the_tempered_distribution():
    """Frequencies of 40,000 draws match softmax(logits / T) within 5 standard errors."""
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, 0.5]])
    for temperature in (0.5, 1.0, 2.0):
        g = torch.Generator().manual_seed(1)
        draws = torch.stack([sample_next(logits.expand(4000, 5), temperature, generator=g)
                             for _ in range(10)]).flatten()
        freq = torch.bincount(draws, minlength=5).double() / draws.numel()
        p = torch.softmax(logits[0].double() / temperature, 0)
        se = (p * (1 - p) / draws.numel()).sqrt()
        assert ((freq - p).abs() <= 5 * se + 1e-12).all(), (temperature, freq, p)


def test_greedy_is_argmax_and_banned_tokens_are_never_drawn():
    logits = torch.randn(8, 9)
    assert torch.equal(sample_next(logits, 0.0), logits.argmax(-1))
    W = torch.randn(9, 9)
    step = lambda tok, state: (W[tok], state)
    toks = list(sample_tokens(step, logits, None, 30, temperature=3.0, banned=(0, 4),
                              generator=torch.Generator().manual_seed(2)))
    assert len(toks) == 30
    drawn = torch.stack(toks)
    assert not ((drawn == 0) | (drawn == 4)).any()
    greedy = list(sample_tokens(step, logits, None, 5, temperature=0))
    expect, cur = [], logits
    for _ in range(5):
        tok = cur.argmax(-1)
        expect.append(tok)
        cur = W[tok]
    assert all(torch.equal(a, b) for a, b in zip(greedy, expect))


def test_bad_sampling_arguments_name_the_argument():
    with pytest.raises(ValueError, match=r"temperature must be >= 0 \(0 = greedy\), got -0.5"):
        check_sampling(-0.5, None, None)
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        check_sampling(1.0, 0, None)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        check_sampling(1.0, None, 1.5)
    with pytest.raises(TypeError, match="top_k must be an int"):
        check_sampling(1.0, 2.5, None)
    with pytest.raises(ValueError, match="length must be an int >= 1"):
        next(sample_tokens(lambda t, s: (t, s), torch.zeros(1, 3), None, 0))
