"""A recurrent stack's inference forward in plain PyTorch operators, for `torch.export` and ONNX.

The engine (`rnnkit.core`) runs a stack through the fastest kernel it has: PyTorch's fused RNN
functions, or rnnkit's C++ kernels (`torch.ops.rnnkit.*`, the min-cell scan, the layer-norm BPTT).
Neither can be exported — the C++ ops exist only where rnnkit is installed, and a Python loop over
time would be unrolled into a graph of fixed length. `ExportStack` runs the same cells through their
own ``project_inputs`` and ``step`` (the loop kernel's arithmetic), with the time loop written as
``torch._higher_order_ops.scan``: `torch.export` keeps it as one loop over a symbolic number of
steps, and the ONNX exporter writes it as an ONNX ``Scan``. So the exported graph has a dynamic
sequence length, and its numbers are those of the engine's loop kernel (which the engine's tests hold
equal to every other kernel); `rnnkit.export` checks them against the engine after each export.

Shapes: B batch, T time, I input, H_out the cells' output width, L layers.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch._higher_order_ops.scan import scan

from rnnkit.cells import Cell
from rnnkit.core.kernels import reverse_padded
from rnnkit.export.contract import ExportError


def export_unavailable(stack: nn.Module, *, bidirectional: bool = False) -> str | None:
    """Why ``stack`` (an `rnnkit.core.RecurrentStack`) cannot be exported, or None when it can.
    ``bidirectional``: whether the caller exports whole sequences only (no one-step graph), where a
    bidirectional stack is fine."""
    cells = getattr(stack, "cells", None)
    if not cells:
        return f"{type(stack).__name__} is not an rnnkit RecurrentStack (it has no cells)"
    if getattr(stack, "bidirectional", False) and not bidirectional:
        return ("the stack is bidirectional; the exported graphs run forward in time only "
                "(a one-step model cannot read tokens not seen yet)")
    for c in cells:
        if type(c).step is Cell.step:
            return f"{type(c).__name__} defines no step of its own to export"
    return None


class ExportStack(nn.Module):
    """Inference forward of an `rnnkit.core.RecurrentStack` in exportable operators.

    ``forward(x (T, B, I), states, lengths=None) -> (out (T, B, D*H_out), states)`` and
    ``step(x (B, I), states) -> (out (B, H_out), states)``; ``states`` is the stack's tuple
    (``(h,)`` or ``(h, c)``, each ``(L*D, B, ·)``, ordered layer 0 forward, layer 0 backward, ...).
    With ``lengths`` ``(B,)`` int64 the forward is the engine's ``lengths=``: a sequence's state stops
    changing past its length (the final states are those at its last real step), its outputs there are
    zeros, and a backward direction starts at its last real step (`reverse_padded`). A bidirectional
    stack (``bidirectional=True``) exports its whole-sequence forward only; ``step`` needs a
    unidirectional one. Dropout between layers is off (inference); per-step regularisers take their
    inference form (`rnnkit.core.regularizers`: zoneout's expectation). The stack's parameters are
    shared, not copied."""

    def __init__(self, stack: nn.Module, *, bidirectional: bool = False):
        super().__init__()
        reason = export_unavailable(stack, bidirectional=bidirectional)
        if reason:
            raise ExportError(f"cannot export this recurrent stack: {reason}")
        self.stack = stack
        self.directions = 2 if getattr(stack, "bidirectional", False) else 1

    def _steppers(self):
        regs = getattr(self.stack, "regularizers", None)
        cells = self.stack.cells  # re-pointed at the stack's parameters
        return [c if regs is None else regs.wrap(c, False) for c in cells], cells

    def forward(self, x: Tensor, states: tuple[Tensor, ...],
                lengths: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
        steppers, cells = self._steppers()
        D = self.directions
        finals: list[list[Tensor]] = [[] for _ in states]
        # (T, B, 1) 1.0 at real steps, 0.0 past each length (a float: scan carries it as one more input)
        keep = None if lengths is None else \
            (torch.arange(x.shape[0]).unsqueeze(1) < lengths.unsqueeze(0)).unsqueeze(2).to(x.dtype)
        layer_in = x
        for k in range(len(cells) // D):
            outs = []
            for d in range(D):
                i = k * D + d
                xin = layer_in if d == 0 else reverse_padded(layer_in, lengths)
                last, out = _run(steppers[i], cells[i], xin, tuple(s[i] for s in states), keep)
                outs.append(out if d == 0 else reverse_padded(out, lengths))
                for f, s in zip(finals, last):
                    f.append(s)
            layer_in = outs[0] if D == 1 else torch.cat(outs, 2)           # (T, B, D*H_out)
        return layer_in, tuple(_stack(f) for f in finals)

    def step(self, x: Tensor, states: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        if self.directions != 1:
            raise ExportError("a bidirectional stack has no one-step form (its backward direction "
                              "reads steps not seen yet)")
        steppers, cells = self._steppers()
        finals: list[list[Tensor]] = [[] for _ in states]
        for k, (stepper, cell) in enumerate(zip(steppers, cells)):
            x, new = stepper.step(cell.project_inputs(x), tuple(s[k] for s in states))  # (B, H_out)
            for f, s in zip(finals, new):
                f.append(s)
        return x, tuple(_stack(f) for f in finals)


def _run(stepper, cell, x: Tensor, state: tuple[Tensor, ...], keep: Tensor | None):
    """One layer and direction over ``x`` ``(T, B, I)`` as one scan: ``(final state, out (T, B, H))``;
    with ``keep`` ``(T, B, 1)`` the state is held and the output zero where it is 0."""
    xp = cell.project_inputs(x)                                    # (T, B, G*H): one product
    if keep is None:
        def body(carry, xp_t):
            out, new = stepper.step(xp_t, carry)
            # scan may not return a tensor that aliases its carry: the output is a copy
            return tuple(new), out.clone()
        return scan(body, state, xp)

    def masked_body(carry, inputs):
        xp_t, k_t = inputs                                         # (B, G*H), (B, 1)
        out, new = stepper.step(xp_t, carry)
        real = k_t > 0
        held = tuple(torch.where(real.view(real.shape[0], *([1] * (n.dim() - 1))), n, c)
                     for n, c in zip(new, carry))
        return held, torch.where(real, out, torch.zeros_like(out))
    return scan(masked_body, state, (xp, keep))


def _stack(tensors: list[Tensor]) -> Tensor:
    """``L`` tensors ``(B, ·)`` -> ``(L, B, ·)`` (``unsqueeze`` for one layer keeps the graph small)."""
    if len(tensors) == 1:
        return tensors[0].unsqueeze(0)
    return torch.stack(tensors)
