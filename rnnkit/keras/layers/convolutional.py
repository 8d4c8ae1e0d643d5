"""`Conv1D`, `MaxPooling1D`, `AveragePooling1D`, `GlobalAveragePooling1D`, `GlobalMaxPooling1D`: the
layers often put in front of or behind a recurrent layer, with Keras's arguments and weight layout
(``Conv1D`` kernel ``(K, I / groups, filters)``), channels-last ``(B, T, C)`` shapes.

Padding is Keras's (TensorFlow's): ``"same"`` pads ``max((ceil(T / s) - 1) s + span - T, 0)`` steps,
the smaller half on the left; ``"causal"`` (Conv1D) pads ``(K - 1) d`` on the left only."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.keras import activations, initializers
from rnnkit.keras.layers.layer import REGULARIZER_ARGS, Layer, pop_unsupported


def _positive(owner: str, name: str, value) -> int:
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


def _channels_last(owner: str, data_format) -> None:
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{owner}: data_format={data_format!r} is not supported (channels_last only: "
                         f"inputs (B, T, C)); transpose channels-first data first")


def same_padding(length: int, span: int, stride: int) -> tuple[int, int]:
    """(left, right) padding of Keras's ``"same"``."""
    total = max((math.ceil(length / stride) - 1) * stride + span - length, 0)
    return total // 2, total - total // 2


def _out_len(length, span, stride, padding):
    if length is None:
        return None
    if padding == "valid":
        return (length - span) // stride + 1
    return math.ceil(length / stride)


