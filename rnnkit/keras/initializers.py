"""Keras's initializers (names and classes) filling torch tensors in Keras's layout.

Fans follow Keras: for a 2-D kernel ``(in, out)``, ``fan_in = in`` and ``fan_out = out`` (the transpose
of PyTorch's convention), so ``glorot_uniform`` on a recurrent layer's ``(I, G*H)`` kernel draws from
``U(-sqrt(6 / (I + G*H)), +)``, exactly as Keras does."""
from __future__ import annotations

import inspect

import math

import torch


def _fans(shape) -> tuple[int, int]:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``init(tensor)`` fills ``tensor`` in place (under no_grad) and returns it. With a
    ``seed`` the draw is the same at every call (as Keras's seeded initializers) and leaves torch's
    global random state untouched."""

    seed = None

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self.seed is None:
                self.fill(tensor)
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.seed)
                    self.fill(tensor)
        return tensor

    def fill(self, t: torch.Tensor) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


def _seed(init) -> dict:
    return {} if init.seed is None else {"seed": init.seed}


class Zeros(Initializer):
    def fill(self, t):
        t.zero_()


class Ones(Initializer):
    def fill(self, t):
        t.fill_(1.0)


class Constant(Initializer):
    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def fill(self, t):
        t.fill_(self.value)

    def get_config(self):
        return {"value": self.value}


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed=None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def fill(self, t):
        t.uniform_(self.minval, self.maxval)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **_seed(self)}


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def fill(self, t):
        t.normal_(self.mean, self.stddev)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **_seed(self)}


class VarianceScaling(Initializer):
    """Keras's VarianceScaling: ``scale / fan`` variance, uniform or truncated normal."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                 seed=None):
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def fill(self, t):
        fan_in, fan_out = _fans(tuple(t.shape))
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        var = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            bound = math.sqrt(3.0 * var)
            t.uniform_(-bound, bound)
        elif self.distribution == "untruncated_normal":
            t.normal_(0.0, math.sqrt(var))
        else:  # truncated at two standard deviations, rescaled as Keras does
            std = math.sqrt(var) / 0.87962566103423978
            torch.nn.init.trunc_normal_(t, 0.0, std, -2 * std, 2 * std)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, **_seed(self)}


class GlorotUniform(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "uniform", seed)

    def get_config(self):
        return _seed(self)


class GlorotNormal(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)

    def get_config(self):
        return _seed(self)


class HeUniform(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "uniform", seed)

    def get_config(self):
        return _seed(self)


class HeNormal(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed)

    def get_config(self):
        return _seed(self)


class LecunUniform(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_in", "uniform", seed)

    def get_config(self):
        return _seed(self)


class Orthogonal(Initializer):
    """An orthogonal matrix (rows or columns orthonormal, whichever is fewer), times ``gain``."""

    def __init__(self, gain: float = 1.0, seed=None):
        self.gain, self.seed = gain, seed

    def fill(self, t):
        torch.nn.init.orthogonal_(t, self.gain)

    def get_config(self):
        return {"gain": self.gain, **_seed(self)}


INITIALIZERS = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_uniform": RandomUniform,
    "uniform": RandomUniform, "random_normal": RandomNormal, "normal": RandomNormal,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_uniform": HeUniform,
    "he_normal": HeNormal, "lecun_uniform": LecunUniform, "orthogonal": Orthogonal,
    "variance_scaling": VarianceScaling,
}
_CLASSES = {cls.__name__: cls for cls in INITIALIZERS.values()}


def get(identifier) -> Initializer:
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        if identifier not in INITIALIZERS and identifier not in _CLASSES:
            raise ValueError(f"unknown initializer {identifier!r}; known initializers: "
                             f"{sorted(INITIALIZERS)}")
        return (INITIALIZERS.get(identifier) or _CLASSES[identifier])()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        cls = _CLASSES[identifier["class_name"]]
        config = dict(identifier.get("config", {}))
        known = inspect.signature(cls.__init__).parameters
        extra = {k: v for k, v in config.items() if k not in known}
        if any(v is not None for v in extra.values()):  # Keras 3 writes e.g. input_axes=None
            raise ValueError(f"initializer {cls.__name__}: unsupported settings {extra}")
        return cls(**{k: v for k, v in config.items() if k in known})
    raise TypeError(f"initializer must be a name or an Initializer, got {identifier!r}")


def serialize(init: Initializer):
    """A name when the initializer has its default configuration, else ``{class_name, config}``."""
    for name, cls in INITIALIZERS.items():
        if type(init) is cls and init.get_config() == cls().get_config():
            return name
    return {"class_name": type(init).__name__, "config": init.get_config()}
