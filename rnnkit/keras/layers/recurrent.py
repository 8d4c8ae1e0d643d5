"""`SimpleRNN`, `LSTM`, `GRU` with Keras's arguments, defaults, weight layout and masking.

Each layer owns its weights in Keras's layout (``kernel (I, G*H)``, ``recurrent_kernel (H, G*H)``,
``bias``), so ``get_weights()/set_weights()`` and ``summary()``'s counts are Keras's exactly (an
``LSTM(10)`` on 10 features has 840 parameters, not PyTorch's 880). On each call it views them in the
engine's layout (`recurrent_cells.torch_layout`: transposes and, for the GRU, a block swap — cheap,
and differentiable) and hands the time loop to the engine (`rnnkit.core.Recurrent`): PyTorch's fused
kernel when `fast_path_unavailable` returns None, else the loop kernel. It owns no maths.

Shapes (batch-first, as Keras): input ``(B, T, I)``; output ``(B, T, H)`` with ``return_sequences``,
else ``(B, H)``; states ``(B, H)`` each (``[h]``, or ``[h, c]`` for the LSTM).

Masks (from ``Embedding(mask_zero=True)`` / ``Masking`` or ``mask=`` ``(B, T)`` bool): a masked step
keeps the previous state; its output is the previous output (Keras's default) or zero
(``zero_output_for_mask=True``, which `Bidirectional` sets with ``return_sequences``), and zero before
the first valid step. A right-padded mask becomes lengths and keeps the fused kernel.
``go_backwards=True`` reads the sequence from the end and returns the outputs in that (reversed)
order, as Keras does.
"""
from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.core import Recurrent
from rnnkit.keras import activations, backend, initializers
from rnnkit.keras.layers.layer import REGULARIZER_ARGS, Layer, pop_unsupported
from rnnkit.keras.layers.recurrent_cells import (CUSTOM, STOCK, KerasGRUCell, KerasLSTMCell,
                                                KerasSimpleRNNCell, bind, torch_layout)
from rnnkit.keras.layers.rnn import RNN
from rnnkit.keras.layers.rnn_cells import create_weights


def fast_path_unavailable(layer: StockRNN, *, step_mask: bool, training: bool) -> str | None:
    """Why this call cannot use the fused kernel, or None. Keras's conditions for its cuDNN path:
    tanh activation, sigmoid recurrent activation, no recurrent dropout, ``unroll=False``,
    ``reset_after=True`` (GRU), a right-padded mask. (Keras also asks ``use_bias=True``; the engine's
    fused kernel serves bias-free layers too, and SimpleRNN with tanh or relu, with equal numbers.)"""
    if layer.use_cudnn is False:
        return "use_cudnn=False"
    act = activations.name_of(layer.activation)
    if layer.kind == "rnn" and act not in ("tanh", "relu"):
        return f"activation={act or 'a custom function'} (the fused kernel has tanh and relu)"
    if layer.kind != "rnn" and act != "tanh":
        return f"activation={act or 'a custom function'} (the fused kernel needs tanh)"
    if layer.kind != "rnn" and activations.name_of(layer.recurrent_activation) != "sigmoid":
        return "recurrent_activation is not sigmoid"
    if layer.recurrent_dropout and training:
        return "recurrent_dropout > 0 while training"
    if layer.unroll:
        return "unroll=True"
    if layer.kind == "gru" and not layer.reset_after:
        return "reset_after=False"
    if step_mask:
        return "the mask is not right-padded (or masks a whole sequence)"
    return None


def mask_to_lengths(mask: Tensor) -> Tensor | None:
    """Lengths ``(B,)`` if ``mask`` ``(B, T)`` is right-padded with no empty row, else None."""
    lengths = mask.sum(1)
    steps = torch.arange(mask.shape[1], device=mask.device)
    if bool((lengths > 0).all()) and bool((mask == (steps < lengths.unsqueeze(1))).all()):
        return lengths
    return None


