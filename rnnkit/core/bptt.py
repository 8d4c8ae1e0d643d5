"""The loop kernel with a hand-written backward pass, for custom cells that describe their step as
"one matrix product, then element-wise math" (the structure cuDNN and haste exploit).

A cell opts in by offering

- ``recurrent_matrix()`` -> ``W`` ``(G*H, H_out)``, the one matrix of the step (``hp = h_{t-1} W^T``);
- ``pointwise_params()`` -> the tensors the element-wise part uses (layer-norm gains, biases...);
- ``pointwise_forward(xp_t, hp_t, state, params) -> (new_state, saved)``: the step after the product
  (``new_state[0]`` is the step's output ``h_t``);
- ``pointwise_backward(saved, params, d_new_state, d_xp_t) -> (d_hp_t, d_state_direct, d_params)``:
  its derivative; it writes ``dL/dxp_t`` into ``d_xp_t``, and ``d_state_direct`` is the gradient
  reaching ``state`` other than through ``hp`` (None for a part reached only through ``hp``).

`BPTT` then runs forward without building an autograd graph per step, and backward in reverse with
one small product per step (``dh_{t-1} += d_hp_t W``) and *one* large product for the weight
gradient at the end (``dW = sum_t d_hp_t^T h_{t-1}``, all steps at once). Per-step Python and
autograd overhead is what makes an autograd loop slow at these sizes; this removes most of it.
Per-step regularisers (recurrent dropout, zoneout) are not handled here: with them the engine uses
the autograd loop (`rnnkit.core.kernels.run_loop`), which gives the same numbers, only slower.
For the stock layer-normalised LSTM and GRU without a mask the same algorithm runs in C++
(`NativeLayerNormLSTM`, `NativeLayerNormGRU`; ``csrc/layernorm.cpp``), which also removes the ~30
PyTorch operations per step that `BPTT` still pays.

Shapes: T time, B batch, G*H gate width, H_out the state ``h``'s width.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from rnnkit.core import native
from rnnkit.core.fast_paths import fast_path_unavailable
from rnnkit.core.higher_order import keeps_graph, recompute_grads
from rnnkit.core.kernels import run_loop

if TYPE_CHECKING:
    from rnnkit.cells.base import Cell
    from rnnkit.core.regularizers import Regularizers

_HOOKS = ("recurrent_matrix", "pointwise_params", "pointwise_forward", "pointwise_backward")


def has_bptt(cell: object) -> bool:
    """Whether ``cell`` offers the hooks of the hand-written backward pass."""
    return all(callable(getattr(cell, name, None)) for name in _HOOKS)


class BPTT(torch.autograd.Function):
    """``BPTT.apply(cell, mask, W, xp, n_state, *state, *params) -> (h_seq (T, B, H_out), *final)``.

    ``mask`` ``(T, B, 1)`` bool or None: where False the state is carried unchanged."""

    # cell: Any here and below, a cell found by duck typing to have the hooks (`has_bptt`)
    @staticmethod
    def forward(ctx: Any, cell: Any, mask: Tensor | None, W: Tensor, xp: Tensor, n_state: int,
                *rest: Any) -> tuple[Tensor, ...]:
        state, params = tuple(rest[:n_state]), tuple(rest[n_state:])
        T, B = xp.shape[0], xp.shape[1]
        h_seq = xp.new_empty(T, B, state[0].shape[-1])
        saved = []
        for t, xp_t in enumerate(xp.unbind(0)):
            hp_t = state[0] @ W.t()  # (B, G*H): the step's one matrix product
            new, sv = cell.pointwise_forward(xp_t, hp_t, state, params)
            if mask is not None:
                new = tuple(torch.where(mask[t], n, s) for n, s in zip(new, state))
            saved.append(sv)
            h_seq[t] = new[0]
            state = new
        keep = None if mask is None else mask.to(xp.dtype)  # (T, B, 1)
        ctx.cell, ctx.keep, ctx.saved_steps, ctx.xp_width = cell, keep, saved, xp.shape[-1]
        ctx.mask, ctx.n_state = mask, n_state
        ctx.save_for_backward(W, xp, h_seq, *rest)
        return (h_seq, *state)

    @staticmethod
    def backward(ctx: Any, d_h_seq: Tensor, *d_final: Tensor) -> tuple[Tensor | None, ...]:
        cell, keep, saved = ctx.cell, ctx.keep, ctx.saved_steps
        W, xp, h_seq, *rest = ctx.saved_tensors
        if keeps_graph():  # the cell's own step, differentiably (`rnnkit.core.higher_order`)
            def steps(W: Tensor, xp: Tensor, *rest: Any) -> tuple[Tensor, ...]:
                return _bptt_steps(cell, ctx.mask, W, xp, ctx.n_state, rest)
            grads = recompute_grads(steps, [W, xp, *rest],
                                    ctx.needs_input_grad[2:4] + ctx.needs_input_grad[5:],
                                    [d_h_seq, *d_final])
            return (None, None, *grads[:2], None, *grads[2:])
        h0, params = rest[0], tuple(rest[ctx.n_state:])
        T = h_seq.shape[0]
        d_state = list(d_final)  # autograd gives zeros for unused outputs
        d_xp = h_seq.new_empty(T, h_seq.shape[1], ctx.xp_width)
        d_hp_all: Any = None  # (T, B, G*H), allocated at the first step
        d_params: list[Any] = [[] for _ in params]  # per step; summed once at the end
        for t in range(T - 1, -1, -1):
            d_state[0] = d_state[0] + d_h_seq[t]
            if keep is not None:  # the carried part skips this step
                d_carry = [d * (1 - keep[t]) for d in d_state]
                d_state = [d * keep[t] for d in d_state]
            d_hp_t, d_prev, d_par = cell.pointwise_backward(saved[t], params, tuple(d_state), d_xp[t])
            if d_hp_all is None:
                d_hp_all = d_hp_t.new_empty(T, *d_hp_t.shape)
            d_hp_all[t] = d_hp_t
            d_state = list(d_prev)  # d_prev[0] None: h_{t-1} enters only through hp_t
            d_h_mm = d_hp_t @ W  # through hp_t = h_{t-1} W^T
            d_state[0] = d_h_mm if d_state[0] is None else d_state[0] + d_h_mm
            if keep is not None:
                d_state = [d + c for d, c in zip(d_state, d_carry)]
            for acc, g in zip(d_params, d_par):
                if g is not None:
                    acc.append(g)
        h_prev = torch.cat((h0.unsqueeze(0), h_seq[:-1]))  # (T, B, H_out)
        GH, H = d_hp_all.shape[-1], h_prev.shape[-1]
        d_W = d_hp_all.reshape(-1, GH).t() @ h_prev.reshape(-1, H)  # all steps in one product
        d_params = [torch.stack(acc).sum(0) if acc else None for acc in d_params]
        return (None, None, d_W, d_xp, None, *d_state, *d_params)


def _bptt_steps(cell: Any, mask: Tensor | None, W: Tensor, xp: Tensor, n_state: int,
                rest: Sequence[Any]) -> tuple[Tensor, ...]:
    """`BPTT`'s forward as plain differentiable steps: ``(h_seq, *final state)``."""
    state, params = tuple(rest[:n_state]), tuple(rest[n_state:])
    outs = []
    for t, xp_t in enumerate(xp.unbind(0)):
        new, _ = cell.pointwise_forward(xp_t, state[0] @ W.t(), state, params)
        if mask is not None:
            new = tuple(torch.where(mask[t], n, s) for n, s in zip(new, state))
        outs.append(new[0])
        state = new
    return (torch.stack(outs), *state)


