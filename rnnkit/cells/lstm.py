"""LSTM cell (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

    i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
    f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
    o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    h_t = o_t ⊙ tanh(c_t)                 (and, with proj_size P > 0, h_t = W_hr (o_t ⊙ tanh(c_t)))
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.cells.base import Cell


def lstm_pointwise(gates: Tensor, c: Tensor, activation: Callable[[Tensor], Tensor] = torch.tanh,
                   recurrent_activation: Callable[[Tensor], Tensor] = torch.sigmoid) -> tuple[Tensor, Tensor]:
    """The element-wise part of the LSTM step: pre-activations ``gates`` ``(B, 4H)`` (blocks
    ``i, f, g, o``) and ``c_{t-1}`` ``(B, H)`` -> ``(o ⊙ act(c_t), c_t)`` (before any projection).
    ``activation`` / ``recurrent_activation``: Keras's names for tanh and σ above."""
    i, f, g, o = gates.chunk(4, 1)
    c = recurrent_activation(f) * c + recurrent_activation(i) * activation(g)
    return recurrent_activation(o) * activation(c), c


def lstm_step(xp_t: Tensor, h: Tensor, c: Tensor, weight_hh: Tensor, bias_hh: Tensor | None,
              weight_hr: Tensor | None = None, activation: Callable[[Tensor], Tensor] = torch.tanh,
              recurrent_activation: Callable[[Tensor], Tensor] = torch.sigmoid) -> tuple[Tensor, Tensor]:
    """The LSTM step, the one definition every path uses (the cell, the regularisers, the Keras cell,
    the sampler's element-wise part; PyTorch's fused kernel is held to it by tests): ``xp_t``
    ``(B, 4H)``, ``h`` ``(B, H_out)``, ``c`` ``(B, H)`` -> ``(h_t (B, H_out), c_t (B, H))``."""
    gates = torch.addmm(xp_t, h, weight_hh.t())  # (B, 4H)
    if bias_hh is not None:
        gates = gates + bias_hh
    h, c = lstm_pointwise(gates, c, activation, recurrent_activation)
    if weight_hr is not None:
        h = h @ weight_hr.t()  # (B, P)
    return h, c


class LSTMCell(Cell):
    """LSTM cell. Parameters (PyTorch layout, gates ``i, f, g, o``): ``weight_ih (4H, I)``,
    ``weight_hh (4H, H_out)``, ``bias_ih (4H,)``, ``bias_hh (4H,)``, and with ``proj_size=P > 0``
    ``weight_hr (P, H)``. ``H_out = P or H``. State ``(h (B, H_out), c (B, H))``.

    ``forget_bias``: if given, the forget-gate bias is set to it after initialisation (Keras's
    ``unit_forget_bias=True`` is ``forget_bias=1.0``)."""

    gates = 4
    fused_mode = "lstm"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, proj_size: int = 0,
                 **kw: Any) -> None:
        if isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size < 0:
            raise ValueError(f"LSTMCell: proj_size must be an int >= 0, got {proj_size!r}")
        if proj_size and proj_size >= hidden_size:
            raise ValueError(f"LSTMCell: proj_size must be smaller than hidden_size={hidden_size}, "
                             f"got {proj_size}")
        self.proj_size = proj_size
        super().__init__(input_size, hidden_size, bias, **kw)

    def make_extra_parameters(self) -> None:
        if self.proj_size:
            self.weight_hr = nn.Parameter(torch.empty(self.proj_size, self.hidden_size))

    @property
    def recurrent_input_size(self) -> int:
        return self.proj_size or self.hidden_size

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    @property
    def state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((self.output_size,), (self.hidden_size,))

    def step(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        h, c = lstm_step(xp_t, state[0], state[1], self.weight_hh, self.bias_hh,
                         self.weight_hr if self.proj_size else None)
        return h, (h, c)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (f", proj_size={self.proj_size}" if self.proj_size else "")