class Conv1D(Layer):
    """``(B, T, I) -> (B, T', filters)``: ``y_t = activation(sum_k x_{t s + k d} W_k + b)``."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        pop_unsupported("Conv1D", kwargs, REGULARIZER_ARGS)
        super().__init__(**kwargs)
        self.filters = _positive("Conv1D", "filters", filters)
        self.kernel_size = _positive("Conv1D", "kernel_size", kernel_size)
        self.strides = _positive("Conv1D", "strides", strides)
        self.dilation_rate = _positive("Conv1D", "dilation_rate", dilation_rate)
        self.groups = _positive("Conv1D", "groups", groups)
        if padding not in ("valid", "same", "causal"):
            raise ValueError(f"Conv1D: padding must be 'valid', 'same' or 'causal', got {padding!r}")
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError("Conv1D: strides > 1 and dilation_rate > 1 cannot be combined (as in Keras)")
        _channels_last("Conv1D", data_format)
        self.padding, self.use_bias = padding, bool(use_bias)
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"Conv1D '{self.name}': expected input (B, T, I) with a known I, got "
                             f"{tuple(input_shape)}")
        channels = input_shape[-1]
        if channels % self.groups or self.filters % self.groups:
            raise ValueError(f"Conv1D '{self.name}': input channels ({channels}) and filters "
                             f"({self.filters}) must both be divisible by groups={self.groups}")
        self.input_size = channels
        shape = (self.kernel_size, channels // self.groups, self.filters)
        self.kernel = nn.Parameter(self.kernel_initializer(torch.empty(shape)))
        self.bias = nn.Parameter(self.bias_initializer(torch.empty(self.filters))) if self.use_bias else None
        self.built = True

    def _span(self) -> int:
        return (self.kernel_size - 1) * self.dilation_rate + 1

    def compute_output_shape(self, input_shape):
        T = input_shape[1]
        if self.padding == "causal":
            T = None if T is None else (T - 1) // self.strides + 1
        else:
            T = _out_len(T, self._span(), self.strides, self.padding)
        return (input_shape[0], T, self.filters)

    def forward(self, inputs: Tensor) -> Tensor:
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(f"Conv1D '{self.name}': expected input (B, T, I={self.input_size}), got "
                             f"{tuple(inputs.shape)}")
        x = inputs.to(self.kernel.dtype).transpose(1, 2)  # (B, I, T): torch's layout
        if self.padding == "causal":
            x = F.pad(x, ((self.kernel_size - 1) * self.dilation_rate, 0))
        elif self.padding == "same":
            x = F.pad(x, same_padding(x.shape[-1], self._span(), self.strides))
        y = F.conv1d(x, self.kernel.permute(2, 1, 0), self.bias, stride=self.strides,
                     dilation=self.dilation_rate, groups=self.groups)
        return self.activation(y.transpose(1, 2))  # (B, T', filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": [self.kernel_size],
                "strides": [self.strides], "padding": self.padding, "data_format": "channels_last",
                "dilation_rate": [self.dilation_rate], "groups": self.groups,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}


class _Pooling1D(Layer):
    mode = "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.pool_size = _positive(owner, "pool_size", pool_size)
        self.strides = _positive(owner, "strides", strides if strides is not None else self.pool_size)
        if padding not in ("valid", "same"):
            raise ValueError(f"{owner}: padding must be 'valid' or 'same', got {padding!r}")
        _channels_last(owner, data_format)
        self.padding = padding

    def compute_output_shape(self, input_shape):
        return (input_shape[0], _out_len(input_shape[1], self.pool_size, self.strides, self.padding),
                input_shape[2])

    def forward(self, inputs: Tensor) -> Tensor:
        x = inputs.transpose(1, 2)  # (B, C, T)
        if self.padding == "same":
            left, right = same_padding(x.shape[-1], self.pool_size, self.strides)
            if self.mode == "max":
                x = F.pad(x, (left, right), value=float("-inf"))
            else:  # Keras's average ignores the padding: divide by the count of real steps
                ones = F.pad(torch.ones_like(x[:1, :1]), (left, right))
                total = F.avg_pool1d(F.pad(x, (left, right)), self.pool_size, self.strides)
                count = F.avg_pool1d(ones, self.pool_size, self.strides)
                return (total / count).transpose(1, 2)
        pool = F.max_pool1d if self.mode == "max" else F.avg_pool1d
        return pool(x, self.pool_size, self.strides).transpose(1, 2)

    def get_config(self):
        return {**super().get_config(), "pool_size": [self.pool_size], "strides": [self.strides],
                "padding": self.padding, "data_format": "channels_last"}


class MaxPooling1D(_Pooling1D):
    """``(B, T, C) -> (B, T', C)``: the maximum of each window of ``pool_size`` steps."""

    mode = "max"


class AveragePooling1D(_Pooling1D):
    """``(B, T, C) -> (B, T', C)``: the mean of each window of ``pool_size`` steps."""

    mode = "avg"


class _GlobalPooling1D(Layer):
    supports_masking = True

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        _channels_last(type(self).__name__, data_format)
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, input_shape[2]) if self.keepdims else (input_shape[0], input_shape[2])

    def compute_mask(self, inputs, mask):
        return None

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last", "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPooling1D):
    """``(B, T, C) -> (B, C)``: the mean over time of the unmasked steps (Keras's formula)."""

    def forward(self, inputs: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            return inputs.mean(1, keepdim=self.keepdims)
        m = mask.to(torch.bool).unsqueeze(2)  # (B, T, 1)
        total = torch.where(m, inputs, 0).sum(1, keepdim=self.keepdims)
        return total / m.to(inputs.dtype).sum(1, keepdim=self.keepdims)


class GlobalMaxPooling1D(_GlobalPooling1D):
    """``(B, T, C) -> (B, C)``: the maximum over time of the unmasked steps. (Keras 3 takes the
    maximum over the padded steps too; a padded step is not data, so rnnkit leaves it out. Without
    a mask both are the same.)"""

    def forward(self, inputs: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is not None:
            inputs = torch.where(mask.to(torch.bool).unsqueeze(2), inputs, float("-inf"))
        return inputs.amax(1, keepdim=self.keepdims)
