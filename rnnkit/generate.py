"""Sampling from a model's next-token distribution: temperature, top-k, top-p (nucleus), greedy.

Model-agnostic: :func:`sample_tokens` drives any ``step(ids (B,), state) -> (logits (B, V), state)``
function, one token at a time, and yields each new token as it is drawn, so callers can stream text.

- ``temperature``: logits are divided by it; ``0`` means greedy (argmax; top-k/top-p do not matter);
  below 1 sharpens the distribution, above 1 flattens it.
- ``top_k``: keep the ``k`` most likely tokens. ``top_p``: keep the smallest set of most likely tokens
  whose probabilities add up to at least ``p`` (Holtzman et al. 2020; the most likely is always kept).
  Both may be given: top-k first, then top-p among those.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """``ValueError``/``TypeError`` naming the argument for a value sampling cannot use."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number >= 0, got {temperature!r}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int):
            raise TypeError(f"top_k must be an int >= 1 or None, got {top_k!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1 (or None for no limit), got {top_k}")
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)):
            raise TypeError(f"top_p must be a number in (0, 1] or None, got {top_p!r}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (or None for no limit), got {top_p!r}")


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """``logits`` ``(B, V)`` with every token outside the top-k / top-p set at ``-inf``."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]            # (B, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs                            # mass of the tokens before each
        drop_sorted = before >= top_p                                # the first token is always kept
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, -math.inf)
    return logits


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """One token per row of ``logits`` ``(B, V)``: ``(B,)`` int64."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def sample_tokens(step: Callable[[Tensor, object], tuple[Tensor, object]], logits: Tensor, state,
                  length: int, *, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, generator: torch.Generator | None = None,
                  banned: tuple[int, ...] = ()) -> Iterator[Tensor]:
    """Yield ``length`` tokens ``(B,)``, one at a time.

    ``logits`` ``(B, V)`` is the distribution of the first token (the model's output after the
    prompt) and ``state`` the model's state there; each drawn token is fed back through ``step``.
    ``banned`` token ids are never drawn (e.g. ``<unk>``, which the model never saw as a target).
    """
    check_sampling(temperature, top_k, top_p)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be an int >= 1 (tokens to generate), got {length!r}")
    for i in range(length):
        if banned:
            logits = logits.clone()
            logits[:, list(banned)] = -math.inf
        token = sample_next(logits, temperature, top_k, top_p, generator)
        yield token
        if i + 1 < length:
            logits, state = step(token, state)
