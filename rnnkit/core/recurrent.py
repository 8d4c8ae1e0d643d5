"""`Recurrent(cell)`: one cell run over time in one direction — the engine's basic layer.

Shapes: B batch, T time, I input, H_out the cell's output width."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.cells import Cell
from rnnkit.core import checks
from rnnkit.core.bptt import run_cell_loop
from rnnkit.core.kernels import KERNELS, fused_unavailable, reverse_padded, run_fused_padded
from rnnkit.core.regularizers import Regularizers
from rnnkit.core.scan import scan_layer, scan_unavailable


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

    ``kernel``: "auto", "fused", "scan" (cells linear in the state) or "loop"; ``recurrent_dropout``,
    ``zoneout``, ``weight_drop``: see `rnnkit.core.regularizers` (off by default)."""

    def __init__(self, cell: Cell, *, batch_first: bool = False, reverse: bool = False,
                 kernel: str = "auto", check_finite: bool = False, recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0, weight_drop: float = 0.0):
        super().__init__()
        if not isinstance(cell, Cell):
            raise TypeError(f"Recurrent: cell must be an rnnkit.cells.Cell, got {type(cell).__name__}")
        if kernel not in (*KERNELS, "scan"):
            raise ValueError(f"Recurrent: kernel must be one of {(*KERNELS, 'scan')}, got {kernel!r}")
        self.regularizers = Regularizers.checked("Recurrent", [cell], recurrent_dropout, zoneout,
                                                 weight_drop)
        reason = fused_unavailable([cell]) or self.regularizers.kernel_restriction()
        if kernel == "fused" and reason:
            raise ValueError(f"Recurrent: kernel='fused' cannot serve this configuration: {reason}")
        self._scan_unavailable = scan_unavailable([cell]) or self.regularizers.kernel_restriction()
        if kernel == "scan" and self._scan_unavailable:
            raise ValueError(f"Recurrent: kernel='scan' cannot serve this configuration: "
                             f"{self._scan_unavailable}")
        self.cell, self.batch_first, self.reverse = cell, batch_first, reverse
        self.check_finite, self._requested_kernel = check_finite, kernel

    @property
    def kernel(self) -> str:
        if self._requested_kernel == "auto":
            if not (fused_unavailable([self.cell]) or self.regularizers.kernel_restriction()):
                return "fused"
            return "loop" if self._scan_unavailable else "scan"
        return self._requested_kernel

    def forward(self, x: Tensor, state=None, *, lengths=None, mask=None,
                masked_output: str = "zero"):
        owner = f"Recurrent({type(self.cell).__name__})"
        checks.check_input(owner, x, self.cell.input_size, self.batch_first, self.check_finite)
        if x.dim() != 3:
            raise ValueError(f"{owner}: expected input with 3 dimensions, got shape {tuple(x.shape)}")
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
                raise ValueError(f"{owner}: expected a state of {len(shapes)} tensor(s), got {len(state)}")
            for i, (s, shape) in enumerate(zip(state, shapes)):
                checks.check_state(owner, f"state[{i}]", s, (B,) + shape, x)

        if self.reverse:
            x = reverse_padded(x, lengths)
            m = None if m is None else m.flip(0)
        reason = (fused_unavailable([self.cell], step_mask=m is not None, dtype=x.dtype)
                  or self.regularizers.kernel_restriction())
        if self._requested_kernel == "fused" and reason:
            raise ValueError(f"{owner}: kernel='fused' cannot serve this call: {reason}")
        with self.regularizers.dropped_weights([self.cell], self.training):
            if self._requested_kernel in ("auto", "fused") and reason is None:
                out, state = run_fused_padded([self.cell], x, tuple(s.unsqueeze(0) for s in state),
                                              lengths, num_layers=1, bidirectional=False,
                                              dropout=0.0, training=self.training)
                state = tuple(s.squeeze(0) for s in state)
            else:
                if lengths is not None:
                    steps = torch.arange(T, device=x.device).unsqueeze(1)
                    m = (steps < lengths.to(x.device).unsqueeze(0)).unsqueeze(2)
                if self._requested_kernel != "loop" and self._scan_unavailable is None:
                    out, state = scan_layer(self.cell, x, state, m, masked_output)
                else:
                    out, state = run_cell_loop(self.cell, self.cell.project_inputs(x), state, m,
                                               masked_output,
                                               self.regularizers, self.training)
        if self.reverse:
            out = reverse_padded(out, lengths)
        return (out.transpose(0, 1) if self.batch_first else out), state

