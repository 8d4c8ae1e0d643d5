"""`rnnkit.nn.LayerNormLSTM`, `LayerNormGRU`, `IndRNN`, `MinGRU`, `MinLSTM`: the modern cells
behind ``torch.nn.LSTM``'s arguments, shapes and state conventions.

Each takes ``(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
bidirectional=False, device=None, dtype=None)`` (IndRNN, like ``torch.nn.RNN``, has
``nonlinearity`` after ``num_layers``), plus keyword-only extras: ``kernel``, ``check_finite``,
``init``, the regularisers ``recurrent_dropout``, ``zoneout``, ``weight_drop``, and the cell's own
options. ``forward(input, hx=None, *, lengths=None)``: input ``(T, B, I)`` (``(B, T, I)`` with
``batch_first``), ``(T, I)`` unbatched, or a PackedSequence; output ``(T, B, D*H)``; states
``(L*D, B, H)``. This module owns no maths: it translates arguments for `RecurrentStack`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from rnnkit.core.stack import RecurrentStack


class _OneState(RecurrentStack):
    """A stack whose cell carries one state tensor: ``forward -> (output, h_n)`` like nn.GRU."""

    cell_name = ""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, **extra: Any) -> None:
        super().__init__(self.cell_name, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype, **extra)

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | Sequence[Tensor] | None = None, *,  # type: ignore[override]  # torch.nn's signature: no mask=
                lengths: Tensor | Sequence[int] | None = None) -> tuple[Tensor | PackedSequence, Tensor]:
        out, (h,) = super().forward(input, hx, lengths=lengths)
        return out, h


class LayerNormLSTM(RecurrentStack):
    """Layer-normalised LSTM (Ba et al. 2016; `rnnkit.cells.LayerNormLSTMCell`), as
    ``torch.nn.LSTM``: ``forward(input, (h_0, c_0)=None) -> (output, (h_n, c_n))``, ``h``/``c``
    ``(L*D, B, H)``. Extra keyword ``eps`` (layer-norm epsilon, 1e-5)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, **extra: Any) -> None:
        super().__init__("lnlstm", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype, **extra)

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | Sequence[Tensor] | None = None, *,  # type: ignore[override]  # torch.nn's signature: no mask=
                lengths: Tensor | Sequence[int] | None = None
                ) -> tuple[Tensor | PackedSequence, tuple[Tensor, Tensor]]:
        out, (h, c) = super().forward(input, hx, lengths=lengths)
        return out, (h, c)


class LayerNormGRU(_OneState):
    """Layer-normalised GRU (`rnnkit.cells.LayerNormGRUCell`), as ``torch.nn.GRU``:
    ``forward(input, h_0=None) -> (output, h_n)``. Extra keyword ``eps``."""

    cell_name = "lngru"


class IndRNN(_OneState):
    """IndRNN (Li et al. 2018; `rnnkit.cells.IndRNNCell`), with ``torch.nn.RNN``'s signature:
    ``nonlinearity`` ("relu", the paper's default, or "tanh") after ``num_layers``;
    ``forward(input, h_0=None) -> (output, h_n)``. Extra keywords ``recurrent_max_abs`` (the
    paper's bound on ``|u|``, e.g. ``2 ** (1 / T)``) and ``recurrent_init`` (``(0, 1)``)."""

    cell_name = "indrnn"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "relu", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, **extra: Any) -> None:
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype, nonlinearity=nonlinearity,
                         **extra)

    def constrain_(self) -> None:
        """Clip every layer's ``u`` into ``[-recurrent_max_abs, recurrent_max_abs]`` (call after
        ``optimizer.step()``, as the paper's code does; a no-op without the bound)."""
        for c in self.cells:
            c.constrain_()  # type: ignore[operator]  # IndRNNCell's own method


class MinGRU(_OneState):
    """minGRU (Feng et al. 2024; `rnnkit.cells.MinGRUCell`), run by the scan kernel:
    ``forward(input, h_0=None) -> (output, h_n)``."""

    cell_name = "mingru"


class MinLSTM(_OneState):
    """minLSTM (Feng et al. 2024; `rnnkit.cells.MinLSTMCell`), run by the scan kernel. It has no
    cell state, so unlike ``torch.nn.LSTM`` it returns ``(output, h_n)``."""

    cell_name = "minlstm"


__all__ = ["LayerNormLSTM", "LayerNormGRU", "IndRNN", "MinGRU", "MinLSTM"]