def run_bptt(cell: Any, xp: Tensor, state: tuple[Tensor, ...], mask: Tensor | None,
             masked_output: str = "zero") -> tuple[Tensor, tuple[Tensor, ...]]:
    """`rnnkit.core.kernels.run_loop`'s contract, computed by `BPTT`."""
    h_seq, *final = BPTT.apply(cell, mask, cell.recurrent_matrix(), xp, len(state), *state,  # type: ignore[no-untyped-call]  # torch's Function.apply is unannotated
                               *cell.pointwise_params())
    out = h_seq if mask is None or masked_output == "hold" else h_seq * mask
    return out, tuple(final)


class NativeLayerNormLSTM(torch.autograd.Function):
    """`BPTT` of a stock `LayerNormLSTMCell` in rnnkit's C++ kernel (``csrc/lnlstm.cpp``): per step
    one small product and one element-wise pass doing both layer norms and the gates, instead of
    ~30 PyTorch operations; the weight gradient is one product over all steps, as in `BPTT`.
    ``apply(xp, h0, c0, W_hh, g_hh, b_hh, g_c, b_c, eps) -> (h_seq, h_T, c_T)``."""

    @staticmethod
    def forward(ctx: Any, cell: Any, xp: Tensor, h0: Tensor, c0: Tensor, W: Tensor, g_hh: Tensor,
                b_hh: Tensor | None, g_c: Tensor, b_c: Tensor | None,
                eps: float) -> tuple[Tensor, Tensor, Tensor]:
        e = xp.new_empty(0)
        args = [t.contiguous() for t in (xp, h0, c0, W, g_hh)]
        b1 = e if b_hh is None else b_hh.contiguous()
        g2 = g_c.contiguous()
        b2 = e if b_c is None else b_c.contiguous()
        out, c_all, hp, stats = native.ops().lnlstm_forward(*args, b1, g2, b2, float(eps))
        ctx.has_bias, ctx.cell = (b_hh is not None, b_c is not None), cell
        # the inputs themselves (a kept graph starts there), the kernel's own tensors after them
        ctx.save_for_backward(xp, h0, c0, W, g_hh, b_hh, g_c, b_c, out, c_all, hp, stats)
        return out, out[-1].clone(), c_all[-1].clone()

    @staticmethod
    def backward(ctx: Any, d_out: Tensor, d_hT: Tensor, d_cT: Tensor) -> tuple[Tensor | None, ...]:
        xp, h0, c0, W, g_hh, b_hh, g_c, b_c, out, c_all, hp, stats = ctx.saved_tensors
        if keeps_graph():
            grads = recompute_grads(lambda W, xp, *rest: _bptt_steps(ctx.cell, None, W, xp, 2, rest),
                                    [W, xp, h0, c0, g_hh, b_hh, g_c, b_c],
                                    (ctx.needs_input_grad[4], *ctx.needs_input_grad[1:4],
                                     *ctx.needs_input_grad[5:9]), [d_out, d_hT, d_cT])
            return (None, grads[1], grads[2], grads[3], grads[0], *grads[4:], None)
        e = xp.new_empty(0)
        xp, c0, W, g_hh, g2 = (t.contiguous() for t in (xp, c0, W, g_hh, g_c))
        b1 = e if b_hh is None else b_hh.contiguous()
        b2 = e if b_c is None else b_c.contiguous()
        d_xp, d_hp, d_h0, d_c0, d_g1, d_b1, d_g2, d_b2 = native.ops().lnlstm_backward(
            d_out.contiguous(), d_hT.contiguous(), d_cT.contiguous(), xp, c0, W, g_hh, b1, g2, b2,
            c_all, hp, stats)
        h_prev = torch.cat((h0.unsqueeze(0), out[:-1]))  # (T, B, H)
        N, H = d_hp.shape[-1], h_prev.shape[-1]
        d_W = d_hp.reshape(-1, N).t() @ h_prev.reshape(-1, H)  # all steps in one product
        return (None, d_xp, d_h0, d_c0, d_W, d_g1, d_b1 if ctx.has_bias[0] else None, d_g2,
                d_b2 if ctx.has_bias[1] else None, None)


