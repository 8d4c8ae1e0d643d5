"""Element-wise merges of a list of same-shaped tensors: `Add`, `Subtract`, `Multiply`, `Average`,
`Maximum`, `Minimum` (`Concatenate` is in `core`). Masks combine as in Keras: a step is valid where it
is valid in every input."""
from __future__ import annotations

import torch

from rnnkit.keras.layers.layer import Layer


class _Merge(Layer):
    supports_masking = True
    n_inputs: int | None = None  # Subtract takes exactly 2

    def build(self, input_shape):
        owner = f"{type(self).__name__} '{self.name}'"
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2 or \
                not all(isinstance(s, tuple) for s in input_shape):
            raise ValueError(f"{owner}: expected a list of at least 2 inputs, got {input_shape!r}")
        if self.n_inputs is not None and len(input_shape) != self.n_inputs:
            raise ValueError(f"{owner}: expected exactly {self.n_inputs} inputs, got {len(input_shape)}")
        if len({s[1:] for s in input_shape}) != 1:
            raise ValueError(f"{owner}: the inputs must have the same shape (after the batch axis), got "
                             f"{[tuple(s) for s in input_shape]}")
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def compute_mask(self, inputs, mask):
        if not isinstance(mask, (list, tuple)) or all(m is None for m in mask):
            return None
        out = None
        for m in mask:
            if m is not None:
                out = m.to(torch.bool) if out is None else out & m.to(torch.bool)
        return out

    def forward(self, inputs, mask=None):
        xs = list(inputs)
        out = xs[0]
        for x in xs[1:]:
            out = self.merge(out, x)
        return self.finish(out, len(xs))

    def finish(self, out, n):
        return out


class Add(_Merge):
    """``x_1 + x_2 + ...``"""

    def merge(self, a, b):
        return a + b


class Subtract(_Merge):
    """``x_1 - x_2``"""

    n_inputs = 2

    def merge(self, a, b):
        return a - b


class Multiply(_Merge):
    """``x_1 * x_2 * ...``"""

    def merge(self, a, b):
        return a * b


class Average(Add):
    """``(x_1 + ... + x_n) / n``"""

    def finish(self, out, n):
        return out / n


class Maximum(_Merge):
    def merge(self, a, b):
        return torch.maximum(a, b)


class Minimum(_Merge):
    def merge(self, a, b):
        return torch.minimum(a, b)
