"""minGRU and minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?").

Their gates read the input only, so the recurrence is linear in the state and a whole sequence can be
computed by a scan (`rnnkit.core.scan`) instead of a loop of matrix products:

    minGRU:   z_t = σ(W_z x_t + b_z)                 h~_t = g(W_h x_t + b_h)
              h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h~_t
    minLSTM:  f_t = σ(W_f x_t + b_f)   i_t = σ(W_i x_t + b_i)   h~_t = g(W_h x_t + b_h)
              f'_t, i'_t = f_t / (f_t + i_t), i_t / (f_t + i_t)
              h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h~_t

with the paper's ``g(v) = v + 1/2 if v >= 0 else σ(v)``, which keeps ``h~`` positive so the scan
can also run in log space (section 3 and appendix B of the paper). Both are ``h_t = a_t ⊙ h_{t-1} +
b_t``; `scan_coefficients` gives ``(a, b)`` and `log_scan_coefficients` their logarithms, computed
as the paper does (softplus forms, so nothing under- or overflows for large pre-activations).

Parameters: ``weight_ih (G*H, I)`` and ``bias_ih (G*H,)`` with gate blocks ``z, h`` (minGRU, G=2) or
``f, i, h`` (minLSTM, G=3); there is no recurrent matrix. Initialisation: the paper's code uses
``torch.nn.Linear``, so ``init="uniform"`` draws weights and biases from ``U(-1/sqrt(I), 1/sqrt(I))``
(``nn.Linear``'s default); ``init="orthogonal"`` gives Xavier-uniform weights and zero biases.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.cells.base import Cell
from rnnkit.cells.init import SCHEMES


def g(v: Tensor) -> Tensor:
    """The paper's positive activation: ``v + 1/2`` for ``v >= 0``, ``σ(v)`` below (continuous)."""
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def log_g(v: Tensor) -> Tensor:
    """``log(g(v))`` without forming ``g``: ``log(v + 1/2)`` or ``-softplus(-v)``."""
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


class _MinCell(Cell):
    """Shared parts: no recurrent weights, ``nn.Linear`` initialisation, the step from the
    coefficients. Subclasses define `scan_coefficients` and `log_scan_coefficients`."""

    #: the engine may run this cell with a scan (h_t = a_t ⊙ h_{t-1} + b_t)
    linear_recurrence = True

    def make_extra_parameters(self) -> None:
        self.register_parameter("weight_hh", None)
        self.register_parameter("bias_hh", None)

    def reset_parameters(self) -> None:
        owner = type(self).__name__
        if self.init not in SCHEMES:
            raise ValueError(f"{owner}: init must be one of {SCHEMES}, got {self.init!r}")
        if self.forget_bias is not None:
            raise ValueError(f"{owner}: forget_bias applies to LSTM cells only, "
                             f"got forget_bias={self.forget_bias!r}")
        bound = 1.0 / self.input_size ** 0.5
        with torch.no_grad():
            if self.init == "uniform":
                self.weight_ih.uniform_(-bound, bound)
            else:
                nn.init.xavier_uniform_(self.weight_ih)
            if self.bias_ih is not None:
                if self.init == "uniform":
                    self.bias_ih.uniform_(-bound, bound)
                else:
                    self.bias_ih.zero_()

    def scan_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """``(..., G*H) -> (a, b)``, each ``(..., H)``: ``h_t = a_t ⊙ h_{t-1} + b_t``."""
        raise NotImplementedError

    def log_scan_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        """``(..., G*H) -> (log a, log b)``, each ``(..., H)`` (``b > 0`` thanks to ``g``)."""
        raise NotImplementedError


class MinGRUCell(_MinCell):
    """minGRU cell (Feng et al. 2024). Parameters: ``weight_ih (2H, I)``, ``bias_ih (2H,)``,
    gate blocks ``z, h``. State ``(h (B, H),)``."""

    gates = 2

    def step(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        (h,) = state
        k, v = xp_t.chunk(2, -1)
        h = torch.lerp(h, g(v), torch.sigmoid(k))  # (1 - z) h + z h~
        return h, (h,)

    def scan_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        k, v = xp.chunk(2, -1)
        return torch.sigmoid(-k), torch.sigmoid(k) * g(v)

    def log_scan_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        k, v = xp.chunk(2, -1)
        return -F.softplus(k), -F.softplus(-k) + log_g(v)  # log(1 - z), log z + log h~


class MinLSTMCell(_MinCell):
    """minLSTM cell (Feng et al. 2024), with the normalised gates ``f', i'`` (the paper's
    length-independent form). Parameters: ``weight_ih (3H, I)``, ``bias_ih (3H,)``, gate blocks
    ``f, i, h``. State ``(h (B, H),)`` (no cell state: the gates never look at it)."""

    gates = 3

    @staticmethod
    def _log_ratio(kf: Tensor, ki: Tensor) -> Tensor:
        """``log(i / f)`` from the pre-activations: ``f' = σ(-d)``, ``i' = σ(d)``."""
        return F.softplus(-kf) - F.softplus(-ki)

    def step(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        (h,) = state
        kf, ki, v = xp_t.chunk(3, -1)
        h = torch.lerp(h, g(v), torch.sigmoid(self._log_ratio(kf, ki)))  # f' h + i' h~
        return h, (h,)

    def scan_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        kf, ki, v = xp.chunk(3, -1)
        d = self._log_ratio(kf, ki)
        return torch.sigmoid(-d), torch.sigmoid(d) * g(v)

    def log_scan_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        kf, ki, v = xp.chunk(3, -1)
        d = self._log_ratio(kf, ki)
        return -F.softplus(d), -F.softplus(-d) + log_g(v)
