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

from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.cells.base import Cell
from rnnkit.cells.init import SCHEMES


# ``torch.where`` and every op with a boolean tensor are several times slower on the CPU than plain
# arithmetic (90 us against 4 us on a (32, 512) tile), and these run once per step: g and g' are
# written with clamp, relu and sigmoid instead, exactly equal to the case-by-case definitions.
def g_and_slope(v: Tensor) -> tuple[Tensor, Tensor]:
    """``g(v)`` and its derivative ``g'(v)``: 1 for ``v >= 0``, ``σ(v)(1 - σ(v))`` below."""
    s = torch.sigmoid(v.clamp(max=0))  # σ(0) = 1/2 exactly, so s + relu(v) is g exactly
    # tiny is a power of 2, so clamp(v, -tiny, 0) / tiny is exactly -1 or 0 outside (-tiny, 0)
    # (subnormal numbers in fp32 and bf16; in fp16 |v| < 6e-5 blends the two slopes)
    tiny = torch.finfo(v.dtype).tiny
    step = v.clamp(-tiny, 0).mul_(1 / tiny).add_(1)  # 1 for v >= 0, 0 for v <= -tiny
    slope = s - s * s
    return s + torch.relu(v), torch.addcmul(slope, step, 1 - slope)


class _G(torch.autograd.Function):
    """``g`` with the derivative of its case-by-case definition (``g'(0) = 1``), which autograd
    through clamp/relu/sigmoid would not give at exactly 0. The backward is made of differentiable
    operations, so second derivatives (``create_graph=True``) are exact too."""

    @staticmethod
    def forward(ctx: Any, v: Tensor) -> Tensor:
        ctx.save_for_backward(v)
        return torch.sigmoid(v.clamp(max=0)) + torch.relu(v)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (v,) = ctx.saved_tensors
        return grad * g_and_slope(v)[1]


def g(v: Tensor) -> Tensor:
    """The paper's positive activation: ``v + 1/2`` for ``v >= 0``, ``σ(v)`` below (continuous)."""
    if torch.is_grad_enabled() and v.requires_grad:
        # torch's Function.apply is unannotated; it returns what forward does
        return cast(Tensor, _G.apply(v))  # type: ignore[no-untyped-call]
    return torch.sigmoid(v.clamp(max=0)) + torch.relu(v)


def log_g(v: Tensor) -> Tensor:
    """``log(g(v))`` without forming ``g``: ``log(v + 1/2)`` or ``-softplus(-v)``."""
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


def mingru_step(xp_t: Tensor, h: Tensor) -> Tensor:
    """The minGRU step, the one definition (the cell; the scans hold to it by tests; the C++ scan's
    backward recomputes with it when the graph is kept): ``xp_t`` ``(B, 2H)`` -> ``h_t`` ``(B, H)``."""
    k, v = xp_t.chunk(2, -1)
    return torch.lerp(h, g(v), torch.sigmoid(k))  # (1 - z) h + z h~


def minlstm_step(xp_t: Tensor, h: Tensor) -> Tensor:
    """The minLSTM step, as `mingru_step`: ``xp_t`` ``(B, 3H)`` -> ``h_t`` ``(B, H)``."""
    kf, ki, v = xp_t.chunk(3, -1)
    return torch.lerp(h, g(v), torch.sigmoid(MinLSTMCell._log_ratio(kf, ki)))  # f' h + i' h~


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

    def scan_coefficients_backward(self, xp: Tensor, a: Tensor, g: Tensor, h_prev: Tensor,
                                   d_xp: Tensor) -> None:
        """The derivative of `scan_coefficients`, for the engine's hand-written scan: given ``a``
        (kept from the forward pass), ``g = dL/dh_t`` and ``h_{t-1}`` (so ``dL/da = g h_{t-1}``,
        ``dL/db = g``), write ``dL/dxp`` into ``d_xp`` ``(..., G*H)``."""
        raise NotImplementedError


class MinGRUCell(_MinCell):
    """minGRU cell (Feng et al. 2024). Parameters: ``weight_ih (2H, I)``, ``bias_ih (2H,)``,
    gate blocks ``z, h``. State ``(h (B, H),)``."""

    gates = 2

    def step(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        h = mingru_step(xp_t, state[0])
        return h, (h,)

    def scan_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        k, v = xp.chunk(2, -1)
        z = torch.sigmoid(k)
        return 1 - z, z * g(v)

    def log_scan_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        k, v = xp.chunk(2, -1)
        return -F.softplus(k), -F.softplus(-k) + log_g(v)  # log(1 - z), log z + log h~

    def scan_coefficients_backward(self, xp: Tensor, a: Tensor, g: Tensor, h_prev: Tensor,
                                   d_xp: Tensor) -> None:
        v = xp.chunk(2, -1)[1]
        z = 1 - a
        gv, slope = g_and_slope(v)
        gz = g * z
        dk, dv = d_xp.chunk(2, -1)
        torch.mul(gz * a, gv - h_prev, out=dk)  # a = σ(-k): da/dk = -a z; b = z g(v): db/dk = a z g(v)
        torch.mul(gz, slope, out=dv)


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
        h = minlstm_step(xp_t, state[0])
        return h, (h,)

    def scan_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        kf, ki, v = xp.chunk(3, -1)
        d = self._log_ratio(kf, ki)
        return torch.sigmoid(-d), torch.sigmoid(d) * g(v)

    def log_scan_coefficients(self, xp: Tensor) -> tuple[Tensor, Tensor]:
        kf, ki, v = xp.chunk(3, -1)
        d = self._log_ratio(kf, ki)
        return -F.softplus(d), -F.softplus(-d) + log_g(v)

    def scan_coefficients_backward(self, xp: Tensor, a: Tensor, g: Tensor, h_prev: Tensor,
                                   d_xp: Tensor) -> None:
        kf, ki, v = xp.chunk(3, -1)
        i = 1 - a  # i' (a is f')
        gv, slope = g_and_slope(v)
        gi = g * i
        dd = gi * a * (gv - h_prev)  # as minGRU's dk, with i' in z's place
        dkf, dki, dv = d_xp.chunk(3, -1)
        torch.mul(dd, torch.sigmoid(-kf), out=dkf).neg_()  # d = softplus(-kf) - softplus(-ki)
        torch.mul(dd, torch.sigmoid(-ki), out=dki)
        torch.mul(gi, slope, out=dv)
