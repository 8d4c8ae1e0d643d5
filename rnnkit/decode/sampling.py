"""Sampling from a model's next-token distribution -- temperature, top-k, top-p (nucleus), greedy --
and THE token-by-token loop every sampler in rnnkit runs (the language model's ``generate``, the fast
`rnnkit.decode.Sampler`, the translator's greedy decoding).

Model-agnostic: :func:`sample_tokens` drives any ``step(tokens (B,), state) -> (scores (B, V), state)``
function (`rnnkit.decode.stepper`), one token at a time, and yields each new token as it is drawn,
so callers can stream text; :func:`sample` collects them.

- ``temperature``: scores are divided by it; ``0`` means greedy (argmax; top-k/top-p do not matter);
  below 1 sharpens the distribution, above 1 flattens it.
- ``top_k``: keep the ``k`` most likely tokens. ``top_p``: keep the smallest set of most likely tokens
  whose probabilities add up to at least ``p`` (Holtzman et al. 2020; the most likely is always kept).
  Both may be given: top-k first, then top-p among those.
- ``eos``: a row that draws it has ended; its later tokens are ``pad`` and the loop stops when every
  row has ended (without ``eos`` it runs ``max_len`` steps).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

StepFn = Callable[[Tensor, Any], tuple[Tensor, Any]]


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


def check_length(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1 (tokens to generate), got {value!r}")


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


def sample_tokens(step: StepFn, scores: Tensor, state: Any, length: int, *, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None,
                  generator: torch.Generator | None = None, banned: tuple[int, ...] = (),
                  eos: int | None = None, pad: int | None = None) -> Iterator[Tensor]:
    """Yield up to ``length`` tokens ``(B,)``, one at a time: the one sampling loop.

    ``scores`` ``(B, V)`` is the distribution of the first token (what the stepper's ``prime``
    returned) and ``state`` the state there; each drawn token is fed back through ``step``.
    ``banned`` token ids are never drawn (e.g. ``<unk>``, which a model never saw as a target).
    With ``eos``, rows that have drawn it yield ``pad`` (default: ``eos``) and the loop ends once
    every row has ended; without it, exactly ``length`` tokens come.
    """
    check_sampling(temperature, top_k, top_p)
    check_length("length", length)
    ended = None
    for i in range(length):
        if banned:
            scores = scores.clone()
            scores[:, list(banned)] = -math.inf
        token = sample_next(scores, temperature, top_k, top_p, generator)
        if eos is not None:
            if ended is None:
                ended = torch.zeros_like(token, dtype=torch.bool)
            token = token.masked_fill(ended, eos if pad is None else pad)
            ended = ended | (token == eos)
        yield token
        if i + 1 == length or (ended is not None and bool(ended.all())):
            return
        scores, state = step(token, state)


def sample(step: StepFn, scores: Tensor, state: Any, length: int, **options) -> Tensor:
    """:func:`sample_tokens`'s tokens as one ``(B, T)`` int64 tensor (``T <= length``)."""
    return torch.stack(list(sample_tokens(step, scores, state, length, **options)), 1)


def greedy(step: StepFn, scores: Tensor, state: Any, length: int, *, eos: int | None = None,
           pad: int | None = None, banned: tuple[int, ...] = ()) -> Tensor:
    """The most likely token at every step (temperature 0): ``(B, T)`` int64, ``T <= length``."""
    return sample(step, scores, state, length, temperature=0, eos=eos, pad=pad, banned=banned)