class NativeLayerNormGRU(torch.autograd.Function):
    """`BPTT` of a stock `LayerNormGRUCell` in C++ (``csrc/layernorm.cpp``), as
    `NativeLayerNormLSTM`. ``apply(xp, h0, W_hh, g_hh, b_hh, eps) -> (h_seq, h_T)``."""

    @staticmethod
    def forward(ctx: Any, cell: Any, xp: Tensor, h0: Tensor, W: Tensor, g_hh: Tensor, b_hh: Tensor | None,
                eps: float) -> tuple[Tensor, Tensor]:
        args = [t.contiguous() for t in (xp, h0, W, g_hh)]
        b = xp.new_empty(0) if b_hh is None else b_hh.contiguous()
        out, hp, stats = native.ops().lngru_forward(*args, b, float(eps))
        ctx.has_bias, ctx.cell = b_hh is not None, cell
        ctx.save_for_backward(xp, h0, W, g_hh, b_hh, out, hp, stats)
        return out, out[-1].clone()

    @staticmethod
    def backward(ctx: Any, d_out: Tensor, d_hT: Tensor) -> tuple[Tensor | None, ...]:
        xp, h0, W, g_hh, b_hh, out, hp, stats = ctx.saved_tensors
        if keeps_graph():
            grads = recompute_grads(lambda W, xp, *rest: _bptt_steps(ctx.cell, None, W, xp, 1, rest),
                                    [W, xp, h0, g_hh, b_hh],
                                    (ctx.needs_input_grad[3], *ctx.needs_input_grad[1:3],
                                     *ctx.needs_input_grad[4:6]), [d_out, d_hT])
            return (None, grads[1], grads[2], grads[0], *grads[3:], None)
        xp, h0, W, g_hh = (t.contiguous() for t in (xp, h0, W, g_hh))
        b = xp.new_empty(0) if b_hh is None else b_hh.contiguous()
        d_xp, d_hp, d_h0, d_g, d_b = native.ops().lngru_backward(
            d_out.contiguous(), d_hT.contiguous(), xp, h0, W, g_hh, b, out, hp, stats)
        h_prev = torch.cat((h0.unsqueeze(0), out[:-1]))
        N, H = d_hp.shape[-1], h_prev.shape[-1]
        d_W = d_hp.reshape(-1, N).t() @ h_prev.reshape(-1, H)
        return None, d_xp, d_h0, d_W, d_g, d_b if ctx.has_bias else None, None


