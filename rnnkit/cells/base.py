"""The cell contract: parameters and one time step, nothing else.

A cell never loops over time, reverses, masks or picks kernels: the engine (`rnnkit.core`) owns time.
Every cell offers

- ``project_inputs(x)``: the input projection of *all* time steps in one matrix product,
  ``(..., I) -> (..., G*H)`` (the largest single speed lever of a loop over time);
- ``step(xp_t, state) -> (out_t, new_state)``: one step from a projected input ``(B, G*H)``;
- ``init_state(batch)``: the zero state;
- ``state_shapes``: the per-sample shape of each state tensor, e.g. ``((H_out,), (H,))`` for an LSTM.

States are always tuples of tensors (``(h,)`` for RNN/GRU, ``(h, c)`` for LSTM) so the engine treats
every cell alike.
"""
from __future__ import annotations

from typing import NoReturn

import math

import torch
from torch import Tensor, nn

from rnnkit.cells import init as initializers


class Cell(nn.Module):
    """Base class of every recurrent cell. Shapes: B batch, I input, H hidden, G gate blocks."""

    #: number of gate blocks stacked in ``weight_ih`` / ``weight_hh`` (1 RNN, 4 LSTM, 3 GRU)
    gates: int = 1
    #: name of the matching fused PyTorch kernel family, or None
    fused_mode: str | None = None
    #: whether ``input_size`` / ``hidden_size`` may be 0 (``torch.nn``'s one-step cells allow it)
    allow_empty: bool = False
    weight_ih: Tensor                 # (G*H, I)
    weight_hh: Tensor                 # (G*H, H_out)
    bias_ih: Tensor | None            # (G*H,), None without bias
    bias_hh: Tensor | None            # (G*H,)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 init: str = "uniform", forget_bias: float | None = None):
        super().__init__()
        _check_size("input_size", input_size, type(self).__name__, self.allow_empty)
        _check_size("hidden_size", hidden_size, type(self).__name__, self.allow_empty)
        if not isinstance(bias, bool):
            raise TypeError(f"{type(self).__name__}: bias must be a bool, got {bias!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.init = init
        self.forget_bias = forget_bias
        G, H = self.gates, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(G * H, self.recurrent_input_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(G * H))
            self.bias_hh = nn.Parameter(torch.empty(G * H))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.make_extra_parameters()
        self.reset_parameters()

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def recurrent_input_size(self) -> int:
        """Width of the state fed back through ``weight_hh`` (H, or the projection size)."""
        return self.hidden_size

    @property
    def output_size(self) -> int:
        return self.hidden_size

    @property
    def state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((self.output_size,),)

    # -- parameters ----------------------------------------------------------------------------
    def make_extra_parameters(self) -> None:
        """Create parameters beyond ``weight_ih/weight_hh/bias_*`` (called before initialisation)."""

    def reset_parameters(self) -> None:
        """PyTorch's default ``uniform(-1/sqrt(H), 1/sqrt(H))`` for every parameter, or, with
        ``init="orthogonal"``, Xavier-uniform input weights, orthogonal recurrent weights (each
        one whole matrix, as Keras) and zero biases (Keras's defaults). ``forget_bias`` (LSTM) sets
        the forget-gate bias afterwards (all in ``bias_ih``, ``bias_hh``'s forget block zero)."""
        initializers.apply(self, self.init)
        if self.forget_bias is not None:
            initializers.set_forget_bias(self, self.forget_bias)

    # -- the step ------------------------------------------------------------------------------
    def init_state(self, batch: int, *, dtype: torch.dtype | None = None,
                   device: torch.device | None = None) -> tuple[Tensor, ...]:
        dtype = dtype or self.weight_ih.dtype
        device = device or self.weight_ih.device
        return tuple(torch.zeros(batch, *s, dtype=dtype, device=device) for s in self.state_shapes)

    def project_inputs(self, x: Tensor) -> Tensor:
        """``(..., I) -> (..., G*H)``: ``x W_ih^T + b_ih`` for all steps in one matrix product."""
        return nn.functional.linear(x, self.weight_ih, self.bias_ih)

    def step(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        raise NotImplementedError

    def forward(self, x: Tensor, state: tuple[Tensor, ...] | Tensor | None = None
                ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One step from a raw input ``x`` ``(B, I)``; returns ``(out (B, H_out), state)``."""
        if state is None:
            state = self.init_state(x.shape[0], dtype=x.dtype, device=x.device)
        elif isinstance(state, Tensor):
            state = (state,)
        return self.step(self.project_inputs(x), tuple(state))

    def __prepare_scriptable__(self) -> NoReturn:
        """``torch.jit.script`` calls this first: TorchScript (in maintenance upstream) does not
        compile the cells' Python steps; say what works instead."""
        raise TypeError(f"{type(self).__name__}: torch.jit.script cannot compile rnnkit's cells; use "
                        f"torch.export.export(cell, (x, h)) or torch.jit.trace(cell, (x, h)) instead, "
                        f"or torch.compile(cell)")

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        return s


def _check_size(name: str, value: object, owner: str, allow_empty: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < 0 or (value == 0 and not allow_empty):
        raise ValueError(f"{owner}: {name} must be a {'non-negative' if allow_empty else 'positive'} "
                         f"int, got {value}")


def stdv(hidden_size: int) -> float:
    return 1.0 / math.sqrt(hidden_size)
