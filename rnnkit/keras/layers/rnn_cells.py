"""Keras's cells: `SimpleRNNCell`, `LSTMCell`, `GRUCell` (one step, Keras's weights) and
`StackedRNNCells` (several cells as one, each feeding the next).

A cell owns Keras-shaped weights (``kernel (I, G*H)``, ``recurrent_kernel (H, G*H)``, ``bias``) and
computes one step, ``call(inputs (B, I), states) -> (output (B, H), new_states)``, as Keras
documents; ``state_size`` is ``H`` (``[H, H]`` for the LSTM). The step's maths is not written here:
the cell views its weights in the engine's layout (`recurrent_cells.torch_layout`) and calls the
engine cell's ``step`` (`recurrent_cells.CUSTOM`, which takes any Keras activation). Inside
``layers.RNN`` a stock cell does not step at all: the layer runs the whole sequence on the engine's
fast kernels (`rnn.RNN`).

Dropout is Keras's: one input mask and one recurrent mask per sequence, drawn at the first step
after ``reset_dropout_mask()`` (which ``RNN`` calls at the start of each sequence)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.keras import activations, backend, initializers
from rnnkit.keras.layers.layer import REGULARIZER_ARGS, Layer, pop_unsupported
from rnnkit.keras.layers.recurrent_cells import CUSTOM, GATES, bind, torch_layout


def create_weights(owner, input_size: int) -> None:
    """Create ``owner``'s ``kernel``, ``recurrent_kernel`` and ``bias`` (Keras's shapes and
    initialisation: ``unit_forget_bias`` sets the LSTM's forget-gate bias to one; a ``reset_after``
    GRU has a ``(2, 3H)`` bias). ``owner`` is a stock layer or a cell: both carry the options."""
    I, H, G = input_size, owner.units, GATES[owner.kind]
    owner.kernel = nn.Parameter(owner.kernel_initializer(torch.empty(I, G * H)))
    owner.recurrent_kernel = nn.Parameter(owner.recurrent_initializer(torch.empty(H, G * H)))
    if owner.use_bias:
        if owner.kind == "gru" and owner.reset_after:
            bias = owner.bias_initializer(torch.empty(2, G * H))
        elif owner.kind == "lstm" and owner.unit_forget_bias:
            bias = torch.cat([owner.bias_initializer(torch.empty(H)), torch.ones(H),
                              owner.bias_initializer(torch.empty(2 * H))])
        else:
            bias = owner.bias_initializer(torch.empty(G * H))
        owner.bias = nn.Parameter(bias)
    else:
        owner.register_parameter("bias", None)


class StockCell(Layer):
    """Shared machinery of the three Keras cells (subclasses set ``kind`` and the constructor)."""

    kind = "rnn"
    # made by `create_weights` at build (declared for the type checker: nn.Module holds them)
    kernel: nn.Parameter                # (I, G*H)
    recurrent_kernel: nn.Parameter      # (H, G*H)
    bias: nn.Parameter | None           # (G*H,), (2, 3H) for a reset_after GRU, None without bias

    def _setup(self, owner, units, activation, recurrent_activation, use_bias, kernel_initializer,
               recurrent_initializer, bias_initializer, unit_forget_bias, dropout, recurrent_dropout,
               seed, reset_after, kwargs):
        pop_unsupported(owner, kwargs, REGULARIZER_ARGS)
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"{owner}: units must be a positive int, got {units!r}")
        for name, p in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
                raise ValueError(f"{owner}: {name} must be a number in [0, 1), got {p!r}")
        self.units, self.use_bias = units, bool(use_bias)
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.unit_forget_bias, self.reset_after = bool(unit_forget_bias), bool(reset_after)
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        self.seed, self._generator = seed, backend.seed_generator(owner, seed)
        self._masks: tuple | None = None
        self._engine_cell = None

    @property
    def state_size(self):
        return [self.units, self.units] if self.kind == "lstm" else self.units

    @property
    def output_size(self) -> int:
        return self.units

    def build(self, input_shape) -> None:
        if input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': the feature axis of the input "
                             f"must be known, got shape {tuple(input_shape)}")
        self.input_size = input_shape[-1]
        create_weights(self, self.input_size)
        self.built = True

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def reset_dropout_mask(self) -> None:
        """Forget this sequence's dropout masks (the next step draws new ones)."""
        self._masks = None

    reset_recurrent_dropout_mask = reset_dropout_mask

    def get_initial_state(self, batch_size: int) -> list[Tensor]:
        p = self.kernel
        return [p.new_zeros(batch_size, self.units) for _ in range(2 if self.kind == "lstm" else 1)]

    def forward(self, inputs: Tensor, states, training: bool | None = None):
        """One step: ``inputs`` ``(B, I)``, ``states`` a list (``[h]``, or ``[h, c]``) ``(B, H)`` ->
        ``(output (B, H), new_states)``."""
        owner = f"{type(self).__name__} '{self.name}'"
        if not isinstance(inputs, Tensor) or inputs.dim() != 2 or inputs.shape[1] != self.input_size:
            got = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise ValueError(f"{owner}: expected inputs of shape (B, I={self.input_size}), got {got}")
        states = [states] if isinstance(states, Tensor) else list(states)
        n = 2 if self.kind == "lstm" else 1
        if len(states) != n:
            raise ValueError(f"{owner}: expected {n} state tensor(s) of shape (B, {self.units}), got "
                             f"{len(states)}")
        training = self.training if training is None else bool(training)
        x = inputs.to(self.kernel.dtype)
        cell = self._cell()
        bind(cell, torch_layout(self.kind, self.kernel, self.recurrent_kernel, self.bias, self.units,
                                zero_bias_hh=False))
        cell.rec_mask = None
        if training and (self.dropout or self.recurrent_dropout):
            if self._masks is None or self._masks[0] is not None and self._masks[0].shape != x.shape:
                self._masks = (
                    backend.dropout_mask(x.shape, 1 - self.dropout, x, self._generator)
                    if self.dropout else None,
                    backend.dropout_mask((x.shape[0], self.units), 1 - self.recurrent_dropout, x,
                                         self._generator) if self.recurrent_dropout else None)
            if self._masks[0] is not None:
                x = x * self._masks[0]
            cell.rec_mask = self._masks[1]
        h, new_state = cell.step(cell.project_inputs(x), tuple(s.to(x.dtype) for s in states))
        return h, list(new_state)

    def _cell(self):
        """The engine cell whose ``step`` this cell runs (its parameters are re-bound per call)."""
        if self._engine_cell is None:
            kw = {"activation": self.activation}
            if self.kind != "rnn":
                kw["recurrent_activation"] = self.recurrent_activation
            if self.kind == "gru":
                kw["reset_after"] = self.reset_after
            cell = CUSTOM[self.kind](self.input_size, self.units, self.use_bias, **kw)
            self.__dict__["_engine_cell"] = cell  # kept out of the module tree: it owns no weights
        return self._engine_cell

    def layer_options(self) -> dict:
        """The arguments of the stock layer (`SimpleRNN`/`LSTM`/`GRU`) that runs this cell fast."""
        out = {"activation": self.activation, "use_bias": self.use_bias, "dropout": self.dropout,
               "recurrent_dropout": self.recurrent_dropout, "seed": self.seed}
        if self.kind != "rnn":
            out["recurrent_activation"] = self.recurrent_activation
        if self.kind == "gru":
            out["reset_after"] = self.reset_after
        return out

    def get_config(self) -> dict:
        config = {**super().get_config(), "units": self.units,
                  "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                  "kernel_initializer": initializers.serialize(self.kernel_initializer),
                  "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                  "bias_initializer": initializers.serialize(self.bias_initializer),
                  "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                  "seed": self.seed}
        if self.kind != "rnn":
            config["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        if self.kind == "lstm":
            config["unit_forget_bias"] = self.unit_forget_bias
        if self.kind == "gru":
            config["reset_after"] = self.reset_after
        return config

    def extra_repr(self) -> str:
        return f"{self.units}, name={self.name!r}"


class SimpleRNNCell(StockCell):
    """``h_t = activation(x_t W + h_{t-1} U + b)``; ``state_size = units``."""

    kind = "rnn"

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", dropout=0.0,
                 recurrent_dropout=0.0, seed=None, **kwargs):
        self._setup("SimpleRNNCell", units, activation, "sigmoid", use_bias, kernel_initializer,
                    recurrent_initializer, bias_initializer, False, dropout, recurrent_dropout, seed,
                    True, kwargs)


class LSTMCell(StockCell):
    """Keras's LSTM step (gates ``i, f, c, o``); ``state_size = [units, units]`` (``[h, c]``)."""

    kind = "lstm"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, dropout=0.0, recurrent_dropout=0.0,
                 seed=None, **kwargs):
        self._setup("LSTMCell", units, activation, recurrent_activation, use_bias, kernel_initializer,
                    recurrent_initializer, bias_initializer, unit_forget_bias, dropout,
                    recurrent_dropout, seed, True, kwargs)


