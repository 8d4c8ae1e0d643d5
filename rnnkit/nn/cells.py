"""`rnnkit.nn.RNNCell`, `LSTMCell`, `GRUCell`: drop-in replacements for `torch.nn`'s cells.

``RNNCell(input_size, hidden_size, bias=True, nonlinearity="tanh")``: ``forward(x, h=None) -> h'``;
``LSTMCell``: ``forward(x, (h, c)=None) -> (h', c')``; ``GRUCell``: ``forward(x, h=None) -> h'``.
``x`` ``(B, I)`` or ``(I,)`` unbatched; states ``(B, H)`` or ``(H,)``."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from rnnkit import cells
from rnnkit.core.checks import DtypeError, ShapeError


def _step(cell: cells.Cell, x: Tensor, hx: Tensor | Sequence[Tensor] | None,
          owner: str) -> tuple[Tensor, ...]:
    if not isinstance(x, Tensor) or x.dim() not in (1, 2):
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(f"{owner}: expected input of shape (B, I={cell.input_size}) or "
                         f"(I={cell.input_size},), got {got}")
    if x.shape[-1] != cell.input_size:
        raise ShapeError(f"{owner}: expected input of shape (B, I={cell.input_size}), "
                         f"got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{owner}: expected a floating-point input, got dtype {x.dtype}")
    if x.dtype != cell.weight_ih.dtype:
        raise DtypeError(f"{owner}: input dtype {x.dtype} does not match the parameters' dtype "
                         f"{cell.weight_ih.dtype}; convert one of them (.to(dtype))")
    unbatched = x.dim() == 1
    if unbatched:
        x = x.unsqueeze(0)
    if hx is None:
        state = cell.init_state(x.shape[0], dtype=x.dtype, device=x.device)
    else:
        state = (hx,) if isinstance(hx, Tensor) else tuple(hx)
        if len(state) != len(cell.state_shapes):
            raise ShapeError(f"{owner}: expected a state of {len(cell.state_shapes)} tensor(s), "
                             f"got {len(state)}")
        state = tuple(s.unsqueeze(0) if unbatched else s for s in state)
        for i, (s, shape) in enumerate(zip(state, cell.state_shapes)):
            if tuple(s.shape) != (x.shape[0],) + shape:
                raise ShapeError(f"{owner}: expected state {i} of shape {(x.shape[0],) + shape}, "
                                 f"got {tuple(s.shape)}")
    _, state = cell.step(cell.project_inputs(x), state)
    return tuple(s.squeeze(0) for s in state) if unbatched else state


class RNNCell(cells.SimpleRNNCell):
    allow_empty = True  # hidden_size=0 / input_size=0, as torch.nn's cells

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, **extra: Any) -> None:
        super().__init__(input_size, hidden_size, bias, nonlinearity, **extra)
        self.to(device=device, dtype=dtype)

    # torch.nn's one-step signature, narrower than the base cell's
    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # type: ignore[override]
        return _step(self, input, hx, "RNNCell")[0]

    def extra_repr(self) -> str:  # torch.nn.RNNCell's text: the nonlinearity unquoted, tanh unsaid
        s = super(cells.SimpleRNNCell, self).extra_repr()
        return s + ("" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity}")


class LSTMCell(cells.LSTMCell):
    allow_empty = True  # hidden_size=0 / input_size=0, as torch.nn's cells

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 **extra: Any) -> None:
        super().__init__(input_size, hidden_size, bias, **extra)
        self.to(device=device, dtype=dtype)

    # torch.nn's one-step signature, narrower than the base cell's
    def forward(self, input: Tensor,  # type: ignore[override]
                hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, ...]:
        return _step(self, input, hx, "LSTMCell")


class GRUCell(cells.GRUCell):
    allow_empty = True  # hidden_size=0 / input_size=0, as torch.nn's cells

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 **extra: Any) -> None:
        super().__init__(input_size, hidden_size, bias, **extra)
        self.to(device=device, dtype=dtype)

    # torch.nn's one-step signature, narrower than the base cell's
    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # type: ignore[override]
        return _step(self, input, hx, "GRUCell")[0]


__all__ = ["RNNCell", "LSTMCell", "GRUCell"]