class StockRNN(RNN):
    """Shared machinery of `SimpleRNN`, `LSTM` and `GRU`: Keras's ``RNN`` over a stock cell, with
    the weights on the layer itself (``layers.RNN(LSTMCell(...))`` runs through one of these)."""

    kind = "rnn"
    supports_masking = True
    # made by `create_weights` at build (declared for the type checker: nn.Module holds them)
    kernel: torch.nn.Parameter          # (I, G*H)
    recurrent_kernel: torch.nn.Parameter  # (H, G*H)
    bias: torch.nn.Parameter | None     # (G*H,), (2, 3H) for a reset_after GRU, None without bias

    def _setup(self, units, activation, recurrent_activation, use_bias, kernel_initializer,
               recurrent_initializer, bias_initializer, unit_forget_bias, dropout, recurrent_dropout,
               return_sequences, return_state, go_backwards, stateful, unroll, reset_after,
               use_cudnn, zero_output_for_mask, kwargs):
        owner = type(self).__name__
        pop_unsupported(owner, kwargs, REGULARIZER_ARGS)
        if "time_major" in kwargs:
            raise ValueError(f"{owner}: time_major is not a Keras 3 argument (Keras 3 rejects it too); "
                             f"inputs are batch-first (B, T, I): transpose time-major data with "
                             f"x.transpose(0, 1) first")
        # Keras 3 still accepts and ignores the Keras 2 `implementation` (a kernel-selection hint)
        kwargs.pop("implementation", None)
        seed = kwargs.pop("seed", None)
        Layer.__init__(self, **kwargs)  # not RNN.__init__: the cell here is implicit
        self.seed, self._generator = seed, backend.seed_generator(owner, seed)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"{owner}: units must be a positive int, got {units!r}")
        for name, p in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
                raise ValueError(f"{owner}: {name} must be a number in [0, 1), got {p!r}")
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"{owner}: use_cudnn must be 'auto', True or False, got {use_cudnn!r}")
        self.units = units
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful, self.unroll = bool(go_backwards), bool(stateful), bool(unroll)
        self.reset_after, self.use_cudnn = bool(reset_after), use_cudnn
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self._states: tuple[Tensor, ...] | None = None
        self._engines: dict = {}

    # -- build --------------------------------------------------------------------------------
    def build(self, input_shape) -> None:
        owner = f"{type(self).__name__} '{self.name}'"
        if len(input_shape) != 3:
            raise ValueError(f"{owner}: expected input with 3 dimensions (B, T, I), got shape "
                             f"{tuple(input_shape)}; give input_shape=(T, I) without the batch axis")
        if input_shape[-1] is None:
            raise ValueError(f"{owner}: the feature axis I of the input must be known, got shape "
                             f"{tuple(input_shape)}")
        self.input_size = input_shape[-1]
        create_weights(self, self.input_size)
        self.built = True

    @property
    def num_states(self) -> int:
        return 2 if self.kind == "lstm" else 1

    def compute_output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        y = (B, T, self.units) if self.return_sequences else (B, self.units)
        if self.return_state:
            return [y] + [(B, self.units)] * self.num_states
        return y

    def compute_mask(self, inputs, mask):
        out = mask if self.return_sequences else None
        if isinstance(out, (list, tuple)):
            out = out[0]
        return [out] + [None] * self.num_states if self.return_state else out

    # -- the call -----------------------------------------------------------------------------
    def forward(self, inputs: Tensor, mask: Tensor | None = None, training: bool | None = None,
                initial_state=None):
        owner = f"{type(self).__name__} '{self.name}'"
        x = inputs
        if not isinstance(x, Tensor):
            raise TypeError(f"{owner}: expected a tensor (B, T, I), got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{owner}: expected float input (B, T, I), got dtype {x.dtype}; token "
                            f"ids need an Embedding layer first")
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: expected input of shape (B, T, I={self.input_size}), "
                             f"got {tuple(x.shape)}")
        x = x.to(self.kernel.dtype)
        training = self.training if training is None else bool(training)
        B, T = x.shape[0], x.shape[1]
        if self.dropout and training:
            # one input mask per sequence, fixed over time (Keras)
            x = x * backend.dropout_mask((B, 1, x.shape[2]), 1.0 - self.dropout, x, self._generator)
        state = self._initial_state(owner, initial_state, x)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        lengths = step_mask = None
        if mask is not None:
            if tuple(mask.shape) != (B, T):
                raise ValueError(f"{owner}: mask must have shape (B={B}, T={T}), got {tuple(mask.shape)}")
            mask = mask.to(device=x.device, dtype=torch.bool)
            lengths = mask_to_lengths(mask)
            step_mask = mask if lengths is None else None
        reason = fast_path_unavailable(self, step_mask=step_mask is not None, training=training)
        if reason is not None and self.use_cudnn is True:
            raise ValueError(f"{owner}: use_cudnn=True but the fused kernel cannot serve: {reason}")
        engine = self._engine(fused=reason is None, training=training)
        bind(engine.cell, torch_layout(self.kind, self.kernel, self.recurrent_kernel, self.bias,
                                       self.units, zero_bias_hh=reason is None))
        cell = engine.cell
        if isinstance(cell, (KerasSimpleRNNCell, KerasLSTMCell, KerasGRUCell)):   # the cells with a mask
            cell.rec_mask = None
            if self.recurrent_dropout and training:
                cell.rec_mask = backend.dropout_mask((B, self.units), 1.0 - self.recurrent_dropout,
                                                            x, self._generator)
        masked_output = "zero" if self.zero_output_for_mask else "hold"
        # with lengths the engine zeroes padded outputs (as the fused kernel does); "hold" is added below
        out, new_state = engine(x, state, lengths=None if lengths is None else lengths.cpu(),
                                mask=step_mask, masked_output="zero" if lengths is not None
                                else masked_output)  # out (B, T, H)
        if self.go_backwards:
            out = out.flip(1)  # Keras returns the outputs in processing (reversed) order
        if step_mask is not None and masked_output == "hold" and state is not None:
            seen = (step_mask.flip(1) if self.go_backwards else step_mask).cumsum(1) > 0
            out = out * seen.unsqueeze(2)  # Keras: the output before the first valid step is zero
        if self.stateful:
            self._states = tuple(s.detach() for s in new_state)
        if self.return_sequences:
            if lengths is not None and masked_output == "hold" and not self.go_backwards:
                idx = torch.minimum(torch.arange(T, device=x.device), lengths.unsqueeze(1) - 1)
                out = out.gather(1, idx.unsqueeze(2).expand(-1, -1, out.shape[2]))  # hold the last output
            y = out
        elif lengths is not None and masked_output == "hold" and not self.go_backwards:
            y = out[torch.arange(B, device=x.device), lengths - 1]  # (B, H): the last valid output
        else:
            y = out[:, -1]
        return (y, *new_state) if self.return_state else y

    def _initial_state(self, owner: str, initial_state, x: Tensor):
        B = x.shape[0]
        if initial_state is None:
            if not self.stateful:
                return None
            if self._states is not None and self._states[0].shape[0] != B:
                raise ValueError(f"{owner}: the layer is stateful, so the batch size must stay "
                                 f"{self._states[0].shape[0]} until reset_states(); got a batch of {B}")
            return self._states
        states = [initial_state] if isinstance(initial_state, Tensor) else list(initial_state)
        if len(states) != self.num_states:
            raise ValueError(f"{owner}: initial_state must be a list of {self.num_states} tensor(s) "
                             f"of shape (B, {self.units}), got {len(states)}")
        out = []
        for i, s in enumerate(states):
            s = torch.as_tensor(s, dtype=x.dtype, device=x.device)
            if tuple(s.shape) != (B, self.units):
                raise ValueError(f"{owner}: initial_state[{i}] must have shape (B={B}, H={self.units}), "
                                 f"got {tuple(s.shape)}")
            out.append(s)
        return tuple(out)

    def _engine(self, *, fused: bool, training: bool) -> Recurrent:
        custom = not fused and (self.recurrent_dropout > 0 and training or self._custom_activations())
        key = (fused, custom)
        if key not in self._engines:
            I, H = self.input_size, self.units
            kw = {"nonlinearity": activations.name_of(self.activation)} if self.kind == "rnn" else {}
            if self.kind == "gru":
                kw["reset_after"] = self.reset_after
            if custom:
                kw = {"activation": self.activation}
                if self.kind != "rnn":
                    kw["recurrent_activation"] = self.recurrent_activation
                if self.kind == "gru":
                    kw["reset_after"] = self.reset_after
                cell = CUSTOM[self.kind](I, H, self.use_bias, **kw)
            else:
                cell = STOCK[self.kind](I, H, self.use_bias, **kw)
            self._engines[key] = Recurrent(cell, batch_first=True, reverse=self.go_backwards,
                                           kernel="fused" if fused else "loop")
        return self._engines[key]

    def _custom_activations(self) -> bool:
        act = activations.name_of(self.activation)
        if self.kind == "rnn":
            return act not in ("tanh", "relu")
        return act != "tanh" or activations.name_of(self.recurrent_activation) != "sigmoid"

    def reset_states(self, states=None) -> None:
        """Forget the carried state of a ``stateful`` layer (the next batch starts from zeros)."""
        self._states = None if states is None else tuple(torch.as_tensor(s) for s in states)

    reset_state = reset_states

    @property
    def states(self):
        return self._states

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self) -> dict:
        config = Layer.get_config(self)
        config.update({
            "units": self.units, "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
            "return_sequences": self.return_sequences, "return_state": self.return_state,
            "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask, "seed": self.seed})
        if self.kind != "rnn":  # Keras's SimpleRNN has no use_cudnn
            config["use_cudnn"] = self.use_cudnn
        if self.kind != "rnn":
            config["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        if self.kind == "lstm":
            config["unit_forget_bias"] = self.unit_forget_bias
        if self.kind == "gru":
            config["reset_after"] = self.reset_after
        return config

    def extra_repr(self) -> str:
        return f"{self.units}, name={self.name!r}"


class SimpleRNN(StockRNN):
    """Fully-connected RNN, ``h_t = activation(x_t W + h_{t-1} U + b)``. 27 parameters for
    ``SimpleRNN(3)`` on 5 features: ``H * (I + H + 1)``."""

    kind = "rnn"

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        # no use_cudnn: Keras's SimpleRNN rejects it (unroll=True is the way to force the loop)
        self._setup(units, activation, "sigmoid", use_bias, kernel_initializer, recurrent_initializer,
                    bias_initializer, False, dropout, recurrent_dropout, return_sequences,
                    return_state, go_backwards, stateful, unroll, True, "auto",
                    zero_output_for_mask, kwargs)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("use_cudnn", "auto") == "auto":
            config.pop("use_cudnn", None)  # written by earlier rnnkit versions
        return cls(**config)


class LSTM(StockRNN):
    """Long short-term memory (gates ``i, f, c, o``). ``4 * H * (I + H + 1)`` parameters; returns
    ``[output, h, c]`` with ``return_state``."""

    kind = "lstm"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, use_cudnn="auto",
                 zero_output_for_mask=False, **kwargs):
        self._setup(units, activation, recurrent_activation, use_bias, kernel_initializer,
                    recurrent_initializer, bias_initializer, unit_forget_bias, dropout,
                    recurrent_dropout, return_sequences, return_state, go_backwards, stateful,
                    unroll, True, use_cudnn, zero_output_for_mask, kwargs)


class GRU(StockRNN):
    """Gated recurrent unit (gates ``z, r, h``). ``reset_after=True`` (Keras's default, cuDNN's and
    PyTorch's placement) has a ``(2, 3H)`` bias: ``3 * H * (I + H + 2)`` parameters; ``False`` the
    original placement with one bias: ``3 * H * (I + H + 1)``."""

    kind = "gru"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", dropout=0.0, recurrent_dropout=0.0,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, reset_after=True, use_cudnn="auto", zero_output_for_mask=False,
                 **kwargs):
        self._setup(units, activation, recurrent_activation, use_bias, kernel_initializer,
                    recurrent_initializer, bias_initializer, False, dropout, recurrent_dropout,
                    return_sequences, return_state, go_backwards, stateful, unroll, reset_after,
                    use_cudnn, zero_output_for_mask, kwargs)
