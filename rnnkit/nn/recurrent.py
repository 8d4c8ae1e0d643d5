"""`rnnkit.nn.RNN`, `LSTM`, `GRU`: drop-in replacements for `torch.nn`'s.

Same constructor arguments and defaults, input/output/state shapes, packed sequences and
``state_dict`` keys. Extras are keyword-only and off by default: ``kernel`` ("auto" | "fused" |
"loop"), ``check_finite``, ``init`` ("uniform" | "orthogonal"), ``lengths=`` in ``forward`` (a padded
batch with lengths, without packing it yourself) and, for the GRU, ``reset_after``.
This module owns no maths: it translates arguments and return values for `RecurrentStack`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from rnnkit.core.stack import RecurrentStack


class RNN(RecurrentStack):
    """Elman RNN, as ``torch.nn.RNN``: ``forward(input, hx=None) -> (output, h_n)``.

    input ``(T, B, I)`` (``(B, T, I)`` with ``batch_first``) or a PackedSequence;
    ``h_0``/``h_n`` ``(L*D, B, H)``; output ``(T, B, D*H)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, **extra: Any) -> None:
        _refuse_proj_size("RNN", extra)
        self.nonlinearity = nonlinearity
        super().__init__("rnn", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype, nonlinearity=nonlinearity,
                         **extra)

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | Sequence[Tensor] | None = None, *,  # type: ignore[override]  # torch.nn's signature: no mask=
                lengths: Tensor | Sequence[int] | None = None) -> tuple[Tensor | PackedSequence, Tensor]:
        out, (h,) = super().forward(input, hx, lengths=lengths)
        return out, h


class LSTM(RecurrentStack):
    """LSTM, as ``torch.nn.LSTM``: ``forward(input, (h_0, c_0)=None) -> (output, (h_n, c_n))``.

    ``h`` ``(L*D, B, H_out)``, ``c`` ``(L*D, B, H)``, output ``(T, B, D*H_out)``; ``H_out`` is
    ``proj_size`` when it is > 0, else ``hidden_size``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, **extra: Any) -> None:
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype, proj_size=proj_size, **extra)

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | Sequence[Tensor] | None = None, *,  # type: ignore[override]  # torch.nn's signature: no mask=
                lengths: Tensor | Sequence[int] | None = None
                ) -> tuple[Tensor | PackedSequence, tuple[Tensor, Tensor]]:
        out, (h, c) = super().forward(input, hx, lengths=lengths)
        return out, (h, c)


class GRU(RecurrentStack):
    """GRU, as ``torch.nn.GRU``: ``forward(input, hx=None) -> (output, h_n)``.

    Keyword-only ``reset_after=True`` (PyTorch/cuDNN placement of the reset gate); ``False`` gives
    the original paper's placement (Keras ``reset_after=False``), served by the loop kernel."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, *, reset_after: bool = True, **extra: Any) -> None:
        _refuse_proj_size("GRU", extra)
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype, reset_after=reset_after, **extra)

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | Sequence[Tensor] | None = None, *,  # type: ignore[override]  # torch.nn's signature: no mask=
                lengths: Tensor | Sequence[int] | None = None) -> tuple[Tensor | PackedSequence, Tensor]:
        out, (h,) = super().forward(input, hx, lengths=lengths)
        return out, h


def _refuse_proj_size(owner: str, extra: dict[str, Any]) -> None:
    """``proj_size`` exists for the LSTM only; torch.nn refuses it elsewhere with a ValueError."""
    proj_size = extra.pop("proj_size", 0)
    if proj_size != 0:
        raise ValueError(f"{owner}: proj_size argument is only supported for LSTM, not RNN or GRU "
                         f"(got proj_size={proj_size!r})")
