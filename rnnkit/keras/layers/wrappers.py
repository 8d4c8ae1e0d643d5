"""`Bidirectional` and `TimeDistributed`: layers that wrap another layer and own no maths."""
from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from rnnkit.keras.layers.layer import Layer
from rnnkit.keras.layers.recurrent import RNN

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def clone(layer: Layer, **overrides) -> Layer:
    """A fresh (unbuilt) copy of ``layer`` from its config, with ``overrides``."""
    config = layer.get_config()
    config.pop("batch_input_shape", None)
    config.update(overrides)
    from_config: Callable[..., Layer] = type(layer).from_config   # some take custom_objects too
    if "custom_objects" in inspect.signature(from_config).parameters:
        # the classes inside (a user's cell, say) rebuild from their own configs too
        known = {type(m).__name__: type(m) for m in layer.modules() if isinstance(m, Layer)}
        return from_config(config, custom_objects=known)
    return from_config(config)


class Bidirectional(Layer):
    """Run ``layer`` forward and a copy of it backward (``go_backwards`` flipped), then merge:
    ``"concat"`` ``(..., 2H)``, ``"sum"``, ``"mul"``, ``"ave"`` ``(..., H)``, or None (both outputs).
    With ``return_state`` it returns ``[output, *forward_states, *backward_states]``. Weights: the
    forward layer's, then the backward layer's (Keras's order)."""

    supports_masking = True

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, RNN):
            raise TypeError(f"Bidirectional: layer must be a recurrent layer (SimpleRNN, LSTM, GRU), "
                            f"got {type(layer).__name__}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        self.forward_layer = clone(layer, name="forward_" + layer.name)
        if backward_layer is None:
            self.backward_layer = clone(layer, name="backward_" + layer.name,
                                        go_backwards=not layer.go_backwards)
        else:
            if not isinstance(backward_layer, RNN) or backward_layer.go_backwards == layer.go_backwards:
                raise ValueError("Bidirectional: backward_layer must be a recurrent layer with "
                                 "go_backwards opposite to the forward layer's")
            self.backward_layer = backward_layer
        for sub in (self.forward_layer, self.backward_layer):
            sub.zero_output_for_mask = sub.return_sequences  # Keras forces this
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self._initial_weights = weights

    def build(self, input_shape):
        self.forward_layer._ensure_built(input_shape)
        self.backward_layer._ensure_built(input_shape)
        self.built = True
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)

    def compute_output_shape(self, input_shape):
        fwd = self.forward_layer.compute_output_shape(input_shape)
        bwd = self.backward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            fwd, states = fwd[0], fwd[1:] + bwd[1:]
            bwd = bwd[0]
        if self.merge_mode == "concat":
            out = [fwd[:-1] + (fwd[-1] + bwd[-1],)]
        elif self.merge_mode is None:
            out = [fwd, bwd]
        else:
            out = [fwd]
        out += states
        return out[0] if len(out) == 1 else out

    def compute_mask(self, inputs, mask):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        out = mask if self.return_sequences else None
        n_out = 2 if self.merge_mode is None else 1
        n_states = 2 * self.forward_layer.num_states if self.return_state else 0
        if n_out + n_states == 1:
            return out
        return [out] * n_out + [None] * n_states

    def forward(self, inputs, mask=None, training=None, initial_state=None):
        fwd_state = bwd_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            fwd_state, bwd_state = initial_state[:half], initial_state[half:]
        y = self.forward_layer(inputs, mask=mask, training=training, initial_state=fwd_state)
        y_rev = self.backward_layer(inputs, mask=mask, training=training, initial_state=bwd_state)
        states = ()
        if self.return_state:
            states = tuple(y[1:]) + tuple(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev.flip(1)  # back to the original time order
        if self.merge_mode == "concat":
            out = (torch.cat([y, y_rev], -1),)
        elif self.merge_mode == "sum":
            out = (y + y_rev,)
        elif self.merge_mode == "ave":
            out = ((y + y_rev) / 2,)
        elif self.merge_mode == "mul":
            out = (y * y_rev,)
        else:
            out = (y, y_rev)
        out = out + states
        return out[0] if len(out) == 1 else out

    def reset_states(self):
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    def get_config(self):
        from rnnkit.keras.layers import serialize
        config = {**super().get_config(), "merge_mode": self.merge_mode,
                  "layer": serialize(clone(self.forward_layer, name=self.forward_layer.name[8:]))}
        if self.backward_layer.name != "backward_" + self.forward_layer.name[8:]:
            config["backward_layer"] = serialize(self.backward_layer)
        return config

    @classmethod
    def from_config(cls, config):
        from rnnkit.keras.layers import deserialize
        config = dict(config)
        config["layer"] = deserialize(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize(config["backward_layer"])
        return cls(**config)


class TimeDistributed(Layer):
    """Apply ``layer`` to every time step: ``(B, T, ...) -> (B, T, ...)`` by folding time into the
    batch (one call of the inner layer, not a loop). Passes the time-step mask through."""

    supports_masking = True

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed: layer must be a Keras layer, got {type(layer).__name__}")
        self.layer = layer

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(f"TimeDistributed '{self.name}': expected input (B, T, ...) with at least "
                             f"3 dimensions, got shape {tuple(input_shape)}")
        self.layer._ensure_built((None,) + tuple(input_shape[2:]))
        self.built = True

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return (input_shape[0], input_shape[1]) + tuple(inner[1:])

    def forward(self, inputs, mask=None):
        B, T = inputs.shape[0], inputs.shape[1]
        y = self.layer(inputs.reshape(B * T, *inputs.shape[2:]))
        return y.reshape(B, T, *y.shape[1:])

    def get_config(self):
        from rnnkit.keras.layers import serialize
        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config):
        from rnnkit.keras.layers import deserialize
        return cls(**{**config, "layer": deserialize(config["layer"])})
