"""GRU cell (Cho et al. 2014), with both placements of the reset gate.

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    reset_after=True  (PyTorch, cuDNN, Keras default):
        n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
    reset_after=False (the paper, Keras reset_after=False):
        n_t = tanh(W_in x_t + b_in + W_hn (r_t ⊙ h_{t-1}) + b_hn)
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rnnkit.cells.base import Cell


def gru_pointwise(rz_pre: Tensor, n_in: Tensor, n_rec: Tensor | None, h: Tensor,
                  activation: Callable[[Tensor], Tensor] = torch.tanh,
                  recurrent_activation: Callable[[Tensor], Tensor] = torch.sigmoid) -> Tensor:
    """The element-wise end of the GRU step: ``rz_pre`` ``(B, 2H)`` the summed input and recurrent
    pre-activations of ``r, z``; the candidate's input part ``n_in`` and recurrent part ``n_rec``
    ``(B, H)`` (``W_hn h + b_hn`` with the reset gate after the product, which ``r`` then scales;
    ``None`` with ``r`` already inside it, ``n_in`` being then the whole pre-activation);
    ``h = h_{t-1}``. Returns ``h_t = n + z ⊙ (h - n)`` ``(B, H)``."""
    r, z = (recurrent_activation(v) for v in rz_pre.chunk(2, 1))  # apart: Keras's activations
    n = activation(n_in if n_rec is None else n_in + r * n_rec)
    return n + z * (h - n)  # = (1 - z) n + z h


def gru_step(xp_t: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Tensor | None, *,
             reset_after: bool = True, h_rec: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] = torch.tanh,
             recurrent_activation: Callable[[Tensor], Tensor] = torch.sigmoid) -> Tensor:
    """The GRU step, the one definition every path uses (the cell, the regularisers, the Keras cell,
    the sampler's element-wise part; rnnkit's C++ kernel and PyTorch's are held to it by tests):
    ``xp_t`` ``(B, 3H)`` (``x_t W_ih^T + b_ih``, gates ``r, z, n``), ``h`` ``(B, H)`` -> ``h_t``.

    ``h_rec``: what enters the recurrent matrix products in place of ``h`` (recurrent dropout's
    masked state); the interpolation keeps ``h``."""
    H = h.shape[-1]
    hr = h if h_rec is None else h_rec
    if reset_after:
        hp = hr @ weight_hh.t()  # (B, 3H)
        if bias_hh is not None:
            hp = hp + bias_hh
        return gru_pointwise(xp_t[:, :2 * H] + hp[:, :2 * H], xp_t[:, 2 * H:], hp[:, 2 * H:], h,
                             activation, recurrent_activation)
    hp = hr @ weight_hh[:2 * H].t()  # (B, 2H)
    if bias_hh is not None:
        hp = hp + bias_hh[:2 * H]
    rz_pre = xp_t[:, :2 * H] + hp
    r = recurrent_activation(rz_pre[:, :H])
    hn = (r * hr) @ weight_hh[2 * H:].t()  # the paper's placement: r before the product
    if bias_hh is not None:
        hn = hn + bias_hh[2 * H:]
    return gru_pointwise(rz_pre, xp_t[:, 2 * H:] + hn, None, h, activation, recurrent_activation)


class GRUCell(Cell):
    """GRU cell. Parameters (PyTorch layout, gates ``r, z, n``): ``weight_ih (3H, I)``,
    ``weight_hh (3H, H)``, ``bias_ih (3H,)``, ``bias_hh (3H,)``. State ``(h,)``, ``h (B, H)``."""

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 reset_after: bool = True, **kw: Any) -> None:
        if not isinstance(reset_after, bool):
            raise TypeError(f"GRUCell: reset_after must be a bool, got {reset_after!r}")
        self.reset_after = reset_after
        super().__init__(input_size, hidden_size, bias, **kw)

    @property  # the base's class attribute, computed here from reset_after
    def fused_mode(self) -> str | None:  # type: ignore[override]
        return "gru" if self.reset_after else None

    def step(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        h = gru_step(xp_t, state[0], self.weight_hh, self.bias_hh, reset_after=self.reset_after)
        return h, (h,)

    def step_with_recurrent_input(self, xp_t: Tensor, state: tuple[Tensor, ...],
                                  h_rec: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The step with ``h_rec`` in place of ``h_{t-1}`` inside the recurrent matrix products
        only (the interpolation keeps ``h_{t-1}``): the hook recurrent dropout uses."""
        h = gru_step(xp_t, state[0], self.weight_hh, self.bias_hh, reset_after=self.reset_after,
                     h_rec=h_rec)
        return h, (h,)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.reset_after else ", reset_after=False")
