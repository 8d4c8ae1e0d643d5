"""The language model's fast stepper (`rnnkit.decode.Sampler`) under the other decoders: beam search
with beam 1 is its greedy text, and beam search's scores are the log-probabilities the plain forward
gives its sequences."""
from __future__ import annotations

import torch
from torch import nn

from rnnkit.decode import Sampler, beam_search, greedy

V, E, H = 13, 6, 9


def sampler(kind: str) -> Sampler:
    torch.manual_seed(0)
    cls = {"lstm": nn.LSTM, "gru": nn.GRU}[kind]
    return Sampler(cls(E, H, 2).double(), nn.Embedding(V, E).double(), nn.Linear(H, V).double())


def logprob(s: Sampler, prompt, seq) -> float:
    """log P(seq | prompt) by the plain forward over prompt + seq."""
    ids = torch.cat([prompt, torch.tensor([seq[:-1]])], 1) if len(seq) > 1 else prompt
    with torch.no_grad():
        out, _ = s.stack(s.embedding(ids.t()))
        logp = torch.log_softmax(s.head(out[prompt.shape[1] - 1:]), -1)[:, 0]   # (len(seq), V)
    return float(sum(logp[t, tok] for t, tok in enumerate(seq)))


def test_beam_one_is_greedy_and_beam_scores_are_the_forward_log_probabilities():
    for kind in ("lstm", "gru"):
        s = sampler(kind)
        prompt = torch.tensor([[3, 1, 4], [1, 5, 9]])
        eos = 0
        g = greedy(s.step, *s.prime(prompt), 8, eos=eos, pad=eos)
        b1 = beam_search(s, *s.prime(prompt), beam=1, max_len=8, eos=eos, alpha=0.0)
        T = min(g.shape[1], b1.tokens.shape[1])
        assert torch.equal(g[:, :T], b1.tokens[:, :T])
        b4 = beam_search(s, *s.prime(prompt), beam=4, max_len=8, eos=eos, alpha=0.0)
        for r in range(2):
            best = b4.hypotheses[r][0]
            assert abs(best[1] - logprob(s, prompt[r:r + 1], best[2])) < 1e-9   # scores are log P
