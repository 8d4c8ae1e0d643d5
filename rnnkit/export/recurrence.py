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
from rnnkit.export.contract import ExportError


def export_unavailable(stack: nn.Module) -> str | None:
    """Why ``stack`` (an `rnnkit.core.RecurrentStack`) cannot be exported, or None when it can."""
    cells = getattr(stack, "cells", None)
    if not cells:
        return f"{type(stack).__name__} is not an rnnkit RecurrentStack (it has no cells)"
    if getattr(stack, "bidirectional", False):
        return ("the stack is bidirectional; the exported graphs run forward in time only "
                "(a one-step model cannot read tokens not seen yet)")
    for c in cells:
        if type(c).step is Cell.step:
            return f"{type(c).__name__} defines no step of its own to export"
    return None


class ExportStack(nn.Module):
    """Inference forward of a unidirectional `rnnkit.core.RecurrentStack` in exportable operators.

    ``forward(x (T, B, I), states) -> (out (T, B, H_out), states)`` and
    ``step(x (B, I), states) -> (out (B, H_out), states)``; ``states`` is the stack's tuple
    (``(h,)`` or ``(h, c)``, each ``(L, B, ·)``). Dropout between layers is off (inference); per-step
    regularisers take their inference form (`rnnkit.core.regularizers`: zoneout's expectation).
    The stack's parameters are shared, not copied."""

    def __init__(self, stack: nn.Module):
        super().__init__()
        reason = export_unavailable(stack)
        if reason:
            raise ExportError(f"cannot export this recurrent stack: {reason}")
        self.stack = stack

    def _steppers(self):
        regs = getattr(self.stack, "regularizers", None)
        cells = self.stack.cells  # re-pointed at the stack's parameters
        return [c if regs is None else regs.wrap(c, False) for c in cells], cells

    def forward(self, x: Tensor, states: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        steppers, cells = self._steppers()
        finals: list[list[Tensor]] = [[] for _ in states]
        layer_in = x
        for k, (stepper, cell) in enumerate(zip(steppers, cells)):
            xp = cell.project_inputs(layer_in)                     # (T, B, G*H): one product

            def body(carry, xp_t, stepper=stepper):
                out, new = stepper.step(xp_t, carry)
                # scan may not return a tensor that aliases its carry: the output is a copy
                return tuple(new), out.clone()

            last, layer_in = scan(body, tuple(s[k] for s in states), xp)  # (T, B, H_out)
            for f, s in zip(finals, last):
                f.append(s)
        return layer_in, tuple(_stack(f) for f in finals)

    def step(self, x: Tensor, states: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        steppers, cells = self._steppers()
        finals: list[list[Tensor]] = [[] for _ in states]
        for k, (stepper, cell) in enumerate(zip(steppers, cells)):
            x, new = stepper.step(cell.project_inputs(x), tuple(s[k] for s in states))  # (B, H_out)
            for f, s in zip(finals, new):
                f.append(s)
        return x, tuple(_stack(f) for f in finals)


def _stack(tensors: list[Tensor]) -> Tensor:
    """``L`` tensors ``(B, ·)`` -> ``(L, B, ·)`` (``unsqueeze`` for one layer keeps the graph small)."""
    if len(tensors) == 1:
        return tensors[0].unsqueeze(0)
    return torch.stack(tensors)