class GRUCell(StockCell):
    """Keras's GRU step (gates ``z, r, h``; ``reset_after`` as the `GRU` layer); ``state_size = units``."""

    kind = "gru"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", dropout=0.0, recurrent_dropout=0.0, reset_after=True,
                 seed=None, **kwargs):
        self._setup("GRUCell", units, activation, recurrent_activation, use_bias, kernel_initializer,
                    recurrent_initializer, bias_initializer, False, dropout, recurrent_dropout, seed,
                    reset_after, kwargs)


def state_list(size) -> list:
    """A cell's ``state_size`` as a list (an int is one state)."""
    return list(size) if isinstance(size, (list, tuple)) else [size]


class StackedRNNCells(Layer):
    """Several cells as one: cell ``k`` reads cell ``k-1``'s output; ``state_size`` is the list of
    the cells' state sizes, and the states are that nested list (``[[h, c], [h]]``)."""

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(cells, (list, tuple)) or not cells:
            raise ValueError(f"StackedRNNCells: cells must be a non-empty list of cells, got {cells!r}")
        for c in cells:
            if not isinstance(c, Layer) or not hasattr(c, "state_size"):
                raise ValueError(f"StackedRNNCells: each cell needs a state_size and a call(inputs, "
                                 f"states), got {type(c).__name__}")
        self.cells = nn.ModuleList(cells)

    @property
    def state_size(self) -> list:
        return [c.state_size for c in self.cells]

    @property
    def output_size(self) -> int:
        last = self.cells[-1]
        return getattr(last, "output_size", None) or state_list(last.state_size)[0]

    def build(self, input_shape) -> None:
        shape = tuple(input_shape)
        for c in self.cells:
            c._ensure_built(shape)
            size = getattr(c, "output_size", None) or state_list(c.state_size)[0]
            shape = (shape[0], size)
        self.built = True

    def reset_dropout_mask(self) -> None:
        for c in self.cells:
            if hasattr(c, "reset_dropout_mask"):
                c.reset_dropout_mask()

    def forward(self, inputs: Tensor, states, training: bool | None = None):
        from rnnkit.keras.layers.rnn import call_cell
        new_states = []
        for c, s in zip(self.cells, states):
            inputs, s = call_cell(c, inputs, [s] if isinstance(s, Tensor) else s, training)
            new_states.append(s)
        return inputs, new_states

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size)

    def get_config(self) -> dict:
        from rnnkit.keras.layers import serialize
        return {**super().get_config(), "cells": [serialize(c) for c in self.cells]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from rnnkit.keras.layers import deserialize
        config = dict(config)
        config["cells"] = [deserialize(c, custom_objects) for c in config["cells"]]
        return cls(**config)
