"""Keras's optimizers with Keras's update rules and defaults, over torch tensors.

The rules differ from ``torch.optim`` in details that change results (Keras's Adam puts epsilon
outside the bias correction, ``epsilon=1e-7``; its RMSprop divides by ``sqrt(v + eps)``; Adagrad
starts its accumulator at 0.1), so they are written here — each a few multi-tensor (``_foreach``)
lines — rather than approximated with ``torch.optim``. Unlike a torch optimizer, a Keras optimizer
is created before the model's weights exist: `build(params)` attaches it (``fit`` does this).

Clipping as Keras: ``clipnorm`` clips each gradient's norm separately, ``global_clipnorm`` the
norm of all gradients together, ``clipvalue`` each element. ``learning_rate`` may be a float or a
callable ``schedule(iterations) -> float``; assign ``optimizer.learning_rate = x`` to change it."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from rnnkit.keras import schedules


class Optimizer:
    """Base class. Subclasses define ``_slots`` (state tensors per parameter) and ``_update``."""

    _slots: tuple[str, ...] = ()

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **unknown):
        owner = type(self).__name__
        if unknown:
            raise TypeError(f"{owner}: unknown keyword argument(s) {sorted(unknown)}")
        for arg, value, default in (("use_ema", use_ema, False), ("ema_overwrite_frequency",
                                    ema_overwrite_frequency, None), ("loss_scale_factor",
                                    loss_scale_factor, None), ("gradient_accumulation_steps",
                                    gradient_accumulation_steps, None)):
            if value != default:
                raise ValueError(f"{owner}: {arg}={value!r} is not supported by rnnkit.keras (leave "
                                 f"it at {default!r})")
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(f"{owner}: give at most one of clipnorm, clipvalue, global_clipnorm")
        for n, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm)):
            if v is not None and (not isinstance(v, (int, float)) or v <= 0):
                raise ValueError(f"{owner}: {n} must be a positive number, got {v!r}")
        if not callable(learning_rate) and (not isinstance(learning_rate, (int, float)) or learning_rate < 0):
            raise ValueError(f"{owner}: learning_rate must be a number >= 0 or a schedule, "
                             f"got {learning_rate!r}")
        self.name = name or owner.lower()
        self._learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.iterations = 0
        self.params: list[Tensor] | None = None
        self.state: dict[str, list[Tensor]] = {}

    # -- learning rate ----------------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        lr = self._learning_rate
        return float(lr(self.iterations)) if callable(lr) else float(lr)

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        self._learning_rate = float(value) if not callable(value) else value

    lr = learning_rate

    # -- building and stepping ------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.params is not None

    def build(self, params) -> None:
        """Attach to ``params`` (the trainable ones) and create the per-parameter state."""
        self.params = [p for p in params if p.requires_grad]
        self.state = {s: [self._initial_slot(s, p) for p in self.params] for s in self._slots}

    def _initial_slot(self, slot: str, p: Tensor) -> Tensor:
        return torch.zeros_like(p, memory_format=torch.preserve_format)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params or ():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update from the gradients in ``p.grad`` (parameters without a gradient are skipped)."""
        if self.params is None:
            raise RuntimeError(f"{type(self).__name__}: call build(model.parameters()) (fit does) "
                               f"before step()")
        params, state = self.params, self.state
        grads = [p.grad for p in params if p.grad is not None]
        if len(grads) < len(params):  # skip parameters that got no gradient
            if not grads:
                return
            idx = [i for i, p in enumerate(params) if p.grad is not None]
            params = [params[i] for i in idx]
            state = {s: [v[i] for i in idx] for s, v in state.items()}
        grads = self._clip(grads)
        lr = self.learning_rate
        if self.weight_decay:
            torch._foreach_mul_(params, 1.0 - self.weight_decay * lr)
        self._update(params, grads, state, lr, self.iterations + 1)
        self.iterations += 1

    def _clip(self, grads: list[Tensor]) -> list[Tensor]:
        if self.clipvalue is not None:
            return [g.clamp(-self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            norms = torch._foreach_norm(grads)
            return [g * (self.clipnorm / torch.clamp(n, min=self.clipnorm)) for g, n in zip(grads, norms)]
        if self.global_clipnorm is not None:
            total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            scale = self.global_clipnorm / torch.clamp(total, min=self.global_clipnorm)
            return list(torch._foreach_mul(grads, scale))
        return grads

    def _update(self, params, grads, state, lr: float, t: int) -> None:
        raise NotImplementedError

    # -- Keras's introspection -------------------------------------------------------------------
    def count_variables(self) -> int:
        """Number of scalars of optimizer state, counted as Keras's summary does (slots, plus the
        iteration counter and the learning rate)."""
        if not self.built:
            return 0
        return sum(t.numel() for v in self.state.values() for t in v) + 2

    def get_config(self) -> dict:
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif callable(lr):
            raise ValueError("cannot save an optimizer whose learning_rate is a plain function; use a "
                             "keras.optimizers.schedules schedule")
        return {"learning_rate": lr, "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)


class SGD(Optimizer):
    """``m = momentum m - lr g;  p += m`` (nesterov: ``p += momentum m - lr g``); no momentum:
    ``p -= lr g``."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kw):
        super().__init__(learning_rate, **kw)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self._slots = ("momentum",) if self.momentum else ()

    def _update(self, params, grads, state, lr, t):
        if not self.momentum:
            torch._foreach_add_(params, grads, alpha=-lr)
            return
        m = state["momentum"]
        torch._foreach_mul_(m, self.momentum)
        torch._foreach_add_(m, grads, alpha=-lr)
        if self.nesterov:
            torch._foreach_add_(params, m, alpha=self.momentum)
            torch._foreach_add_(params, grads, alpha=-lr)
        else:
            torch._foreach_add_(params, m)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras's Adam: ``m += (g - m)(1 - b1)``, ``v += (g² - v)(1 - b2)``,
    ``p -= lr sqrt(1 - b2^t) / (1 - b1^t) · m / (sqrt(v) + eps)``."""

    _slots = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kw):
        super().__init__(learning_rate, **kw)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, bool(amsgrad)
        if self.amsgrad:
            self._slots = ("m", "v", "v_hat")

    def _update(self, params, grads, state, lr, t):
        m, v = state["m"], state["v"]
        alpha = lr * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        torch._foreach_lerp_(m, grads, 1 - self.beta_1)
        torch._foreach_mul_(v, self.beta_2)
        torch._foreach_addcmul_(v, grads, grads, 1 - self.beta_2)
        if self.amsgrad:
            torch._foreach_maximum_(state["v_hat"], v)
            v = state["v_hat"]
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, self.epsilon)
        torch._foreach_addcdiv_(params, m, denom, -alpha)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay ``p -= lr · weight_decay · p`` (Keras's default 0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, **kw):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kw)


class RMSprop(Optimizer):
    """Keras's RMSprop: ``v = rho v + (1 - rho) g²``, ``p -= lr g / sqrt(v + eps)`` (centered:
    ``v - mean_g²``; with momentum the increment goes through ``m = momentum m + increment``)."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kw):
        super().__init__(learning_rate, **kw)
        self.rho, self.momentum, self.epsilon, self.centered = rho, float(momentum), epsilon, bool(centered)
        self._slots = ("v",) + (("m",) if self.momentum else ()) + (("mean_g",) if self.centered else ())

    def _update(self, params, grads, state, lr, t):
        v = state["v"]
        torch._foreach_mul_(v, self.rho)
        torch._foreach_addcmul_(v, grads, grads, 1 - self.rho)
        if self.centered:
            mg = state["mean_g"]
            torch._foreach_lerp_(mg, grads, 1 - self.rho)
            denom = torch._foreach_addcmul(v, mg, mg, -1.0)
        else:
            denom = torch._foreach_add(v, 0.0)
        torch._foreach_add_(denom, self.epsilon)
        torch._foreach_sqrt_(denom)
        if self.momentum:
            m = state["m"]
            torch._foreach_mul_(m, self.momentum)
            torch._foreach_addcdiv_(m, grads, denom, lr)
            torch._foreach_sub_(params, m)
        else:
            torch._foreach_addcdiv_(params, grads, denom, -lr)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    """Keras's Adagrad: ``a += g²`` (from ``initial_accumulator_value=0.1``),
    ``p -= lr g / sqrt(a + eps)``."""

    _slots = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kw):
        super().__init__(learning_rate, **kw)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def _initial_slot(self, slot, p):
        return torch.full_like(p, self.initial_accumulator_value)

    def _update(self, params, grads, state, lr, t):
        acc = state["accumulator"]
        torch._foreach_addcmul_(acc, grads, grads)
        denom = torch._foreach_add(acc, self.epsilon)
        torch._foreach_sqrt_(denom)
        torch._foreach_addcdiv_(params, grads, denom, -lr)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


#: optimizer names `compile` understands
OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop,
                                          "adagrad": Adagrad}
_CLASSES = {c.__name__: c for c in OPTIMIZERS.values()}


def get(identifier) -> Optimizer:
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {identifier!r}; known optimizers: {sorted(OPTIMIZERS)}")
        return OPTIMIZERS[key]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise TypeError(f"optimizer must be a name ({sorted(OPTIMIZERS)}), a keras optimizer or a "
                    f"torch.optim.Optimizer, got {identifier!r}")


def serialize(opt: Optimizer) -> dict:
    return {"class_name": type(opt).__name__, "config": opt.get_config()}
