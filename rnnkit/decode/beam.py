"""Batched beam search with length normalisation (Wu et al. 2016, "Google's Neural Machine Translation
System", eq. 14), on the stepping contract of `rnnkit.decode.stepper`.

Each of the B rows (sentences) keeps ``beam`` (K) live hypotheses. At every step the K·V extensions
of a row are scored by their summed log-probability and the best 2K are looked at in order: an
extension that ends with ``eos`` among the first K becomes a finished hypothesis, scored
``log P(Y) / lp(Y)`` with ``lp(Y) = ((5 + |Y|) / 6) ** alpha`` (``|Y|`` counts the tokens, ``eos``
included; ``alpha = 0`` ranks by the raw log-probability); the best K that do not end go on. A row is
done when K hypotheses have ended -- every beam has ended -- and leaves the batch (its state is
dropped); at ``max_len`` the live hypotheses of the rows left are finished as they are. The answer of
a row is its finished hypothesis with the best normalised score.

With ``beam=1`` this is greedy decoding (an ``eos`` ranked first ends the row, otherwise the best
token goes on). Wu et al.'s coverage penalty needs the attention weights of every step and is not
applied here.

Shapes: B rows, K beam, V vocabulary, T output length.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rnnkit.decode.sampling import check_length
from rnnkit.decode.stepper import Stepper


def length_penalty(length: int | Tensor, alpha: float) -> float | Tensor:
    """Wu et al. 2016's ``lp(Y) = ((5 + |Y|) / (5 + 1)) ** alpha``."""
    return ((5 + length) / 6) ** alpha


@dataclass
class BeamResult:
    """``tokens`` ``(B, T)``: each row's best hypothesis, ``eos`` included when it ended, then ``pad``;
    ``scores`` ``(B,)``: its normalised score; ``hypotheses[b]``: row b's finished hypotheses as
    ``(normalised score, log-probability, token list)``, best first."""

    tokens: Tensor
    scores: Tensor
    hypotheses: list[list[tuple[float, float, list[int]]]]


def check_beam(beam: int, alpha: float) -> None:
    if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam must be an int >= 1 (hypotheses kept per sentence), got {beam!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) \
            or alpha < 0:
        raise ValueError(f"alpha (length normalisation) must be a number >= 0, got {alpha!r}")


def beam_search(stepper: Stepper, scores: Tensor, state: Any, *, beam: int, max_len: int, eos: int,
                pad: int | None = None, alpha: float = 0.6, banned: tuple[int, ...] = ()) -> BeamResult:
    """Beam search from the first distribution ``scores`` ``(B, V)`` and ``state`` (what the
    stepper's ``prime`` returned). ``banned`` tokens are never chosen."""
    check_beam(beam, alpha)
    check_length("max_len", max_len)
    B, V = scores.shape
    K, dev = beam, scores.device
    pad = eos if pad is None else pad
    hyps: list[list[tuple[float, float, list[int]]]] = [[] for _ in range(B)]
    rows = torch.arange(B, device=dev)                        # the rows still searching
    # K copies of each row; only the first is live at the start (the others would repeat it)
    expand = rows.repeat_interleave(K)
    state = stepper.reorder(state, expand)
    logp = scores.index_select(0, expand)                    # (B*K, V)
    dtype = torch.promote_types(scores.dtype, torch.float32)  # half-precision scores add up in float32
    beam_scores = torch.full((B, K), -math.inf, dtype=dtype, device=dev)
    beam_scores[:, 0] = 0
    seqs = torch.empty(B, K, 0, dtype=torch.long, device=dev)
    width = min(2 * K, K * V)
    for t in range(max_len):
        n = rows.numel()
        logp = torch.log_softmax(logp.to(dtype), -1)
        if banned:
            logp[:, list(banned)] = -math.inf
        cand = (beam_scores.unsqueeze(-1) + logp.view(n, K, V)).view(n, K * V)
        top, idx = cand.topk(width, dim=-1)                   # (n, 2K), best first
        origin, token = idx // V, idx % V
        rank = torch.arange(width, device=dev).expand(n, width)
        ends = (token == eos) & torch.isfinite(top)
        # finished: an eos among the first K; the live beams: the first K candidates not ending
        finished = (ends & (rank < K)).nonzero().tolist()
        for r, j in finished:
            b, o = int(rows[r]), int(origin[r, j])
            toks = seqs[r, o].tolist() + [eos]
            logprob = float(top[r, j])
            hyps[b].append((logprob / float(length_penalty(len(toks), alpha)), logprob, toks))
        keep = (ends.long() * width + rank).argsort(dim=-1)[:, :K]       # non-ending first, in rank
        beam_scores = top.gather(1, keep)                                 # (n, K)
        origin, token = origin.gather(1, keep), token.gather(1, keep)
        seqs = torch.cat([seqs.gather(1, origin.unsqueeze(-1).expand(-1, -1, seqs.shape[-1])),
                          token.unsqueeze(-1)], -1)                      # (n, K, t+1)
        if token.eq(eos).any():   # only when fewer than K candidates could go on (tiny V)
            beam_scores = beam_scores.masked_fill(token == eos, -math.inf)
        done = torch.tensor([len(hyps[int(b)]) >= K for b in rows], device=dev)
        if t + 1 == max_len:
            break
        if bool(done.all()):
            rows = rows[:0]
            break
        alive = (~done).nonzero().squeeze(-1)              # finished rows leave the batch
        rows, beam_scores, seqs = rows[alive], beam_scores[alive], seqs[alive]
        origin, token = origin[alive], token[alive]
        state = stepper.reorder(state, (alive.unsqueeze(-1) * K + origin).view(-1))   # (n*K,)
        logp, state = stepper.step(token.view(-1), state)
    # rows that reached max_len: their live hypotheses finish unended
    for r, b in enumerate(rows.tolist()):
        if len(hyps[b]) >= K:
            continue
        for k in range(K):
            if math.isfinite(float(beam_scores[r, k])):
                toks = seqs[r, k].tolist()
                logprob = float(beam_scores[r, k])
                hyps[b].append((logprob / float(length_penalty(len(toks), alpha)), logprob, toks))
    for h in hyps:
        h.sort(key=lambda x: -x[0])
    T = max(len(h[0][2]) for h in hyps)
    tokens = torch.full((B, T), pad, dtype=torch.long, device=dev)
    for b, h in enumerate(hyps):
        tokens[b, :len(h[0][2])] = torch.tensor(h[0][2], dtype=torch.long)
    return BeamResult(tokens, torch.tensor([h[0][0] for h in hyps], dtype=torch.float64), hyps)
