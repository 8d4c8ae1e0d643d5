"""The non-recurrent layers a recurrent model needs: `Dense`, `Activation`, `Dropout`, `Flatten`,
`RepeatVector`, `Reshape`, `Concatenate`, `Embedding`, `Masking`. Keras's arguments, defaults and
weight layout (``Dense`` kernel ``(I, units)``); batch-first shapes."""
from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.keras import activations, backend, initializers
from rnnkit.keras.layers.layer import REGULARIZER_ARGS, Layer, pop_unsupported


def _check_positive(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")


class Dense(Layer):
    """``y = activation(x @ kernel + bias)`` on the last axis: ``(B, ..., I) -> (B, ..., units)``;
    ``units * (I + 1)`` parameters. Passes a time-step mask through."""

    supports_masking = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        pop_unsupported("Dense", kwargs, REGULARIZER_ARGS)
        super().__init__(**kwargs)
        _check_positive("Dense", "units", units)
        self.units, self.activation, self.use_bias = units, activations.get(activation), bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Dense '{self.name}': expected input (B, ..., I) with a known I, got "
                             f"shape {tuple(input_shape)}")
        self.input_size = input_shape[-1]
        self.kernel = nn.Parameter(self.kernel_initializer(torch.empty(self.input_size, self.units)))
        self.bias = nn.Parameter(self.bias_initializer(torch.empty(self.units))) if self.use_bias else None
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, inputs: Tensor, mask=None) -> Tensor:
        if inputs.shape[-1] != self.input_size:
            raise ValueError(f"Dense '{self.name}': expected input of shape (B, ..., I={self.input_size}), "
                             f"got {tuple(inputs.shape)}")
        x = inputs.to(self.kernel.dtype)
        return self.activation(F.linear(x, self.kernel.t(), self.bias))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
                "activation": activations.serialize(self.activation),
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}


class Activation(Layer):
    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def forward(self, inputs, mask=None):
        return self.activation(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Dropout(Layer):
    """Zero a fraction ``rate`` of the inputs while training (scaled by ``1 / (1 - rate)``)."""

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be a number in [0, 1), got {rate!r}")
        self.rate, self.noise_shape = float(rate), noise_shape
        self.seed, self._generator = seed, backend.seed_generator("Dropout", seed)

    def forward(self, inputs, mask=None, training=None):
        training = self.training if training is None else training
        if not training or self.rate == 0:
            return inputs
        if self.noise_shape is None and self._generator is None:
            return F.dropout(inputs, self.rate, True)
        noise = self.noise_shape or inputs.shape
        shape = [d if d is not None else s for d, s in zip(noise, inputs.shape)]
        return inputs * backend.dropout_mask(shape, 1.0 - self.rate, inputs, self._generator)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape,
                "seed": self.seed}


class Flatten(Layer):
    """``(B, d1, d2, ...) -> (B, d1 * d2 * ...)`` (``data_format="channels_first"``: the axis after
    the batch is moved last first, as Keras does)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(f"Flatten: data_format must be 'channels_last' or 'channels_first', got "
                             f"{data_format!r}")
        self.data_format = data_format or "channels_last"

    def forward(self, inputs):
        if self.data_format == "channels_first" and inputs.dim() > 2:
            inputs = inputs.movedim(1, -1)
        return inputs.reshape(inputs.shape[0], -1)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))


class RepeatVector(Layer):
    """``(B, F) -> (B, n, F)``: feed one vector to every step (1->N and encoder-decoder models)."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        _check_positive("RepeatVector", "n", n)
        self.n = n

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"RepeatVector '{self.name}': expected input (B, F), got shape "
                             f"{tuple(input_shape)}")
        self.built = True

    def forward(self, inputs):
        return inputs.unsqueeze(1).expand(-1, self.n, -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Reshape(Layer):
    """``(B, ...) -> (B, *target_shape)`` (one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)

    def forward(self, inputs):
        return inputs.reshape(inputs.shape[0], *self.target_shape)

    def compute_output_shape(self, input_shape):
        shape = list(self.target_shape)
        if -1 in shape:
            known = math.prod(d for d in shape if d != -1)
            rest = input_shape[1:]
            shape[shape.index(-1)] = None if None in rest else math.prod(rest) // known
        return (input_shape[0], *shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Concatenate(Layer):
    """Concatenate a list of tensors along ``axis`` (masks are combined: a step is valid where it
    is valid in every input)."""

    supports_masking = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2 or \
                not all(isinstance(s, tuple) for s in input_shape):
            raise ValueError(f"Concatenate '{self.name}': expected a list of at least 2 inputs, got "
                             f"{input_shape!r}")
        self.built = True

    def forward(self, inputs, mask=None):
        return torch.cat(list(inputs), dim=self.axis)

    def compute_output_shape(self, input_shape):
        out = list(input_shape[0])
        sizes = [s[self.axis] for s in input_shape]
        out[self.axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def compute_mask(self, inputs, mask):
        if not isinstance(mask, (list, tuple)) or all(m is None for m in mask):
            return None
        masks = [m for m in mask if m is not None]
        out = masks[0]
        for m in masks[1:]:
            out = out & m
        return out

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Embedding(Layer):
    """Token ids ``(B, T)`` -> vectors ``(B, T, output_dim)`` from ``embeddings (input_dim, output_dim)``.
    With ``mask_zero=True`` id 0 is padding: the mask ``ids != 0`` flows to the next layers."""

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", mask_zero=False,
                 weights=None, input_length=None, **kwargs):
        pop_unsupported("Embedding", kwargs, REGULARIZER_ARGS)
        if input_length is not None:
            warnings.warn("Embedding: input_length is deprecated in Keras 3 and ignored; the "
                          "length is taken from the data", stacklevel=2)
        super().__init__(**kwargs)
        _check_positive("Embedding", "input_dim", input_dim)
        _check_positive("Embedding", "output_dim", output_dim)
        self.input_dim, self.output_dim, self.mask_zero = input_dim, output_dim, bool(mask_zero)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self._initial_weights = weights  # Keras's weights=[matrix]: pretrained vectors

    def build(self, input_shape):
        self.embeddings = nn.Parameter(self.embeddings_initializer(
            torch.empty(self.input_dim, self.output_dim)))
        self.built = True
        if self._initial_weights is not None:
            w = self._initial_weights
            self.set_weights(list(w) if isinstance(w, (list, tuple)) else [w])

    def forward(self, inputs: Tensor) -> Tensor:
        ids = inputs if not inputs.is_floating_point() else inputs.round()
        ids = ids.long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.input_dim):
            bad = int(ids.max()) if int(ids.max()) >= self.input_dim else int(ids.min())
            raise ValueError(f"Embedding '{self.name}': token id {bad} is out of range for "
                             f"input_dim={self.input_dim} (ids must be in [0, {self.input_dim - 1}])")
        return F.embedding(ids, self.embeddings)

    def compute_mask(self, inputs, mask):
        return (inputs != 0) if self.mask_zero else None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "mask_zero": self.mask_zero,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer)}


class Masking(Layer):
    """Mask the time steps whose features all equal ``mask_value``: the mask ``(B, T)`` flows to the
    next layers, and masked steps are zeroed (as Keras does)."""

    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def compute_mask(self, inputs, mask=None):
        return (inputs != self.mask_value).any(-1)

    def forward(self, inputs, mask=None):
        keep = self.compute_mask(inputs)
        return inputs * keep.unsqueeze(-1).to(inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
