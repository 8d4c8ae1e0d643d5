"""Independently recurrent neural network cell (Li, Li, Cook, Zhu & Gao 2018, "IndRNN").

    h_t = act(W_ih x_t + b + u ⊙ h_{t-1}),    act = relu (the paper's choice) or tanh

Each unit sees only its own past through one recurrent weight ``u_n`` (a vector, not a matrix), so
gradients through time scale as ``u_n^T`` times the activation's derivatives. The paper keeps them
bounded by constraining ``|u_n|`` — for relu, ``|u_n| <= 2^(1/T)`` lets a unit's state grow at most
2x over T steps — and initialises ``u`` from ``U(0, 1)`` (adding problem and sequential MNIST; for
long memory the last layer from ``U(2^(-1/T), 1)``, i.e. ``recurrent_init=(0.5 ** (1 / T), 1.0)``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.cells.base import Cell
from rnnkit.cells.init import SCHEMES

NONLINEARITIES = ("relu", "tanh")


class IndRNNCell(Cell):
    """IndRNN cell. Parameters: ``weight_ih (H, I)``, ``weight_hh (H,)`` (the recurrent vector
    ``u``), ``bias_ih (H,)`` (the paper's single bias ``b``). State ``(h (B, H),)``.

    ``recurrent_max_abs``: if given, the step uses ``u`` clipped to ``[-m, m]`` (the paper's
    constraint, e.g. ``2 ** (1 / T)`` for relu); gradients to ``u`` stop where it is clipped, and
    `constrain_` projects the stored weights after an optimiser step, as the authors' code does.
    ``recurrent_init``: ``(low, high)`` of the uniform draw of ``u`` (paper: ``(0, 1)``); input
    weights and bias follow the ``init`` scheme of `rnnkit.cells.Cell`."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "relu", *, recurrent_max_abs: float | None = None,
                 recurrent_init: tuple[float, float] = (0.0, 1.0), **kw: Any) -> None:
        owner = type(self).__name__
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"{owner}: nonlinearity must be one of {NONLINEARITIES}, "
                             f"got {nonlinearity!r}")
        if recurrent_max_abs is not None and (isinstance(recurrent_max_abs, bool) or not isinstance(
                recurrent_max_abs, (int, float)) or not recurrent_max_abs > 0):
            raise ValueError(f"{owner}: recurrent_max_abs must be a positive number or None, "
                             f"got {recurrent_max_abs!r}")
        if (not isinstance(recurrent_init, (tuple, list)) or len(recurrent_init) != 2
                or not all(isinstance(v, (int, float)) for v in recurrent_init)
                or not recurrent_init[0] <= recurrent_init[1]):
            raise ValueError(f"{owner}: recurrent_init must be a pair (low, high) with low <= high, "
                             f"got {recurrent_init!r}")
        self.nonlinearity = nonlinearity
        self.recurrent_max_abs = None if recurrent_max_abs is None else float(recurrent_max_abs)
        self.recurrent_init = (float(recurrent_init[0]), float(recurrent_init[1]))
        super().__init__(input_size, hidden_size, bias, **kw)

    def make_extra_parameters(self) -> None:
        self.weight_hh = nn.Parameter(torch.empty(self.hidden_size))  # u, one per unit
        self.register_parameter("bias_hh", None)

    def reset_parameters(self) -> None:
        """``u ~ U(recurrent_init)`` (the paper); ``weight_ih`` and ``bias_ih`` by ``init``:
        ``"uniform"`` is PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``, ``"orthogonal"`` Xavier-uniform and
        a zero bias (there is no recurrent matrix to make orthogonal)."""
        if self.forget_bias is not None:
            raise ValueError(f"{type(self).__name__}: forget_bias applies to LSTM cells only, "
                             f"got forget_bias={self.forget_bias!r}")
        if self.init not in SCHEMES:
            raise ValueError(f"{type(self).__name__}: init must be one of {SCHEMES}, got {self.init!r}")
        low, high = self.recurrent_init
        bound = 1.0 / self.hidden_size ** 0.5
        with torch.no_grad():
            if self.init == "uniform":
                self.weight_ih.uniform_(-bound, bound)
            else:
                nn.init.xavier_uniform_(self.weight_ih)
            if self.bias_ih is not None:
                self.bias_ih.uniform_(-bound, bound) if self.init == "uniform" else self.bias_ih.zero_()
            self.weight_hh.uniform_(low, high)
        self.constrain_()

    def constrain_(self) -> None:
        """Clip the stored ``u`` into ``[-recurrent_max_abs, recurrent_max_abs]`` in place (call
        after ``optimizer.step()``; a no-op without ``recurrent_max_abs``)."""
        if self.recurrent_max_abs is not None:
            with torch.no_grad():
                self.weight_hh.clamp_(-self.recurrent_max_abs, self.recurrent_max_abs)

    def recurrent_weight(self) -> Tensor:
        """``u`` as the step uses it: clipped when ``recurrent_max_abs`` is set. ``(H,)``"""
        u = self.weight_hh
        if self.recurrent_max_abs is not None:
            u = u.clamp(-self.recurrent_max_abs, self.recurrent_max_abs)
        return u

    def step(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        (h,) = state
        pre = torch.addcmul(xp_t, self.recurrent_weight(), h)  # (B, H)
        h = torch.relu(pre) if self.nonlinearity == "relu" else torch.tanh(pre)
        return h, (h,)

    def extra_repr(self) -> str:
        s = super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"
        if self.recurrent_max_abs is not None:
            s += f", recurrent_max_abs={self.recurrent_max_abs:g}"
        return s
