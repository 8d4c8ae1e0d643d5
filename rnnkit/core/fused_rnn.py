"""rnnkit's own fused kernel for the GRU and the Elman RNN (C++, `rnnkit.core.native`).

PyTorch runs ``torch.nn.GRU`` and ``torch.nn.RNN`` on the CPU as a chain of small autograd
operations per step (oneDNN serves only the LSTM), so their cost is mostly per-step overhead. This
kernel runs each layer and direction as:

- the input projection of all steps, ``x W_ih^T + b_ih``, as one matrix product (autograd);
- the recurrence in C++: per step one matrix product ``h_{t-1} W_hh^T`` against weights packed once
  per call, and one fused element-wise pass over the gates;
- BPTT in C++: per step one product for ``dh_{t-1}``; the weight gradient ``dW_hh`` is one large
  product over all steps at the end.

``precision="bf16"`` runs every matrix product with bf16 inputs and fp32 accumulation (states and
element-wise math stay in fp32), as ``torch.autocast("cpu", torch.bfloat16)`` does.

Shapes: T time, B batch, I input, H hidden, L layers, D directions.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from rnnkit.cells.gru import gru_step
from rnnkit.cells.rnn import ACTIVATIONS, elman_step
from rnnkit.core import native
from rnnkit.core.higher_order import keeps_graph, recompute_grads

if TYPE_CHECKING:
    from rnnkit.cells.base import Cell

_NO_BIAS = torch.empty(0)


class _Layer(torch.autograd.Function):
    """One GRU or Elman (``mode`` "gru", "rnn_tanh", "rnn_relu") layer, one direction, over
    projected inputs ``xp`` ``(T, B, G*H)`` from ``h0`` ``(B, H)``; returns ``out`` ``(T, B, H)``,
    the final state ``h_n`` ``(B, H)`` (its own output: as a slice of ``out`` its gradient would
    cost a full-size zero tensor and a sum) and the GRU's workspace for the backward pass
    (non-differentiable; empty for the Elman RNN or when ``save`` is False).

    ``x, w_ih, b_ih`` (``xp = project(x)``) are passed only so that a backward asked to keep the
    graph can recompute ``xp`` (`rnnkit.core.higher_order`) without this kernel holding ``xp``:
    they are alive anyway (the projection's backward keeps them) and get no gradient from here.
    Written with ``setup_context`` so that `torch.func` transforms accept it; a backward under
    ``vmap`` (batched gradients) takes the recomputation too, the C++ backward having no batching
    rule."""

    @staticmethod
    def forward(xp: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, x: Tensor, w_ih: Tensor,
                b_ih: Tensor | None, mode: str, reverse: bool, bf16: bool,
                save: bool) -> tuple[Tensor, Tensor, Tensor]:
        bias = _NO_BIAS.to(xp.dtype) if b_hh is None else b_hh
        if mode == "gru":
            out, ws = native.ops().gru_forward(xp, h0, w_hh, bias, reverse, save, bf16)
        else:
            out = native.ops().rnn_forward(xp, h0, w_hh, bias, mode == "rnn_relu", reverse, bf16)
            ws = _NO_BIAS.to(xp.dtype)
        return out, out[0 if reverse else -1].clone(), ws

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor, Tensor]) -> None:
        xp, h0, w_hh, b_hh, x, w_ih, b_ih, mode, reverse, bf16, save = inputs
        out, _, ws = output
        ctx.mark_non_differentiable(ws)
        if save:
            ctx.save_for_backward(out, h0, ws, w_hh, b_hh, x, w_ih, b_ih)
        ctx.flags = (mode, b_hh is not None, reverse, bf16)

    @staticmethod
    def backward(ctx: Any, d_out: Tensor, d_hn: Tensor, _d_ws: Tensor | None) -> tuple[Tensor | None, ...]:
        out, h0, ws, w_hh, b_hh, x, w_ih, b_ih = ctx.saved_tensors
        mode, has_bias, reverse, bf16 = ctx.flags
        if keeps_graph() or _batched(d_out, d_hn):
            grads = _recompute(ctx, mode, reverse, bf16, x, w_ih, b_ih, h0, w_hh, b_hh, d_out, d_hn)
            return (*grads, None, None, None, None, None, None, None)
        if mode == "gru":
            dxp, dh0, dw, db = native.ops().gru_backward(d_out.contiguous(), d_hn, out, h0, ws, w_hh,
                                                         has_bias, reverse, bf16)
        else:
            dxp, dh0, dw, db = native.ops().rnn_backward(d_out.contiguous(), d_hn, out, h0, w_hh,
                                                         has_bias, mode == "rnn_relu", reverse, bf16)
        return dxp, dh0, dw, (db if has_bias else None), None, None, None, None, None, None, None


class _LayerCtx(torch.autograd.Function):
    """`_Layer` in the older style (``ctx`` in ``forward``), the one used outside `torch.func`:
    ``apply`` of a Function with ``setup_context`` binds the call to ``forward``'s signature with
    ``inspect`` every time (~25 us a call, measured: GRU(8, 16) inference per call 37 -> 85 us)."""

    @staticmethod
    def forward(ctx: Any, *inputs: Any) -> tuple[Tensor, Tensor, Tensor]:
        output = _Layer.forward(*inputs)
        _Layer.setup_context(ctx, inputs, output)
        return output

    backward = _Layer.backward


def _batched(*tensors: Tensor) -> bool:
    """Whether any of ``tensors`` is a `torch.func.vmap` batched tensor (batched gradients)."""
    f = torch._C._functorch
    return any(f.is_batchedtensor(t) or f.is_legacy_batchedtensor(t) for t in tensors)


def _recompute(ctx: Any, mode: str, reverse: bool, bf16: bool, x: Tensor, w_ih: Tensor,
               b_ih: Tensor | None, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, d_out: Tensor,
               d_hn: Tensor) -> list[Tensor | None]:
    """Differentiable ``(d xp, d h0, d w_hh, d b_hh)`` for a backward that keeps the graph: the layer
    recomputed with the cell's own step (`rnnkit.cells`), products in bf16 if the kernel's were."""
    with torch.enable_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        xp = _linear(x, w_ih, b_ih, bf16)

    def layer(xp: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> tuple[Tensor, Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            h, outs = h0, []
            for xp_t in (reversed(xp.unbind(0)) if reverse else xp.unbind(0)):
                if mode == "gru":
                    h = gru_step(xp_t, h, w_hh, b_hh)
                else:
                    h = elman_step(xp_t, h, w_hh, b_hh, ACTIVATIONS[mode[4:]])
                outs.append(h.to(xp.dtype))
                h = outs[-1]
        out = torch.stack(outs[::-1] if reverse else outs)
        return out, h

    return recompute_grads(layer, [xp, h0, w_hh, b_hh], ctx.needs_input_grad[:4], [d_out, d_hn])


def _linear(x: Tensor, w: Tensor, b: Tensor | None, bf16: bool) -> Tensor:
    """``x w^T + b``, with bf16 inputs and an fp32 result when ``bf16`` (autocast's rule)."""
    if not bf16:
        return nn.functional.linear(x, w, b)
    b = None if b is None else b.to(torch.bfloat16)
    return nn.functional.linear(x.to(torch.bfloat16), w.to(torch.bfloat16), b).to(x.dtype)


def project(cell: Cell, x: Tensor, bf16: bool) -> Tensor:
    """``x W_ih^T + b_ih`` for all steps: ``(T, B, I) -> (T, B, G*H)``, contiguous. With ``bf16``
    the product takes bf16 inputs (autocast's rule for ``linear``) and the result is fp32 again."""
    return _linear(x, cell.weight_ih, cell.bias_ih, bf16).contiguous()


def run_layer(cell: Cell, x: Tensor, h0: Tensor, *, reverse: bool, bf16: bool) -> tuple[Tensor, Tensor]:
    """One layer in one direction: ``x`` ``(T, B, I)``, ``h0`` ``(B, H)`` -> ``(out (T, B, H),
    h_n (B, H))`` (``out`` in the input's time order also when ``reverse``)."""
    xp = project(cell, x, bf16)
    h0 = h0.contiguous()
    w_hh, b_hh = cell.weight_hh, cell.bias_hh
    # the GRU's workspace is written only when a backward pass may need it
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                           for t in (xp, h0, w_hh, b_hh))
    fn = _LayerCtx if torch._C._functorch.maybe_current_level() is None else _Layer  # torch.func
    # torch's Function.apply is unannotated; it returns what forward does
    out, h_n, _ = fn.apply(xp, h0, w_hh, b_hh, x, cell.weight_ih, cell.bias_ih,  # type: ignore[no-untyped-call]
                           cell.fused_mode, reverse, bf16, save)
    return out, h_n


def run_native(cells: Sequence[Cell], x: Tensor, hx: tuple[Tensor, ...], *, num_layers: int,
               bidirectional: bool, dropout: float, training: bool,
               bf16: bool = False) -> tuple[Tensor, tuple[Tensor, ...]]:
    """The whole stack on time-major ``x`` ``(T, B, I)`` from ``hx`` ``((L*D, B, H),)``; returns
    ``(out (T, B, D*H), (h_n (L*D, B, H),))``, as `rnnkit.core.kernels.run_fused`."""
    D = 2 if bidirectional else 1
    (h0,) = hx
    finals = []
    layer_in = x
    with torch.autocast("cpu", enabled=False):  # the casts are explicit (``bf16``)
        for k in range(num_layers):
            outs = []
            for d in range(D):
                i = k * D + d
                out, h_n = run_layer(cells[i], layer_in, h0[i], reverse=d == 1, bf16=bf16)
                outs.append(out)
                finals.append(h_n)
            layer_in = outs[0] if D == 1 else torch.cat(outs, 2)
            if dropout and training and k < num_layers - 1:
                layer_in = nn.functional.dropout(layer_in, dropout, True)
    return layer_in, (torch.stack(finals),)
