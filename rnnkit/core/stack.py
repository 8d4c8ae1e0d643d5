"""`RecurrentStack`: a stacked (deep), optionally bidirectional recurrent network of one cell type.

It owns time for its cells: lengths and packed sequences, direction, stacking, dropout between layers,
and the choice of kernel (`rnnkit.core.kernels`). Parameters carry PyTorch's names
(``weight_ih_l{k}{_reverse}``, ...), so ``load_state_dict`` moves weights to and from ``torch.nn``.

Shapes: B batch, T time, I input, H hidden, H_out output width (H, or P with an LSTM projection),
L layers, D directions (1 or 2).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NoReturn, cast

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from rnnkit.cells import CELLS, Cell, GRUCell, LSTMCell, SimpleRNNCell
from rnnkit.core import checks
from rnnkit.core.kernels import KERNELS, run_fused_padded
from rnnkit.core.precision import check_precision
from rnnkit.core.recurrent import Recurrent, check_kernel, choose_kernel, layers_fast_path_unavailable
from rnnkit.core.regularizers import Regularizers


class RecurrentStack(nn.Module):
    """``num_layers`` layers of ``cell`` (a name in `rnnkit.cells.CELLS` or a `Cell` subclass),
    each run forward (and, if ``bidirectional``, backward) over time.

    ``forward(x, hx=None, *, lengths=None, mask=None)`` takes ``x`` ``(T, B, I)`` (``(B, T, I)`` with
    ``batch_first``), ``(T, I)`` for one unbatched sequence, or a ``PackedSequence``; returns
    ``(out, states)`` with ``out`` ``(T, B, D*H_out)`` and ``states`` a tuple of ``(L*D, B, ·)``
    tensors (``(h_n,)``, or ``(h_n, c_n)`` for an LSTM), PyTorch's layout.

    Each layer and direction is a `rnnkit.core.Recurrent` (``.layers``), which chooses and runs the
    kernel; when the whole-sequence fused kernel can serve, the stack hands all layers and
    directions to it in one call instead (the same numbers, one call).

    ``kernel``: ``"auto"`` (fused kernel when it can serve, else the scan for cells whose
    recurrence is linear in the state, else the loop), ``"fused"``, ``"scan"`` or ``"loop"``. The
    choice is visible as ``.kernel``; ``.fast_path_unavailable(path)`` says why a fast path
    (`rnnkit.core.fast_paths`) cannot serve.

    ``recurrent_dropout``, ``zoneout``, ``weight_drop``: regularisers of the recurrence, off by
    default (`rnnkit.core.regularizers`). ``precision``: "fp32" or "bf16" (the fused kernels' matrix
    products in bf16 with fp32 accumulation and states, `rnnkit.core.precision`; the loop and scan
    kernels run in the parameters' dtype)."""

    #: the cells and their per-layer engines, kept out of the module tree (set with
    #: ``object.__setattr__``) so parameter names match torch.nn's
    _cells: tuple[Cell, ...]
    _layers: tuple[Recurrent, ...]

    def __init__(self, cell: str | type[Cell], input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, kernel: str = "auto", check_finite: bool = False,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0, weight_drop: float = 0.0,
                 precision: str = "fp32", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, **cell_kwargs: Any) -> None:
        super().__init__()
        owner = type(self).__name__
        cell_cls = _resolve_cell(owner, cell)
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"{owner}: num_layers must be an int >= 1, got {num_layers!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"{owner}: dropout must be a number in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{owner}: dropout={dropout} adds dropout after all but the last recurrent "
                          "layer, so it does nothing with num_layers=1", stacklevel=2)
        if kernel not in KERNELS:
            raise ValueError(f"{owner}: kernel must be one of {KERNELS}, got {kernel!r}")
        for name, flag in (("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(flag, bool):  # 1 or "True" would be accepted silently otherwise
                raise TypeError(f"{owner}: {name} must be a bool, got {type(flag).__name__} {flag!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.check_finite = bidirectional, check_finite
        self.num_directions = 2 if bidirectional else 1
        cells: list[Cell] = []
        for k in range(num_layers):
            for d in range(self.num_directions):
                layer_in = input_size if k == 0 else cells[-1].output_size * self.num_directions
                c = cell_cls(layer_in, hidden_size, bias, **cell_kwargs)
                for pname, p in c.named_parameters():
                    self.register_parameter(_torch_name(pname, k, d), p)
                cells.append(c)
        self.proj_size = getattr(cells[0], "proj_size", 0)
        self._requested_kernel = kernel
        self.precision = check_precision(owner, precision)
        self.regularizers = Regularizers.checked(owner, cells, recurrent_dropout, zoneout, weight_drop)
        check_kernel(owner, kernel, cells, self.regularizers)
        layers = tuple(Recurrent(c, reverse=i % self.num_directions == 1, kernel=kernel,
                                 recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                                 weight_drop=weight_drop, owner=owner) for i, c in enumerate(cells))
        # The cells (and their layers) are kept out of the module tree so that parameters carry
        # PyTorch's flat names; `_cells_in_sync` re-points them at this module's parameters.
        object.__setattr__(self, "_cells", tuple(cells))
        object.__setattr__(self, "_layers", layers)
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    # -- introspection --------------------------------------------------------------------------
    @property
    def kernel(self) -> str:
        """The kernel ``forward`` uses for inputs without a per-step mask: "fused", "scan" or "loop"."""
        return choose_kernel(self._requested_kernel, self._cells, self.regularizers)

    def fast_path_unavailable(self, path: str = "fused", **call: Any) -> str | None:
        """Why ``path`` (`rnnkit.core.fast_paths.PATHS`: "fused", "native", "scan", ...) cannot run
        this stack, or None; ``call``: a call's ``step_mask``, ``dtype``, ``lengths``, ``device``
        (by default those of the parameters, for "native"). Asking about "native" builds the C++
        kernels on first use."""
        if path == "native" and not call:
            w = self._cells[0].weight_ih
            call = {"dtype": w.dtype, "device": w.device}
        return layers_fast_path_unavailable(self._cells, self.regularizers, path, **call)

    @property
    def fused_unavailable(self) -> str | None:
        """The former name of ``fast_path_unavailable("fused")`` (documented in earlier releases)."""
        return self.fast_path_unavailable("fused")

    @property
    def native_unavailable(self) -> str | None:
        """The former name of ``fast_path_unavailable("native")`` (documented in earlier releases)."""
        return self.fast_path_unavailable("native")

    @property
    def cells(self) -> tuple[Cell, ...]:
        """The cells, layer-major then direction (index ``k * D + d``), bound to this module's
        parameters."""
        return self._cells_in_sync()

    @property
    def layers(self) -> tuple[Recurrent, ...]:
        """The single-layer engines, layer-major then direction, bound to this module's parameters."""
        self._cells_in_sync()
        return self._layers

    @property
    def output_size(self) -> int:
        return self._cells[0].output_size

    def _cells_in_sync(self) -> tuple[Cell, ...]:
        # by attribute where it is not in ``_parameters``: a parametrisation or weight norm replaces
        # a parameter with a computed tensor of the same name (the dictionary first: cheaper)
        params = self._parameters
        for i, c in enumerate(self._cells):
            k, d = divmod(i, self.num_directions)
            for pname in c._parameters:
                if c._parameters[pname] is not None:
                    name = _torch_name(pname, k, d)
                    c._parameters[pname] = params[name] if name in params else getattr(self, name)
        return self._cells

    def flatten_parameters(self) -> None:
        """Accepted for compatibility with ``torch.nn.RNNBase``; nothing to do on the CPU."""

    # -- torch.nn.RNNBase's attributes (weight norm and user code read them) ----------------------
    @property
    def _flat_weights_names(self) -> list[str]:
        """Parameter names in ``torch.nn.RNNBase``'s flat order (layer, direction, then
        ``weight_ih, weight_hh, bias_ih, bias_hh, weight_hr``, those that exist)."""
        return [_torch_name(pname, *divmod(i, self.num_directions))
                for i, c in enumerate(self._cells) for pname, p in c._parameters.items() if p is not None]

    @property
    def _flat_weights(self) -> list[Tensor]:
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """The parameters per layer and direction, as ``torch.nn.RNNBase.all_weights``."""
        return [[getattr(self, _torch_name(pname, *divmod(i, self.num_directions)))
                 for pname, p in c._parameters.items() if p is not None]
                for i, c in enumerate(self._cells)]

    @property
    def mode(self) -> str:
        """``torch.nn.RNNBase.mode``: "LSTM", "GRU", "RNN_TANH" or "RNN_RELU" for the stock cells,
        else the cell's name in `rnnkit.cells.CELLS` in capitals (e.g. "LNLSTM")."""
        cell = self._cells[0]
        if isinstance(cell, SimpleRNNCell):
            return "RNN_" + cell.nonlinearity.upper()
        if isinstance(cell, (LSTMCell, GRUCell)):
            return "LSTM" if isinstance(cell, LSTMCell) else "GRU"
        names = [name for name, cls in CELLS.items() if cls is type(cell)]
        return (names[0] if names else type(cell).__name__).upper()

    def __prepare_scriptable__(self) -> NoReturn:
        """``torch.jit.script`` calls this first: TorchScript (in maintenance upstream) cannot
        compile this module's Python kernels and keyword-only ``lengths=``; say what works."""
        raise TypeError(f"{type(self).__name__}: torch.jit.script cannot compile rnnkit's recurrent "
                        f"modules (Python kernels, keyword-only lengths=); use torch.export.export(model, "
                        f"(x,)) or torch.jit.trace(model, x) instead, or torch.compile(model)")

    # -- forward --------------------------------------------------------------------------------
    def forward(self, input: Tensor | PackedSequence, hx: Tensor | Sequence[Tensor] | None = None, *,
                lengths: Tensor | Sequence[int] | None = None, mask: Tensor | None = None,
                masked_output: str = "zero") -> tuple[Tensor | PackedSequence, tuple[Tensor, ...]]:
        owner = type(self).__name__
        cells = self._cells_in_sync()
        packed = isinstance(input, PackedSequence)
        unbatched = False
        if packed:
            if lengths is not None or mask is not None:
                raise ValueError(f"{owner}: a PackedSequence already carries its lengths; "
                                 "do not pass lengths= or mask= with it")
            checks.check_input(owner, input.data.unsqueeze(0), self.input_size, False,
                               self.check_finite)
            # `packed` is the isinstance above, which mypy does not carry over
            x, lengths = pad_packed_sequence(cast(PackedSequence, input))  # (T, B, I), original batch order
        else:
            checks.check_input(owner, input, self.input_size, self.batch_first, self.check_finite)
            x = cast(Tensor, input)  # not packed
            if x.dim() == 2:
                unbatched, x = True, x.unsqueeze(1)
            elif self.batch_first:
                x = x.transpose(0, 1)
        T, B = x.shape[0], x.shape[1]
        if lengths is not None and mask is not None:
            raise ValueError(f"{owner}: give either lengths= or mask=, not both")
        if lengths is not None:
            lengths = checks.check_lengths(owner, lengths, B, T)
            if not packed and bool((lengths == T).all()):
                lengths = None  # nothing is padded
        if mask is not None:
            mask = checks.check_mask(owner, mask, B, T)
            checks.check_masked_output(owner, masked_output)
        checks.check_dtype(owner, x, self._cells[0].weight_ih)
        states = self._initial_states(owner, hx, x, B, unbatched)

        kernel = self._layers[0].kernel_for_call(owner, step_mask=mask is not None, dtype=x.dtype)
        with self.regularizers.dropped_weights(cells, self.training):
            if kernel == "fused":  # all layers and directions in one call
                out, states = run_fused_padded(
                    cells, input if packed else x, states, lengths, num_layers=self.num_layers,
                    bidirectional=self.bidirectional, dropout=self.dropout, training=self.training,
                    precision=self.precision)
            else:
                out, states = self._forward_layers(kernel, x, states, lengths, mask, masked_output)
                if packed:
                    out = _repack(out, cast(PackedSequence, input))
        if packed:
            return out, states
        if unbatched:
            return out.squeeze(1), tuple(s.squeeze(1) for s in states)
        return (out.transpose(0, 1) if self.batch_first else out), states

    def _initial_states(self, owner: str, hx: Tensor | Sequence[Tensor] | None, x: Tensor, B: int,
                        unbatched: bool) -> tuple[Tensor, ...]:
        LD = self.num_layers * self.num_directions
        shapes = [(LD, B) + s for s in self._cells[0].state_shapes]
        if hx is None:
            return tuple(torch.zeros(s, dtype=x.dtype, device=x.device) for s in shapes)
        hx = (hx,) if isinstance(hx, Tensor) else tuple(hx)
        names = ("h0", "c0")[:len(shapes)]
        if len(hx) != len(shapes):
            raise checks.ShapeError(f"{owner}: expected the initial state as {len(shapes)} "
                                    f"tensor(s) {names}, got {len(hx)}")
        out = []
        for name, h, shape in zip(names, hx, shapes):
            if unbatched and isinstance(h, Tensor) and h.dim() == 2:
                h = h.unsqueeze(1)
            checks.check_state(owner, name, h, shape, x)
            out.append(h)
        return tuple(out)

    def _forward_layers(self, kernel: str, x: Tensor, states: tuple[Tensor, ...], lengths: Tensor | None,
                        mask: Tensor | None, masked_output: str) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Layer by layer, each direction a `Recurrent` (``mask`` ``(B, T)`` or None)."""
        D = self.num_directions
        m = None if mask is None else mask.transpose(0, 1).unsqueeze(2)  # (T, B, 1)
        finals: list[list[Tensor]] = [[] for _ in states]
        layer_in = x
        for k in range(self.num_layers):
            outs = []
            for d in range(D):
                i = k * D + d
                out, s_n = self._layers[i].run(kernel, layer_in, tuple(s[i] for s in states),
                                               lengths, m, masked_output, self.training)
                outs.append(out)
                for f, s in zip(finals, s_n):
                    f.append(s)
            layer_in = outs[0] if D == 1 else torch.cat(outs, 2)
            if self.dropout and self.training and k < self.num_layers - 1:
                layer_in = nn.functional.dropout(layer_in, self.dropout, True)
        return layer_in, tuple(torch.stack(f) for f in finals)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s + self.regularizers.extra_repr() + f", kernel={self.kernel!r}"


def _torch_name(pname: str, layer: int, direction: int) -> str:
    return f"{pname}_l{layer}" + ("_reverse" if direction else "")


def _resolve_cell(owner: str, cell: str | type[Cell]) -> type:
    if isinstance(cell, str):
        if cell not in CELLS:
            raise ValueError(f"{owner}: unknown cell {cell!r}; known cells: {sorted(CELLS)}")
        return CELLS[cell]
    if isinstance(cell, type) and issubclass(cell, Cell):
        return cell
    raise TypeError(f"{owner}: cell must be a name in {sorted(CELLS)} or a Cell subclass, got {cell!r}")


def _repack(out: Tensor, like: PackedSequence) -> PackedSequence:
    """Pack padded time-major ``out`` ``(T, B, ·)`` (original batch order) with ``like``'s layout."""
    order = like.sorted_indices if like.sorted_indices is not None else torch.arange(out.shape[1])
    out = out.index_select(1, order.to(out.device))  # (T, B, ·), longest first
    T = out.shape[0]
    steps = torch.arange(T).unsqueeze(1)
    lengths_sorted = (like.batch_sizes.unsqueeze(0) > torch.arange(out.shape[1]).unsqueeze(1)).sum(1)
    valid = (steps < lengths_sorted.unsqueeze(0)).to(out.device)  # (T, B)
    return PackedSequence(out[valid], like.batch_sizes, like.sorted_indices, like.unsorted_indices)
