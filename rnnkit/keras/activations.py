"""Keras's activation functions by name (``"tanh"``, ``"softmax"``...), as torch functions.

``get(identifier)`` accepts a name, None/``"linear"`` (identity) or a callable. ``name_of(fn)`` gives the
Keras name back (for configs and for the fast-kernel conditions, which need ``tanh``/``sigmoid``)."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def linear(x):
    return x


def softmax(x, axis: int = -1):
    return torch.softmax(x, dim=axis)


def log_softmax(x, axis: int = -1):
    return torch.log_softmax(x, dim=axis)


def hard_sigmoid(x):
    """Keras 3's ``hard_sigmoid``: ``relu6(x + 3) / 6``."""
    return F.relu6(x + 3.0) / 6.0


def leaky_relu(x, negative_slope: float = 0.2):
    return F.leaky_relu(x, negative_slope)


def exponential(x):
    return torch.exp(x)


ACTIVATIONS = {
    "linear": linear, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
    "softmax": softmax, "log_softmax": log_softmax, "hard_sigmoid": hard_sigmoid, "elu": F.elu,
    "selu": F.selu, "softplus": F.softplus, "softsign": F.softsign, "swish": F.silu, "silu": F.silu,
    "gelu": F.gelu, "relu6": F.relu6, "leaky_relu": leaky_relu, "exponential": exponential,
}
_NAMES = {id(fn): name for name, fn in ACTIVATIONS.items()}
_NAMES.update({id(F.relu): "relu", id(F.tanh): "tanh", id(F.sigmoid): "sigmoid"})


def get(identifier):
    """The activation function for ``identifier`` (a name, None for linear, or a callable)."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        if identifier not in ACTIVATIONS:
            raise ValueError(f"unknown activation {identifier!r}; known activations: "
                             f"{sorted(ACTIVATIONS)}")
        return ACTIVATIONS[identifier]
    if callable(identifier):
        return identifier
    raise TypeError(f"activation must be a name, None or a callable, got {type(identifier).__name__}")


def name_of(fn) -> str | None:
    """The Keras name of an activation function, or None for a user-defined callable."""
    return _NAMES.get(id(fn))


def serialize(fn):
    name = name_of(fn)
    if name is None:
        raise ValueError(f"cannot save the custom activation {fn!r}: only named activations "
                         f"({sorted(ACTIVATIONS)}) go into a config")
    return name
