"""Initialisation schemes shared by every cell.

- ``"uniform"`` (default, PyTorch's): every parameter ``~ U(-1/sqrt(H), 1/sqrt(H))``.
- ``"orthogonal"`` (Keras's defaults): input weights Xavier/Glorot-uniform, recurrent weights
  orthogonal, each drawn as one whole ``(G*H, ·)`` matrix (not per gate block; see below), biases
  zero.

Keras initialises the whole ``(I, G*H)`` kernel with one Glorot draw (fan_in=I, fan_out=G*H) and the
whole ``(H, G*H)`` recurrent kernel as one orthogonal matrix; we do the same on the transposed
PyTorch layout so the statistics match Keras's exactly.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # base.py imports this module
    from rnnkit.cells.base import Cell

SCHEMES = ("uniform", "orthogonal")


def apply(cell: Cell, scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"{type(cell).__name__}: init must be one of {SCHEMES}, got {scheme!r}")
    with torch.no_grad():
        if scheme == "uniform":
            bound = 1.0 / cell.hidden_size ** 0.5 if cell.hidden_size else 0.0  # H = 0: torch.nn's
            for p in cell.parameters(recurse=False):
                p.uniform_(-bound, bound)
            return
        for name, p in cell.named_parameters(recurse=False):
            if name.startswith("bias"):
                p.zero_()
            elif name == "weight_hh":
                nn.init.orthogonal_(p)
            else:  # weight_ih, weight_hr and any other input-side matrix
                nn.init.xavier_uniform_(p)


def set_forget_bias(cell: Cell, value: float) -> None:
    """Set the LSTM forget-gate bias (gate block 1 of ``i,f,g,o``) to ``value`` in ``bias_ih``
    and to zero in ``bias_hh``, so the effective bias ``b_ih + b_hh`` equals ``value``."""
    if cell.gates != 4:  # without this guard an RNN ignored it and a GRU biased its update gate
        raise ValueError(f"{type(cell).__name__}: forget_bias={value} applies to an LSTM's forget "
                         "gate; this cell has none")
    if cell.bias_ih is None or cell.bias_hh is None:
        raise ValueError(f"{type(cell).__name__}: forget_bias needs bias=True")
    H = cell.hidden_size
    with torch.no_grad():
        cell.bias_ih[H:2 * H].fill_(value)
        cell.bias_hh[H:2 * H].zero_()
