"""`Recurrent(cell)`: one cell run over time in one direction — the engine's basic layer, and the one
place where a layer's kernel is chosen and run (`RecurrentStack` composes these layers).

Shapes: B batch, T time, I input, H_out the cell's output width."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.cells import Cell
from rnnkit.core import checks
from rnnkit.core.bptt import run_cell_loop
from rnnkit.core.fast_paths import fast_path_unavailable
from rnnkit.core.kernels import KERNELS, reverse_padded, run_fused_padded
from rnnkit.core.regularizers import Regularizers
from rnnkit.core.scan import scan_layer


class Recurrent(nn.Module):
    """Run ``cell`` over ``x`` ``(T, B, I)`` (``(B, T, I)`` with ``batch_first``), forward or
    (``reverse=True``) backward, from ``state`` (a tuple of ``(B, ·)`` tensors, or zeros).

    ``forward(x, state=None, *, lengths=None, mask=None, masked_output="zero")`` returns
    ``(out, state)``: ``out`` ``(T, B, H_out)`` (or batch-first) and the final state tuple.

    - ``lengths`` ``(B,)``: sequence b is valid for ``t < lengths[b]``; its state stops updating
      after its last step, padded outputs are zero, and the reversed direction starts at each
      sequence's own last step (PyTorch's packed-sequence semantics).
    - ``mask`` ``(B, T)`` bool (Keras semantics): masked steps keep the state; their output is zero
      (``masked_output="zero"``) or the carried output (``"hold"``). With ``reverse`` the whole time
      axis is reversed, mask included (Keras ``go_backwards``).

    ``kernel``: "auto", "fused", "scan" (cells linear in the state) or "loop"; the choice is
    ``.kernel``, and ``.fast_path_unavailable(path)`` says why a fast path cannot serve.
    ``recurrent_dropout``, ``zoneout``, ``weight_drop``: see `rnnkit.core.regularizers` (off by
    default)."""

    def __init__(self, cell: Cell, *, batch_first: bool = False, reverse: bool = False,
                 kernel: str = "auto", check_finite: bool = False, recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0, weight_drop: float = 0.0, owner: str = "Recurrent") -> None:
        super().__init__()
        if not isinstance(cell, Cell):
            raise TypeError(f"{owner}: cell must be an rnnkit.cells.Cell, got {type(cell).__name__}")
        if kernel not in KERNELS:
            raise ValueError(f"{owner}: kernel must be one of {KERNELS}, got {kernel!r}")
        self.regularizers = Regularizers.checked(owner, [cell], recurrent_dropout, zoneout,
                                                 weight_drop)
        self.cell, self.batch_first, self.reverse = cell, batch_first, reverse
        self.check_finite, self._requested_kernel = check_finite, kernel
        check_kernel(owner, kernel, [cell], self.regularizers)

    # -- the choice ------------------------------------------------------------------------------
    def fast_path_unavailable(self, path: str = "fused", **call: Any) -> str | None:
        """Why ``path`` (`rnnkit.core.fast_paths.PATHS`) cannot run this layer, or None; ``call``:
        the call's ``step_mask``, ``dtype``, ``lengths``, ``device``."""
        return layers_fast_path_unavailable([self.cell], self.regularizers, path, **call)

    @property
    def kernel(self) -> str:
        """The kernel ``forward`` uses for inputs without a per-step mask: "fused", "scan" or "loop"."""
        return choose_kernel(self._requested_kernel, [self.cell], self.regularizers)

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, x: Tensor, state: Tensor | Sequence[Tensor] | None = None, *,
                lengths: Tensor | Sequence[int] | None = None, mask: Tensor | None = None,
                masked_output: str = "zero") -> tuple[Tensor, tuple[Tensor, ...]]:
        owner = f"Recurrent({type(self.cell).__name__})"
        checks.check_input(owner, x, self.cell.input_size, self.batch_first, self.check_finite)
        if x.dim() != 3:
            raise checks.ShapeError(f"{owner}: expected input with 3 dimensions, got shape {tuple(x.shape)}")
        if self.batch_first:
            x = x.transpose(0, 1)
        T, B = x.shape[0], x.shape[1]
        if lengths is not None:
            lengths = checks.check_lengths(owner, lengths, B, T)
            if mask is not None:
                raise ValueError(f"{owner}: give either lengths= or mask=, not both")
            if bool((lengths == T).all()):
                lengths = None
        m = None
        if mask is not None:
            m = checks.check_mask(owner, mask, B, T).transpose(0, 1).unsqueeze(2)  # (T, B, 1)
            checks.check_masked_output(owner, masked_output)
        checks.check_dtype(owner, x, self.cell.weight_ih)
        if state is None:
            state = self.cell.init_state(B, dtype=x.dtype, device=x.device)
        else:
            state = (state,) if isinstance(state, Tensor) else tuple(state)
            shapes = self.cell.state_shapes
            if len(state) != len(shapes):
                raise checks.ShapeError(f"{owner}: expected a state of {len(shapes)} tensor(s), "
                                        f"got {len(state)}")
            for i, (s, shape) in enumerate(zip(state, shapes)):
                checks.check_state(owner, f"state[{i}]", s, (B,) + shape, x)
        kernel = self.kernel_for_call(owner, step_mask=m is not None, dtype=x.dtype)
        with self.regularizers.dropped_weights([self.cell], self.training):
            out, state = self.run(kernel, x, state, lengths, m, masked_output, self.training)
        return (out.transpose(0, 1) if self.batch_first else out), state

    def kernel_for_call(self, owner: str, **call: Any) -> str:
        """The kernel for one call; a forced kernel that cannot serve it raises, quoting why."""
        return choose_kernel(self._requested_kernel, [self.cell], self.regularizers, owner=owner,
                             **call)

    def run(self, kernel: str, x: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None,
            mask: Tensor | None, masked_output: str, training: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The layer on checked, time-major ``x`` ``(T, B, I)`` with ``kernel`` (`kernel_for_call`):
        ``state`` ``((B, ·), ...)``, ``lengths`` ``(B,)`` int64 on the CPU or None, ``mask``
        ``(T, B, 1)`` bool or None (not both). Returns ``(out (T, B, H_out), final state)``; the
        caller applies weight drop (`Regularizers.dropped_weights`) around it."""
        cell = self.cell
        if self.reverse:
            x = reverse_padded(x, lengths)
            mask = None if mask is None else mask.flip(0)
        if kernel == "fused":
            out, state = run_fused_padded([cell], x, tuple(s.unsqueeze(0) for s in state),
                                          lengths, num_layers=1, bidirectional=False,
                                          dropout=0.0, training=training)
            state = tuple(s.squeeze(0) for s in state)
        else:
            if lengths is not None:
                steps = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
                mask = (steps < lengths.to(x.device).unsqueeze(0)).unsqueeze(2)  # (T, B, 1)
            if kernel == "scan":
                out, state = scan_layer(cell, x, state, mask, masked_output)
            else:
                out, state = run_cell_loop(cell, cell.project_inputs(x), state, mask, masked_output,
                                           self.regularizers, training)
        if self.reverse:
            out = reverse_padded(out, lengths)
        return out, state


def layers_fast_path_unavailable(cells: Sequence[Cell], regularizers: Regularizers, path: str = "fused",
                                 **call: Any) -> str | None:
    """`fast_path_unavailable` for layers of ``cells`` with ``regularizers`` (a per-step
    regulariser restricts the layer to the loop kernel)."""
    restriction = regularizers.kernel_restriction() if path in ("fused", "native", "scan") else None
    return fast_path_unavailable(cells, path, **call) or restriction


def choose_kernel(requested: str, cells: Sequence[Cell], regularizers: Regularizers, *,
                  owner: str | None = None, **call: Any) -> str:
    """The kernel a layer of ``cells`` runs: ``requested`` unless "auto", then "fused" if it can
    serve, else "scan" if it can, else "loop". With ``owner`` (a call's check), a forced kernel that
    cannot serve raises a ValueError naming the reason."""
    if requested in ("auto", "fused"):
        reason = layers_fast_path_unavailable(cells, regularizers, "fused", **call)
        if reason is None:
            return "fused"
        if requested == "fused" and owner is not None:
            raise ValueError(f"{owner}: kernel='fused' cannot serve this call: {reason}")
    if requested == "auto":
        if layers_fast_path_unavailable(cells, regularizers, "scan") is None:
            return "scan"
        return "loop"
    return requested


def check_kernel(owner: str, kernel: str, cells: Sequence[Cell], regularizers: Regularizers) -> None:
    """At construction: a forced kernel that cannot serve this configuration raises, quoting why."""
    if kernel in ("fused", "scan"):
        reason = layers_fast_path_unavailable(cells, regularizers, kernel)
        if reason:
            raise ValueError(f"{owner}: kernel={kernel!r} cannot serve this configuration: {reason}")
