"""A linear-chain conditional random field over per-token scores, for taggers (`--crf`).

A tag sequence ``y_1..y_n`` of a sentence with emission scores ``e`` (the tagger's logits) scores

    s(y) = start[y_1] + sum_t e_t[y_t] + sum_{t>1} trans[y_{t-1}, y_t] + end[y_n]

and ``p(y) = exp(s(y)) / Z`` with ``Z`` the sum of ``exp(s)`` over all ``K^n`` sequences, which the
forward algorithm computes in ``O(n K^2)``: ``alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + trans[i, j])
+ e_t[j]``. Viterbi decoding is the same recursion with ``max`` instead of ``logsumexp``, plus back
pointers. Sentences of a batch have their own lengths: past its end a sentence's ``alpha`` is carried
unchanged, so padding never enters its score.

Shapes: B batch, T time (words), K tags.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class CRF(nn.Module):
    """Transition scores ``trans (K, K)`` (from row tag to column tag), ``start (K,)``, ``end (K,)``."""

    def __init__(self, num_tags: int):
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"CRF: num_tags must be >= 1, got {num_tags}")
        self.num_tags = num_tags
        # small random starts: zeros would make every path tie until the first update
        self.trans = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))

    def _check(self, emissions: Tensor, mask: Tensor) -> None:
        if emissions.dim() != 3 or emissions.shape[2] != self.num_tags:
            raise ValueError(f"CRF: expected emissions of shape (B, T, K={self.num_tags}), got "
                             f"{tuple(emissions.shape)}")
        if mask.shape != emissions.shape[:2]:
            raise ValueError(f"CRF: expected a mask of shape (B, T) = {tuple(emissions.shape[:2])}, got "
                             f"{tuple(mask.shape)}")
        if not bool(mask[:, 0].all()):
            raise ValueError("CRF: every sequence needs at least one word (mask[:, 0] all true)")

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """``s(tags)`` per sentence ``(B,)``; ``tags`` ``(B, T)`` (any value past the end)."""
        B, T, _ = emissions.shape
        m = mask.to(emissions.dtype)
        tags = tags.masked_fill(~mask, 0)
        e = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)                 # (B, T)
        s = self.start[tags[:, 0]] + (e * m).sum(1)
        if T > 1:
            s = s + (self.trans[tags[:, :-1], tags[:, 1:]] * m[:, 1:]).sum(1)
        last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)      # (B,)
        return s + self.end[last]

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """``log Z`` per sentence ``(B,)`` by the forward algorithm."""
        alpha = self.start + emissions[:, 0]                                  # (B, K)
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + self.trans, dim=1) + emissions[:, t]  # (B, K)
            alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def log_likelihood(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """``log p(tags)`` per sentence ``(B,)``; emissions ``(B, T, K)``, tags ``(B, T)`` long,
        mask ``(B, T)`` bool (true on real words, a prefix of each row)."""
        self._check(emissions, mask)
        return self.score(emissions, tags, mask) - self.log_partition(emissions, mask)

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor) -> list[list[int]]:
        """The best tag sequence of each sentence (Viterbi), each as long as its mask."""
        self._check(emissions, mask)
        B, T, K = emissions.shape
        score = self.start + emissions[:, 0]                                  # (B, K)
        back = []
        for t in range(1, T):
            best, arg = (score.unsqueeze(2) + self.trans).max(dim=1)          # (B, K) each
            m = mask[:, t].unsqueeze(1)
            score = torch.where(m, best + emissions[:, t], score)
            # past a sentence's end its back pointer is the identity, so the path walks through
            back.append(torch.where(m, arg, torch.arange(K, device=arg.device).expand(B, K)))
        last = (score + self.end).argmax(1)                                   # (B,)
        path = [last]
        for arg in reversed(back):
            last = arg.gather(1, last.unsqueeze(1)).squeeze(1)
            path.append(last)
        tags = torch.stack(path[::-1], dim=1).tolist()                        # (B, T)
        lengths = mask.sum(1).tolist()
        return [row[:n] for row, n in zip(tags, lengths)]
