"""Keras's ``layers.RNN(cell)``: run any cell over time.

``RNN(cell, return_sequences=, return_state=, go_backwards=, stateful=, unroll=,
zero_output_for_mask=)`` as Keras documents it. ``cell`` is a Keras cell (`rnn_cells`), a list of
cells (made a `StackedRNNCells`), or the user's own: any layer with ``state_size`` (an int, or a list
for several states) and ``call(inputs, states) -> (output, new_states)``, optionally
``output_size`` and ``get_initial_state(batch_size)``.

- A stock cell (`SimpleRNNCell`, `LSTMCell`, `GRUCell` themselves, not a subclass that changes their
  step) never steps in Python here: the layer hands the sequence to the matching stock layer
  (`recurrent.SimpleRNN` / `LSTM` / `GRU`, built on the cell's own weights), so it runs on the
  engine's fast kernels with the same masks, dropout and state handling.
- Any other cell runs in this file's loop, which owns time as Keras's does: steps in order (from
  the end with ``go_backwards``, outputs then in that reversed order), a masked step keeps the
  previous states and repeats the previous output (zero with ``zero_output_for_mask``), states
  carried between calls with ``stateful``. ``unroll`` is accepted and changes nothing: an eager loop
  and an unrolled graph compute the same numbers.

Shapes: input ``(B, T, I)``; output ``(B, T, O)`` with ``return_sequences`` else ``(B, O)``; with
``return_state`` the states follow, one entry per entry of ``state_size``."""
from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from rnnkit.keras.layers.input_layer import map_structure
from rnnkit.keras.layers.layer import Layer
from rnnkit.keras.layers.rnn_cells import StackedRNNCells, StockCell, state_list

if TYPE_CHECKING:
    from rnnkit.keras.layers.recurrent import StockRNN


def call_cell(cell, inputs: Tensor, states, training):
    """``cell(inputs, states)`` (with ``training`` when the cell's step takes it); the new states
    come back as a list."""
    step = cell.call if type(cell).call is not Layer.call else cell.forward
    if "training" in inspect.signature(step).parameters:
        out, new = cell(inputs, states, training=training)
    else:
        out, new = cell(inputs, states)
    return out, (list(new) if isinstance(new, (list, tuple)) else [new])


def is_stock(cell) -> bool:
    """A Keras cell whose step is the stock one (so the fast stock layer can run it)."""
    return isinstance(cell, StockCell) and type(cell).forward is StockCell.forward


