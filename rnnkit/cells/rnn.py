"""Elman RNN cell.

    h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),    act = tanh or relu

(the textbook ``H_t = φ(X_t W_xh + H_{t-1} W_hh + b_h)`` with ``W_xh = W_ih^T``, ``W_hh = W_hh^T`` and
the bias split in two, as PyTorch stores it).
"""
from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells.base import Cell

NONLINEARITIES = ("tanh", "relu")


class SimpleRNNCell(Cell):
    """Elman cell. Parameters (PyTorch layout): ``weight_ih (H, I)``, ``weight_hh (H, H)``,
    ``bias_ih (H,)``, ``bias_hh (H,)``. State ``(h,)`` with ``h (B, H)``."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", **kw):
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"SimpleRNNCell: nonlinearity must be one of {NONLINEARITIES}, "
                             f"got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, **kw)

    @property
    def fused_mode(self) -> str:
        return "rnn_tanh" if self.nonlinearity == "tanh" else "rnn_relu"

    def step(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        (h,) = state
        pre = torch.addmm(xp_t, h, self.weight_hh.t())  # (B, H)
        if self.bias_hh is not None:
            pre = pre + self.bias_hh
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return h, (h,)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"
