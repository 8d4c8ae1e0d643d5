"""``keras.random``: random tensors with Keras 3's seeding rules, on torch.

- ``seed=<int>``: stateless — the same seed gives the same values on every call;
- ``seed=SeedGenerator(s)``: each call advances the generator's state ``[s, k]`` (``k += 1``), so
  calls differ but a program replays the same stream;
- ``seed=None``: a fresh draw from a process-wide generator.

A state ``[s, k]`` seeds a torch generator with ``(s + k) mod 2^32`` and then draws with the same
torch function Keras 3's torch backend uses, so seeded draws equal Keras's on the CPU (the tests
compare them). Results are torch tensors (float32 unless ``dtype`` says otherwise)."""
from __future__ import annotations

import random as _py_random

import torch

from rnnkit.keras.ops import _t, torch_dtype


class SeedGenerator:
    """The state ``[seed, counter]`` of a random stream (``seed=None``: a random seed)."""

    def __init__(self, seed: int | None = None, name: str | None = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"SeedGenerator: seed must be an int or None, got {seed!r}")
        self._initial_seed = seed
        self.name = name or "seed_generator"
        self.state = [seed if seed is not None else _py_random.randint(1, int(1e9)), 0]

    def next(self, ordered: bool = True) -> list[int]:
        current = list(self.state)
        if ordered:
            self.state[1] += 1
        else:  # Keras's unordered stream for the global generator
            self.state = [(s + 1) * 5387 % 933199 for s in self.state]
        return current

    def get_config(self) -> dict:
        return {"seed": self._initial_seed, "name": self.name}


_global: SeedGenerator | None = None


def _generator(seed) -> torch.Generator:
    global _global
    if isinstance(seed, SeedGenerator):
        first, second = seed.next()
    elif isinstance(seed, int) and not isinstance(seed, bool):
        first, second = seed, 0
    elif seed is None:
        _global = _global or SeedGenerator()
        first, second = _global.next(ordered=False)
    else:
        raise ValueError(f"seed must be an int, a SeedGenerator or None, got {seed!r}")
    return torch.Generator().manual_seed(int(first + second) & 0xFFFFFFFF)


def _float(dtype):
    return torch_dtype(dtype) or torch.float32


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return torch.normal(mean, stddev, size=tuple(shape), generator=_generator(seed), dtype=_float(dtype))


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    size = tuple(shape) or (1,)
    u = torch.rand(size=size, generator=_generator(seed), dtype=_float(dtype))
    return (minval + (maxval - minval) * u).reshape(tuple(shape))


def randint(shape, minval, maxval, dtype="int32", seed=None):
    return torch.randint(minval, maxval, size=tuple(shape), generator=_generator(seed),
                         dtype=torch_dtype(dtype))


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal values redrawn (from 4 candidates) until within two standard deviations."""
    x = normal(tuple(shape) + (4,), 0.0, 1.0, dtype, seed)
    pick = ((x > -2) & (x < 2)).max(-1, keepdim=True)[1]
    return x.gather(-1, pick).squeeze(-1) * stddev + mean


def categorical(logits, num_samples, dtype="int32", seed=None):
    probs = torch.softmax(_t(logits), dim=-1)
    return torch.multinomial(probs, num_samples, replacement=True,
                             generator=_generator(seed)).to(torch_dtype(dtype))


def dropout(inputs, rate, noise_shape=None, seed=None):
    """Zero a fraction ``rate`` of ``inputs`` and scale the rest by ``1 / (1 - rate)``."""
    x = _t(inputs)
    if rate == 1.0:
        return torch.zeros_like(x)
    if rate == 0.0:
        return x
    keep = 1.0 - rate
    shape = x.shape if noise_shape is None else [d if d is not None else s
                                                 for d, s in zip(noise_shape, x.shape)]
    mask = torch.bernoulli(torch.full(tuple(shape), keep), generator=_generator(seed)).bool()
    return torch.where(mask.broadcast_to(x.shape), x / keep, torch.zeros_like(x))


def shuffle(x, axis=0, seed=None):
    """``x`` with its entries along ``axis`` permuted (independently for each leading index)."""
    t = _t(x)
    perm = torch.rand(t.shape[:axis + 1], generator=_generator(seed)).argsort(axis)
    for _ in range(t.dim() - axis - 1):
        perm = perm.unsqueeze(-1)
    return t.gather(axis, perm.repeat(*[1] * (axis + 1), *t.shape[axis + 1:]))


__all__ = ["SeedGenerator", "normal", "uniform", "randint", "truncated_normal", "categorical",
           "dropout", "shuffle"]