class RNN(Layer):
    supports_masking = True
    _fast_layer: StockRNN | None   # declared for the type checker; kept in __dict__, not a submodule

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        if not isinstance(cell, Layer) or not hasattr(cell, "state_size"):
            raise ValueError(f"RNN: cell must be a Keras cell (e.g. keras.layers.LSTMCell(8)) or a "
                             f"layer with a state_size attribute and call(inputs, states), got "
                             f"{type(cell).__name__}")
        self.cell = cell
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful, self.unroll = bool(go_backwards), bool(stateful), bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self._states = None
        self.__dict__["_fast_layer"] = None  # the stock layer running a stock cell (not a module)

    @property
    def num_states(self) -> int:
        return len(state_list(self.cell.state_size))

    @property
    def output_size(self) -> int:
        size = getattr(self.cell, "output_size", None)
        return size if size is not None else _flat(state_list(self.cell.state_size))[0]

    def build(self, input_shape) -> None:
        owner = f"RNN '{self.name}'"
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"{owner}: expected input (B, T, I) with a known I, got shape "
                             f"{tuple(input_shape)}")
        step_shape = (input_shape[0], input_shape[-1])
        self.cell._ensure_built(step_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        B, T, O = input_shape[0], input_shape[1], self.output_size
        y = (B, T, O) if self.return_sequences else (B, O)
        if not self.return_state:
            return y
        states = map_structure(lambda s: (B, s), state_list(self.cell.state_size), leaf=int)
        return [y] + states

    def compute_mask(self, inputs, mask):
        out = mask[0] if isinstance(mask, (list, tuple)) else mask
        out = out if self.return_sequences else None
        return [out] + [None] * self.num_states if self.return_state else out

    # -- the call ---------------------------------------------------------------------------------
    def forward(self, inputs: Tensor, mask: Tensor | None = None, training: bool | None = None,
                initial_state=None):
        owner = f"RNN '{self.name}'"
        if not isinstance(inputs, Tensor) or inputs.dim() != 3:
            got = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise ValueError(f"{owner}: expected input of shape (B, T, I), got {got}")
        training = self.training if training is None else bool(training)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if is_stock(self.cell):
            return self._fast()(inputs, mask=mask, training=training, initial_state=initial_state)
        return self._loop(owner, inputs, mask, training, initial_state)

    def _fast(self):
        """The stock layer for a stock cell, sharing the cell's weights (re-pointed at every call,
        so ``.to()``, ``load_state_dict`` and ``set_weights`` on the cell are always seen)."""
        from rnnkit.keras.layers.recurrent import GRU, LSTM, SimpleRNN
        cell = self.cell
        if self._fast_layer is None:
            cls = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}[cell.kind]
            layer = cls(cell.units, **cell.layer_options(), return_sequences=self.return_sequences,
                        return_state=self.return_state, go_backwards=self.go_backwards,
                        stateful=self.stateful, unroll=self.unroll,
                        zero_output_for_mask=self.zero_output_for_mask, name=f"{self.name}_kernel")
            layer.built, layer.input_size = True, cell.input_size
            self.__dict__["_fast_layer"] = layer
        layer = self._fast_layer
        layer.kernel, layer.recurrent_kernel, layer.bias = cell.kernel, cell.recurrent_kernel, cell.bias
        layer.zero_output_for_mask = self.zero_output_for_mask  # Bidirectional may set it later
        return layer.forward

    def _loop(self, owner, x, mask, training, initial_state):
        B, T = x.shape[0], x.shape[1]
        sizes = state_list(self.cell.state_size)
        states = self._initial_states(owner, initial_state, sizes, x)
        if hasattr(self.cell, "reset_dropout_mask"):
            self.cell.reset_dropout_mask()
        if mask is not None:
            if tuple(mask.shape) != (B, T):
                raise ValueError(f"{owner}: mask must have shape (B={B}, T={T}), got {tuple(mask.shape)}")
            mask = mask.to(device=x.device, dtype=torch.bool)
        outputs, prev = [], None
        for t in (range(T - 1, -1, -1) if self.go_backwards else range(T)):
            out, new = call_cell(self.cell, x[:, t], states, training)
            if mask is not None:
                keep = mask[:, t].unsqueeze(1)  # (B, 1): masked rows keep their states and output
                new = _where(keep, new, states)
                held = torch.zeros_like(out) if prev is None or self.zero_output_for_mask else prev
                out = torch.where(keep, out, held)
            outputs.append(out)
            states, prev = new, out
        if self.stateful:
            self._states = map_structure(lambda s: s.detach(), states, leaf=Tensor)
        y = torch.stack(outputs, 1) if self.return_sequences else outputs[-1]  # (B, T, O) / (B, O)
        return [y] + list(states) if self.return_state else y

    def _initial_states(self, owner, initial_state, sizes, x):
        B = x.shape[0]
        if initial_state is None and self.stateful and self._states is not None:
            initial_state = self._states
        if initial_state is None:
            if hasattr(self.cell, "get_initial_state"):
                got = self.cell.get_initial_state(batch_size=B)
                return list(got) if isinstance(got, (list, tuple)) else [got]
            return map_structure(lambda s: x.new_zeros(B, s), sizes, leaf=int)
        given = [initial_state] if isinstance(initial_state, Tensor) else list(initial_state)
        if len(_flat(given)) != len(_flat(sizes)):
            raise ValueError(f"{owner}: initial_state must hold {len(_flat(sizes))} tensor(s) "
                             f"(state_size {self.cell.state_size}), got {len(_flat(given))}")
        return map_structure(lambda s: torch.as_tensor(s, dtype=x.dtype, device=x.device), given,
                             leaf=Tensor)

    def reset_states(self, states=None) -> None:
        """Forget the carried state of a ``stateful`` layer (the next batch starts from zeros)."""
        self._states = states
        if self._fast_layer is not None:
            self._fast_layer.reset_states(states)

    reset_state = reset_states

    @property
    def states(self):
        return self._fast_layer.states if self._fast_layer is not None else self._states

    def get_config(self) -> dict:
        from rnnkit.keras.layers import serialize
        return {**super().get_config(), "cell": serialize(self.cell),
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from rnnkit.keras.layers import deserialize
        config = dict(config)
        config["cell"] = deserialize(config["cell"], custom_objects)
        return cls(**config)


def _flat(x) -> list:
    out: list = []
    map_structure(out.append, x, leaf=(int, Tensor))
    return out


def _where(keep: Tensor, new, old):
    """``new`` where ``keep`` (B, 1), else ``old``, over nested lists of states."""
    if isinstance(new, (list, tuple)):
        return [_where(keep, n, o) for n, o in zip(new, old)]
    return torch.where(keep, new, old)
