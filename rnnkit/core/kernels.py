"""The kernels that run cells over time (which one can serve: `rnnkit.core.fast_paths`).

- ``fused``: a whole-sequence kernel for the stock cells, the fastest that can serve the call:
  - rnnkit's own C++ kernel for the GRU and the Elman RNN on the CPU (`rnnkit.core.fused_rnn`:
    per step one small matrix product and one fused element-wise pass, weight gradients as one
    large product), for unpadded input — ``torch.nn.GRU/RNN`` have no oneDNN kernel on the CPU and
    lose most of their time to per-step overhead;
  - otherwise PyTorch's own fused RNN functions (``torch._VF.lstm/gru/rnn_tanh/rnn_relu``: oneDNN
    for the LSTM on the CPU, cuDNN on a GPU), with lengths / packed sequences and the LSTM.
  Both give the numbers of ``torch.nn`` (float rounding aside) with the same parameter layout.
  ``precision="bf16"`` (`rnnkit.core.precision`) runs their matrix products in bf16.
- ``loop``: any cell. Projects all inputs of a layer in one matrix product (``cell.project_inputs``),
  then per step one recurrent matrix product and the cell's element-wise math. It iterates the
  projected inputs with ``unbind`` — indexing ``xp[t]`` inside the loop would make autograd's backward
  O(T²) (each index's backward materialises a full-size zero gradient).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.core.fast_paths import fast_path_unavailable
from rnnkit.core.fused_rnn import run_native
from rnnkit.core.precision import effective as effective_precision

if TYPE_CHECKING:
    from rnnkit.cells.base import Cell
    from rnnkit.core.regularizers import RegularizedStep

KERNELS = ("auto", "fused", "loop", "scan")


def flat_weights(cells: Sequence[Cell]) -> list[Tensor]:
    """Parameters in the order of ``torch.nn.RNNBase._flat_weights`` (layer-major, then direction)."""
    out = []
    for c in cells:
        out += [c.weight_ih, c.weight_hh]
        if c.bias:
            out += [cast(Tensor, c.bias_ih), cast(Tensor, c.bias_hh)]  # present: c.bias
        if getattr(c, "proj_size", 0):
            out.append(cast(Tensor, c.weight_hr))  # nn.Module.__getattr__ is typed Tensor | Module
    return out


def run_fused(cells: Sequence[Cell], x: Tensor, hx: tuple[Tensor, ...], *, num_layers: int,
              bidirectional: bool, dropout: float, training: bool, batch_sizes: Tensor | None = None,
              precision: str = "fp32") -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run the whole stack with PyTorch's fused function.

    ``x``: time-major ``(T, B, I)`` or, with ``batch_sizes``, packed data ``(N, I)``.
    ``hx``: ``((L*D, B, H_out),)`` or ``(h0, c0)`` for the LSTM. Returns ``(out, states)`` in
    ``x``'s dtype; ``precision="bf16"`` runs the products under a bf16 autocast."""
    if precision == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, states = run_fused(cells, x, hx, num_layers=num_layers, bidirectional=bidirectional,
                                    dropout=dropout, training=training, batch_sizes=batch_sizes)
        return out.to(x.dtype), tuple(s.to(x.dtype) for s in states)
    cell = cells[0]
    mode, weights, bias = cell.fused_mode, flat_weights(cells), cell.bias
    fn = getattr(_VF, cast(str, mode))  # a stock cell's fused_mode (fast_path_unavailable checked)
    hx_arg = hx if mode == "lstm" else hx[0]
    if batch_sizes is None:
        res = fn(x, hx_arg, weights, bias, num_layers, dropout, training, bidirectional, False)
    else:
        res = fn(x, batch_sizes, hx_arg, weights, bias, num_layers, dropout, training, bidirectional)
    return res[0], tuple(res[1:])


def run_fused_padded(cells: Sequence[Cell], x: Any, hx: tuple[Tensor, ...], lengths: Tensor | None, *,
                     precision: str = "fp32", **args: Any) -> tuple[Any, tuple[Tensor, ...]]:
    """The fused kernel on time-major ``x`` ``(T, B, I)`` with optional ``lengths``, or on a
    ``PackedSequence`` (then the output is packed too). States are in the caller's batch order.
    ``precision``: "fp32" or "bf16" (`rnnkit.core.precision`; a CPU bf16 autocast means "bf16")."""
    # x and the output: a Tensor or a PackedSequence, told apart by `packed` below, which mypy cannot
    # follow; hence Any
    packed = isinstance(x, PackedSequence)
    data = x.data if packed else x
    precision = effective_precision(precision, data.dtype)
    if not packed and lengths is None:
        if fast_path_unavailable(cells, "native", dtype=x.dtype, device=x.device) is None:
            return run_native(cells, x, hx, bf16=precision == "bf16", **args)
        return run_fused(cells, x, hx, precision=precision, **args)
    # not packed here means lengths were given (the unpadded case returned above)
    seq = x if packed else pack_padded_sequence(x, lengths, enforce_sorted=False)  # type: ignore[arg-type]
    if seq.sorted_indices is not None:
        hx = tuple(s.index_select(1, seq.sorted_indices) for s in hx)
    data, hx = run_fused(cells, seq.data, hx, batch_sizes=seq.batch_sizes, precision=precision,
                         **args)
    if seq.unsorted_indices is not None:
        hx = tuple(s.index_select(1, seq.unsorted_indices) for s in hx)
    out = PackedSequence(data, seq.batch_sizes, seq.sorted_indices, seq.unsorted_indices)
    if packed:
        return out, hx
    return pad_packed_sequence(out, total_length=x.shape[0])[0], hx


def run_loop(cell: Cell | RegularizedStep, xp: Tensor, state: tuple[Tensor, ...], mask: Tensor | None,
             masked_output: str = "zero") -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run ``cell`` forward over projected inputs ``xp`` ``(T, B, G*H)`` from ``state``.

    ``mask`` ``(T, B, 1)`` bool or None: where False the state is carried unchanged and the output
    is zero (``masked_output="zero"``, PyTorch's padding) or the carried output (``"hold"``, Keras).
    Returns ``(out (T, B, H_out), final state)``."""
    outs = []
    if mask is None:
        for xp_t in xp.unbind(0):
            out, state = cell.step(xp_t, state)
            outs.append(out)
    else:
        for xp_t, m in zip(xp.unbind(0), mask.unbind(0)):
            out, new = cell.step(xp_t, state)
            state = tuple(torch.where(m, n, s) for n, s in zip(new, state))
            outs.append(out * m if masked_output == "zero" else torch.where(m, out, state[0]))
    return torch.stack(outs), state


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of ``x`` ``(T, B, ...)`` within its own length (padding stays put).

    An involution: applying it twice gives ``x`` back."""
    if lengths is None:
        return x.flip(0)
    T = x.shape[0]
    t = torch.arange(T).unsqueeze(1)  # (T, 1)
    L = lengths.unsqueeze(0)  # (1, B)
    idx = torch.where(t < L, L - 1 - t, t).to(x.device)  # (T, B)
    idx = idx.view(T, -1, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, idx)
