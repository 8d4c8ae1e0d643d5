"""Which fast path can run a configuration, and why not: the one rule, `fast_path_unavailable`.

The engine has one general kernel (the loop over the cell's step, any cell, any option) and several
fast paths that give the same numbers for the configurations they serve:

- ``"fused"``: a whole-sequence kernel for the stock cells (`rnnkit.core.kernels`): PyTorch's fused
  RNN functions, or rnnkit's C++ GRU/Elman kernel where ``"native"`` can run;
- ``"native"``: rnnkit's C++ GRU/Elman kernel (`rnnkit.core.fused_rnn`: CPU, unpadded input);
- ``"scan"``: the scan kernels for cells whose recurrence is linear in the state (`rnnkit.core.scan`);
- ``"native_scan"``: the C++ minGRU/minLSTM scan (``csrc/minscan.cpp``);
- ``"native_layernorm"``: the C++ layer-normalised LSTM/GRU BPTT (``csrc/layernorm.cpp``).

``fast_path_unavailable(cells, path, ...)`` returns why ``path`` cannot serve, or None when it can.
It is a pure function of its arguments (plus, for the C++ paths, whether the kernels are built,
`rnnkit.core.native.unavailable`, and whether an autocast region is active), so the choice can be
shown before anything runs: ``kernel="auto"`` takes the first fast path that can serve and falls back
quietly; forcing a kernel that cannot serve raises an error quoting this reason. The modules and the
sampler report their choice under the same name (``.fast_path_unavailable(...)``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rnnkit.cells import GRUCell, LayerNormGRUCell, LayerNormLSTMCell, LSTMCell, SimpleRNNCell
from rnnkit.cells.base import Cell
from rnnkit.cells.minimal import MinGRUCell, MinLSTMCell
from rnnkit.core import native

PATHS = ("fused", "native", "scan", "native_scan", "native_layernorm")
_STOCK = (SimpleRNNCell, LSTMCell, GRUCell)
_FLOAT = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def fast_path_unavailable(cells: Sequence[Cell], path: str = "fused", *, step_mask: bool = False,
                          dtype: torch.dtype | None = None, lengths: bool = False,
                          device: torch.device | str | None = None) -> str | None:
    """Why ``path`` (one of `PATHS`) cannot run ``cells`` (the cells of a stack, layer-major), or
    None when it can. ``step_mask``: the call has an arbitrary per-step mask (not lengths);
    ``dtype`` / ``device``: the input's; ``lengths``: the batch is padded (lengths or packed).

    The C++ paths build rnnkit's kernels on the first call (`rnnkit.core.native.unavailable`);
    every other condition is decided from the arguments alone."""
    if path not in PATHS:
        raise ValueError(f"fast_path_unavailable: path must be one of {PATHS}, got {path!r}")
    if path in ("fused", "native"):
        return _fused(cells, path == "native", step_mask, dtype, lengths, device)
    if path == "scan":
        for c in cells:
            if not getattr(c, "linear_recurrence", False):
                return f"{type(c).__name__} has a recurrence that is not linear in the state"
        return None
    stock = (MinGRUCell, MinLSTMCell) if path == "native_scan" else (LayerNormLSTMCell,
                                                                      LayerNormGRUCell)
    for c in cells:
        if type(c) not in stock:
            return f"{type(c).__name__} is not a stock {' or '.join(s.__name__ for s in stock)}"
    return _native_tensors(path, dtype, device)


def _fused(cells: Sequence[Cell], native_kernel: bool, step_mask: bool, dtype: torch.dtype | None,
           lengths: bool, device: torch.device | str | None) -> str | None:
    cell = cells[0]
    if type(cell) not in _STOCK:
        return f"{type(cell).__name__} is not one of PyTorch's stock cells"
    if cell.fused_mode is None:
        return f"{type(cell).__name__} with {cell.extra_repr()} has no fused PyTorch kernel"
    if any(type(c) is not type(cell) or c.fused_mode != cell.fused_mode for c in cells):
        return "the layers mix cell types"
    if step_mask:
        return "an arbitrary per-step mask (not lengths) needs the loop kernel"
    if dtype is not None and dtype not in _FLOAT:
        return f"dtype {dtype} is not supported by the fused kernel"
    if not native_kernel:
        return None
    if cell.fused_mode == "lstm":
        return "the LSTM runs PyTorch's oneDNN kernel, already near the matrix-product peak"
    if lengths:
        return "lengths / packed sequences run PyTorch's fused kernel"
    if dtype is not None and dtype not in (torch.float32, torch.float64):
        return f"rnnkit's C++ kernel serves float32 and float64, not {dtype}"
    if device is not None and torch.device(device).type != "cpu":
        return f"rnnkit's C++ kernel runs on the CPU, not on {device}"
    return native.unavailable()


def _native_tensors(path: str, dtype: torch.dtype | None, device: torch.device | str | None) -> str | None:
    """The C++ scan's and layer-norm kernels' conditions on the tensors and the context."""
    what = "scan" if path == "native_scan" else "layer-norm kernel"
    on_cpu = device is None or torch.device(device).type == "cpu"
    if not on_cpu or (dtype is not None and dtype not in (torch.float32, torch.float64)):
        return f"the C++ {what} runs float32/float64 on the CPU, got {dtype} on {device}"
    if torch.is_autocast_enabled():
        return f"inside an autocast region (bf16 products) the PyTorch {what.split()[0]} path runs"
    return native.unavailable()


def fused_unavailable(cells: Sequence[Cell], *, native_kernel: bool = False, **kw: Any) -> str | None:
    """The former name of ``fast_path_unavailable(cells, "native" if native_kernel else "fused")``,
    kept because earlier releases documented it."""
    return fast_path_unavailable(cells, "native" if native_kernel else "fused", **kw)
