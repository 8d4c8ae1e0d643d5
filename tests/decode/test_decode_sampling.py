"""The one sampling loop (`rnnkit.decode.sample_tokens`) with an end token, against a plain loop."""
from __future__ import annotations

import pytest
import torch

from rnnkit.decode import greedy, sample, sample_next


def plain(W, scores, length, eos, pad, generator, **sampling):
    """Row by row, the textbook loop: draw, stop at eos, pad the rest."""
    out = []
    for b in range(scores.shape[0]):
        cur, row = scores[b:b + 1], []
        for _ in range(length):
            tok = sample_next(cur, generator=generator, **sampling)
            row.append(int(tok))
            if int(tok) == eos:
                break
            cur = W[tok]
        out.append(row)
    return out


def test_rows_end_at_eos_are_padded_and_the_loop_stops_when_all_ended():
    V, eos, pad = 6, 0, 5
    W = torch.randn(V, V, generator=torch.Generator().manual_seed(0))
    W[:, eos] += 1.0                               # ends come often
    step = lambda tok, state: (W[tok], state)
    scores = torch.randn(4, V, generator=torch.Generator().manual_seed(1))
    got = greedy(step, scores, None, 50, eos=eos, pad=pad)
    want = plain(W, scores, 50, eos, pad, None, temperature=0)
    assert got.shape[1] == max(len(r) for r in want) < 50
    for row, w in zip(got.tolist(), want):
        assert row == w + [pad] * (got.shape[1] - len(w))


@pytest.mark.parametrize("sampling", [dict(temperature=1.0), dict(temperature=0.7, top_k=3)])
def test_sampling_one_row_at_a_time_draws_the_same_as_the_batch_loop_for_one_row(sampling):
    V, eos = 6, 0
    W = torch.randn(V, V, generator=torch.Generator().manual_seed(2))
    step = lambda tok, state: (W[tok], state)
    scores = torch.randn(1, V, generator=torch.Generator().manual_seed(3))
    got = sample(step, scores, None, 30, eos=eos, generator=torch.Generator().manual_seed(4), **sampling)
    want = plain(W, scores, 30, eos, eos, torch.Generator().manual_seed(4), **sampling)[0]
    assert got[0].tolist() == want