def run_cell_loop(cell: Cell, xp: Tensor, state: tuple[Tensor, ...], mask: Tensor | None,
                  masked_output: str, regularizers: Regularizers,
                  training: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
    """The loop kernel for one layer and direction: the hand-written backward when the cell offers
    it and no per-step regulariser is active (in C++ for the layer-normalised LSTM and GRU without a
    mask), else the autograd loop (with the regularisers)."""
    stepper = regularizers.wrap(cell, training)
    if stepper is cell and mask is None and fast_path_unavailable(
            [cell], "native_layernorm", dtype=xp.dtype, device=xp.device) is None:
        if cell.gates == 3:  # the GRU
            h_seq, h_T = NativeLayerNormGRU.apply(cell, xp, state[0], cell.weight_hh,  # type: ignore[no-untyped-call]  # torch's Function.apply is unannotated
                                                  cell.ln_hh_weight, cell.bias_hh, cell.eps)
            return h_seq, (h_T,)
        h_seq, h_T, c_T = NativeLayerNormLSTM.apply(  # type: ignore[no-untyped-call]  # torch's Function.apply is unannotated
            cell, xp, state[0], state[1], cell.weight_hh, cell.ln_hh_weight, cell.bias_hh,
            cell.ln_c_weight, cell.ln_c_bias, cell.eps)
        return h_seq, (h_T, c_T)
    if stepper is cell and has_bptt(cell):
        return run_bptt(cell, xp, state, mask, masked_output)
    return run_loop(stepper, xp, state, mask, masked_output)
