"""Exact higher-order gradients through the hand-written kernels.

rnnkit's fast kernels (`fused_rnn`, `bptt`, `scan`) compute their backward pass by hand, in C++ or
in a few large PyTorch operations, without building a graph: that backward is not itself
differentiable. When the caller keeps the graph — ``torch.autograd.grad(..., create_graph=True)``
for a gradient penalty, a Hessian-vector product, meta-learning, ``gradgradcheck`` — a kernel's
``backward`` runs with gradient mode on (`keeps_graph`), and then it falls back to `recompute_grads`:
the layer's forward is recomputed from its saved inputs with the cell's own differentiable step
(`rnnkit.cells`), and autograd differentiates that. The second derivatives are then those of the
plain loop, exactly; the first-order backward without ``create_graph`` stays the fast one.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def keeps_graph() -> bool:
    """Inside an ``autograd.Function.backward``: whether the caller asked for ``create_graph=True``
    (autograd runs a backward with gradient mode on exactly then)."""
    return torch.is_grad_enabled()


def recompute_grads(forward: Callable[..., Sequence[Tensor]], inputs: Sequence[Tensor | None],
                    needs_grad: Sequence[bool], grad_outputs: Sequence[Tensor]) -> list[Tensor | None]:
    """The gradients of ``forward(*inputs)`` against ``inputs``, as differentiable tensors.

    ``inputs``: the kernel's saved inputs (still attached to the caller's graph), None where absent;
    ``needs_grad``: which of them want a gradient (``ctx.needs_input_grad``). Each wanted input is
    differentiated through an alias (``view_as``), so that the gradient is the partial derivative
    through this call only — not also through the input's own history, which autograd covers
    when it carries the returned gradient on (an initial state computed from the same weights
    would otherwise count twice). Unused inputs get None."""
    with torch.enable_grad():
        aliases = [t.view_as(t) if (t is not None and want) else t
                   for t, want in zip(inputs, needs_grad)]
        outputs = forward(*aliases)
        wanted = [a for a, want in zip(aliases, needs_grad) if a is not None and want]
        pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o is not None and o.requires_grad]
        if not wanted or not pairs:
            return [None] * len(inputs)
        grads = iter(torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs],
                                         create_graph=True, allow_unused=True))
    return [next(grads) if (a is not None and want) else None for a, want in zip(aliases, needs_grad)]
