"""Process-wide Keras conventions: unique layer names, the float type, ``clear_session``.

Keras names layers ``dense``, ``dense_1``, ``dense_2``... per class for the whole session; summaries
and saved configs show those names, so we keep the same counter."""
from __future__ import annotations

import re
from collections import defaultdict

import torch

_name_counts: defaultdict[str, int] = defaultdict(int)


def floatx() -> str:
    """Keras's default float type (always ``"float32"`` here)."""
    return "float32"


def to_snake_case(name: str) -> str:
    """``SimpleRNN`` -> ``simple_rnn``, ``TimeDistributed`` -> ``time_distributed`` (Keras's rule)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    """``base`` the first time, then ``base_1``, ``base_2``, ..."""
    n = _name_counts[base]
    _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def clear_session() -> None:
    """Reset the layer-name counters (as ``keras.backend.clear_session`` / ``keras.utils.clear_session``)."""
    _name_counts.clear()


def set_keras_mask(x: torch.Tensor, mask: torch.Tensor | None) -> None:
    """Attach a time-step mask ``(B, T)`` bool to a tensor, as Keras 3's torch backend does; the next
    mask-aware layer (recurrent layers, losses, metrics) reads it from there."""
    if isinstance(x, torch.Tensor):
        setattr(x, "_keras_mask", mask)   # a dynamic attribute, as Keras's own backend keeps it


def get_keras_mask(x) -> torch.Tensor | None:
    return getattr(x, "_keras_mask", None)


def backend() -> str:
    return "torch"


def seed_generator(owner: str, seed) -> torch.Generator | None:
    """Keras's ``seed=`` of a random layer: a generator of its own (None: torch's global one)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{owner}: seed must be an int or None, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def dropout_mask(shape, keep: float, like: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """An inverted-dropout mask (values 0 or ``1 / keep``) of ``shape``, ``like``'s dtype and device.
    With a ``generator`` (a layer's ``seed``) the draw is made on the CPU, so it is reproducible."""
    if generator is None:
        return torch.bernoulli(like.new_full(tuple(shape), keep)) / keep
    m = torch.bernoulli(torch.full(tuple(shape), keep, dtype=like.dtype), generator=generator)
    return m.to(like.device) / keep
