"""Beam search (`rnnkit.decode.beam_search`) against exhaustive search and greedy decoding, on tiny
hand-set models whose every sequence can be enumerated."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from rnnkit.decode import beam_search, greedy, length_penalty, reorder_rows

EOS = 0


class TableModel:
    """A hand-set stepper: the log-probabilities of the next token depend on the position and the
    previous token, ``table[t, prev]`` ``(V,)``; the state is ``(prev (B,), t (B,))``."""

    def __init__(self, table: torch.Tensor):
        self.table = table                                    # (T, V, V) log-probabilities

    def prime(self, batch: int):
        prev = torch.full((batch,), 1, dtype=torch.long)      # a start token
        t = torch.zeros(batch, dtype=torch.long)
        return self.table[0, prev], (prev, t)

    def step(self, tokens, state):
        _, t = state
        t = t + 1
        return self.table[t.clamp(max=self.table.shape[0] - 1), tokens], (tokens, t)

    def reorder(self, state, index):
        return reorder_rows(state, index)

    def logprob(self, seq: list[int]) -> float:
        prev, total = 1, 0.0
        for t, tok in enumerate(seq):
            total += float(self.table[min(t, self.table.shape[0] - 1), prev, tok])
            prev = tok
        return total


def exhaustive(model: TableModel, V: int, max_len: int, alpha: float) -> tuple[float, list[int]]:
    """The best normalised score over every sequence: ended by EOS at any length <= max_len, or
    max_len tokens without it (what beam search returns when nothing ended)."""
    best = (-math.inf, [])
    for n in range(1, max_len + 1):
        for body in itertools.product(range(1, V), repeat=n - 1):
            for last in ([EOS] if n < max_len else range(V)):
                seq = [*body, last]
                score = model.logprob(seq) / length_penalty(len(seq), alpha)
                if score > best[0]:
                    best = (score, seq)
    return best


def random_model(V: int, T: int, seed: int, sharp: float = 2.0) -> TableModel:
    g = torch.Generator().manual_seed(seed)
    return TableModel(torch.log_softmax(sharp * torch.randn(T, V, V, generator=g, dtype=torch.float64), -1))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_a_wide_beam_finds_what_exhaustive_search_finds(seed, alpha):
    V, max_len = 4, 4
    model = random_model(V, max_len, seed)
    scores, state = model.prime(1)
    result = beam_search(model, scores, state, beam=V ** max_len, max_len=max_len, eos=EOS, alpha=alpha)
    want_score, want_seq = exhaustive(model, V, max_len, alpha)
    assert result.tokens[0, :len(want_seq)].tolist() == want_seq
    assert result.scores[0].item() == pytest.approx(want_score, abs=1e-9)


def test_a_beam_of_two_finds_the_sequence_greedy_misses():
    """Hand-set: 'a' is the likelier first word, but everything after it is uncertain; 'b' is followed
    by a sure end. Greedy takes 'a'; the best sequence is 'b <eos>'."""
    V = 4                                                     # 0 eos, 1 start, 2 'a', 3 'b'
    p = torch.full((3, V, V), 1e-9, dtype=torch.float64)
    p[0, 1] = torch.tensor([0.0, 0.0, 0.55, 0.45])
    p[1:, 2] = torch.tensor([0.3, 0.0, 0.35, 0.35])           # after 'a': anything
    p[1:, 3] = torch.tensor([0.98, 0.0, 0.01, 0.01])          # after 'b': the end
    p[2, 2] = torch.tensor([0.4, 0.0, 0.3, 0.3])
    model = TableModel(p.clamp_min(1e-12).log())
    scores, state = model.prime(1)
    g = greedy(model.step, scores, state, 3, eos=EOS)
    assert g[0].tolist()[:2] == [2, 2]
    best = exhaustive(model, V, 3, 0.0)[1]
    assert best == [3, EOS]
    scores, state = model.prime(1)
    found = beam_search(model, scores, state, beam=2, max_len=3, eos=EOS, alpha=0.0)
    assert found.tokens[0].tolist()[:2] == best


@pytest.mark.parametrize("seed", range(5))
def test_beam_one_is_greedy_in_a_batch(seed):
    V, max_len, B = 7, 9, 6
    model = random_model(V, max_len, seed, sharp=1.0)
    scores, state = model.prime(B)
    g = greedy(model.step, scores, state, max_len, eos=EOS, pad=EOS)
    scores, state = model.prime(B)
    b = beam_search(model, scores, state, beam=1, max_len=max_len, eos=EOS, alpha=0.7)
    T = max(g.shape[1], b.tokens.shape[1])
    pad = lambda x: torch.nn.functional.pad(x, (0, T - x.shape[1]), value=EOS)
    assert torch.equal(pad(g), pad(b.tokens))


def test_rows_are_independent_and_finished_rows_leave_the_batch():
    """Each row of a batch gets what it gets alone, whatever the other rows do (some end at once,
    some run to max_len)."""
    V, max_len = 5, 6
    model = random_model(V, max_len, 3)
    table = model.table.clone()
    model.table = table
    scores, state = model.prime(4)
    scores = scores.clone()
    scores[1] = torch.log_softmax(torch.tensor([9.0, 0, 0, 0, 0], dtype=torch.float64), 0)  # row 1 ends
    batch = beam_search(model, scores, state, beam=3, max_len=max_len, eos=EOS)
    for r in range(4):
        _, st = model.prime(1)
        alone = beam_search(model, scores[r:r + 1], st, beam=3, max_len=max_len, eos=EOS)
        got = batch.tokens[r, :alone.tokens.shape[1]]
        assert torch.equal(got, alone.tokens[0]), r
        assert batch.scores[r].item() == pytest.approx(alone.scores[0].item())


def test_bad_arguments_are_named():
    model = random_model(3, 2, 0)
    scores, state = model.prime(1)
    with pytest.raises(ValueError, match="beam must be an int >= 1.*got 0"):
        beam_search(model, scores, state, beam=0, max_len=3, eos=EOS)
    with pytest.raises(ValueError, match="alpha .* must be a number >= 0, got -1"):
        beam_search(model, scores, state, beam=2, max_len=3, eos=EOS, alpha=-1)
    with pytest.raises(ValueError, match="max_len must be an int >= 1"):
        beam_search(model, scores, state, beam=2, max_len=0, eos=EOS)
