"""Elman RNN cell.

    h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),    act = tanh or relu

(the textbook ``H_t = φ(X_t W_xh + H_{t-1} W_hh + b_h)`` with ``W_xh = W_ih^T``, ``W_hh = W_hh^T`` and
the bias split in two, as PyTorch stores it).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rnnkit.cells.base import Cell

NONLINEARITIES = ("tanh", "relu")
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


def elman_step(xp_t: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Tensor | None,
               activation: Callable[[Tensor], Tensor] = torch.tanh) -> Tensor:
    """The Elman step, the one definition every path uses (the cell, the regularisers, the Keras
    cell; rnnkit's C++ kernel is held to it by tests): ``xp_t`` ``(B, H)`` (``x_t W_ih^T + b_ih``),
    ``h`` ``(B, H)`` -> ``h_t`` ``(B, H)``. ``activation``: any element-wise function."""
    pre = torch.addmm(xp_t, h, weight_hh.t())  # (B, H)
    if bias_hh is not None:
        pre = pre + bias_hh
    return activation(pre)


class SimpleRNNCell(Cell):
    """Elman cell. Parameters (PyTorch layout): ``weight_ih (H, I)``, ``weight_hh (H, H)``,
    ``bias_ih (H,)``, ``bias_hh (H,)``. State ``(h,)`` with ``h (B, H)``."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", **kw: Any) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"SimpleRNNCell: nonlinearity must be one of {NONLINEARITIES}, "
                             f"got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, **kw)

    @property  # the base's class attribute, computed here from the nonlinearity
    def fused_mode(self) -> str:  # type: ignore[override]
        return "rnn_tanh" if self.nonlinearity == "tanh" else "rnn_relu"

    def step(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        h = elman_step(xp_t, state[0], self.weight_hh, self.bias_hh, ACTIVATIONS[self.nonlinearity])
        return h, (h,)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"
