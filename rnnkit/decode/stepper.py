"""The stepping contract every decoder in `rnnkit.decode` works on.

A model that generates one token at a time is a *stepper*:

- ``prime(...) -> (log_probs (B, V), state)``: run what the generation is conditioned on -- a prompt
  (a language model) or a source sentence (an encoder-decoder) -- and return the distribution of the
  first token and the state there. What ``prime`` takes differs from model to model; what it returns
  does not.
- ``step(tokens (B,), state) -> (log_probs (B, V), state)``: feed one chosen token per row; the
  distribution of the next one and the new state. It must not change the ``state`` it is given
  (beam search keeps several branches of one state).
- ``reorder(state, index (B',)) -> state``: the state of the rows ``index`` (int64), in that order:
  beam search copies and drops branches with it.

Scores may be unnormalised log-probabilities (logits): sampling and greedy decoding do not change
when a row's scores move by a constant, and beam search normalises them itself (``log_softmax`` is
the identity on log-probabilities). ``-inf`` marks a token that can never be chosen.

The state may be any tuple/list/dict of tensors (or ``None``); `reorder_rows` reorders such a
structure along a batch dimension, which is all most steppers need.

Shapes: B batch (rows), V vocabulary.
"""
from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor


class Stepper(Protocol):
    """What `rnnkit.decode.beam_search` needs (sampling needs only ``step``)."""

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        ...

    def reorder(self, state: Any, index: Tensor) -> Any:
        ...


def reorder_rows(state: Any, index: Tensor, dim: int = 0) -> Any:
    """``state`` with every tensor's rows along ``dim`` picked by ``index`` ``(B',)``; tuples, lists
    and dicts are walked, ``None`` and non-tensors are kept as they are."""
    if isinstance(state, Tensor):
        return state.index_select(dim, index)
    if isinstance(state, tuple):
        return tuple(reorder_rows(s, index, dim) for s in state)
    if isinstance(state, list):
        return [reorder_rows(s, index, dim) for s in state]
    if isinstance(state, dict):
        return {k: reorder_rows(v, index, dim) for k, v in state.items()}
    return state
