"""Numeric precision of the recurrent kernels: ``"fp32"`` (the parameters' own dtype) or ``"bf16"``.

``"bf16"`` runs the matrix products with bfloat16 inputs and fp32 accumulation while states,
element-wise math, parameters and gradients stay fp32 — the rule of
``torch.autocast("cpu", torch.bfloat16)``. On CPUs with AVX-512-BF16 or AMX the products run 2–6×
faster than in fp32; the price is ~3 significant digits in each product's inputs, which training
tolerates (the language model's validation loss moves by well under 1 %, see the benchmark).

- `RecurrentStack(..., precision="bf16")` (and so ``rnnkit.nn.LSTM/GRU/RNN``) runs its fused
  kernels so; the outputs keep the parameters' dtype.
- `autocast(precision)` is the context for a whole model (embedding, stack, head): with ``"bf16"``
  it is ``torch.autocast("cpu", torch.bfloat16)``, inside which the stacks run in bf16 too; with
  ``"fp32"`` it does nothing. Loss functions run in fp32 under it (autocast's rule).
"""
from __future__ import annotations

from typing import Any

import contextlib

import torch

PRECISIONS = ("fp32", "bf16")


def check_precision(owner: str, precision: str) -> str:
    """``precision`` if it is one of `PRECISIONS`, else a ValueError naming it."""
    if precision not in PRECISIONS:
        raise ValueError(f"{owner}: precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def autocast(precision: str = "bf16", device_type: str = "cpu") -> contextlib.AbstractContextManager[Any]:
    """A context running the matrix products of everything inside in ``precision``."""
    check_precision("autocast", precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16)


def effective(precision: str, dtype: torch.dtype) -> str:
    """The precision a kernel runs in: ``precision``, or ``"bf16"`` inside a CPU bf16 autocast;
    always ``"fp32"`` for float64 parameters (a user asking for float64 wants float64)."""
    if dtype != torch.float32:
        return "fp32"
    if precision == "bf16":
        return "bf16"
    if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16:
        return "bf16"
    return "fp32"
