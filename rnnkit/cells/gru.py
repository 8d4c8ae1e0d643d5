"""GRU cell (Cho et al. 2014), with both placements of the reset gate.

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    reset_after=True  (PyTorch, cuDNN, Keras default):  n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
    reset_after=False (the paper, Keras reset_after=False): n_t = tanh(W_in x_t + b_in + W_hn (r_t ⊙ h_{t-1}) + b_hn)
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}
"""
from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells.base import Cell


class GRUCell(Cell):
    """GRU cell. Parameters (PyTorch layout, gates ``r, z, n``): ``weight_ih (3H, I)``,
    ``weight_hh (3H, H)``, ``bias_ih (3H,)``, ``bias_hh (3H,)``. State ``(h,)``, ``h (B, H)``."""

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 reset_after: bool = True, **kw):
        if not isinstance(reset_after, bool):
            raise TypeError(f"GRUCell: reset_after must be a bool, got {reset_after!r}")
        self.reset_after = reset_after
        super().__init__(input_size, hidden_size, bias, **kw)

    @property
    def fused_mode(self) -> str | None:
        return "gru" if self.reset_after else None

    def step(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        (h,) = state
        H = self.hidden_size
        x_r, x_z, x_n = xp_t.chunk(3, 1)
        if self.reset_after:
            hp = h @ self.weight_hh.t()  # (B, 3H)
            if self.bias_hh is not None:
                hp = hp + self.bias_hh
            h_r, h_z, h_n = hp.chunk(3, 1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
        else:
            w_rz, w_n = self.weight_hh[:2 * H], self.weight_hh[2 * H:]
            hp = h @ w_rz.t()  # (B, 2H)
            b_rz = b_n = None
            if self.bias_hh is not None:
                b_rz, b_n = self.bias_hh[:2 * H], self.bias_hh[2 * H:]
                hp = hp + b_rz
            h_r, h_z = hp.chunk(2, 1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            hn = (r * h) @ w_n.t()
            if b_n is not None:
                hn = hn + b_n
            n = torch.tanh(x_n + hn)
        h = n + z * (h - n)  # = (1 - z) n + z h
        return h, (h,)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.reset_after else ", reset_after=False")
