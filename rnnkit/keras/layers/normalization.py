"""`LayerNormalization` and `BatchNormalization` with Keras's arguments, defaults (``epsilon=1e-3``,
``momentum=0.99``) and weights (``gamma``, ``beta``; plus the non-trainable ``moving_mean``,
``moving_variance`` of batch normalization, in that order)."""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from rnnkit.keras import initializers
from rnnkit.keras.layers.layer import REGULARIZER_ARGS, Layer, pop_unsupported

_NORM_EXTRA = REGULARIZER_ARGS + ("beta_regularizer", "gamma_regularizer", "beta_constraint",
                                  "gamma_constraint")


def _last_axis(owner: str, axis) -> None:
    if axis not in (-1, [-1], (-1,)):
        raise ValueError(f"{owner}: only axis=-1 (the feature axis) is supported, got {axis!r}")


class LayerNormalization(Layer):
    """``y = gamma * (x - mean) / sqrt(var + epsilon) + beta`` over the last axis. ``rms_scaling`` is
    Keras 3's deprecated option, computed as Keras computes it (``y = gamma * x / sqrt(var +
    epsilon)``, not a true RMS norm), so saved models give the same numbers. Passes the mask."""

    supports_masking = True

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", **kwargs):
        pop_unsupported("LayerNormalization", kwargs, _NORM_EXTRA)
        super().__init__(**kwargs)
        _last_axis("LayerNormalization", axis)
        self.epsilon, self.center, self.scale = float(epsilon), bool(center), bool(scale)
        self.rms_scaling = bool(rms_scaling)
        if self.rms_scaling:
            warnings.warn("LayerNormalization: rms_scaling=True is deprecated in Keras 3 (it scales by "
                          "the variance, not the root mean square); kept for Keras's numbers", stacklevel=2)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)

    def build(self, input_shape):
        C = input_shape[-1]
        if C is None:
            raise ValueError(f"LayerNormalization '{self.name}': the last axis must be known, got "
                             f"{tuple(input_shape)}")
        self.gamma = nn.Parameter(self.gamma_initializer(torch.empty(C))) if self.scale else None
        self.beta = nn.Parameter(self.beta_initializer(torch.empty(C))) \
            if self.center and not self.rms_scaling else None
        self.built = True

    def forward(self, inputs: Tensor, mask=None) -> Tensor:
        x = inputs
        if self.rms_scaling:  # Keras's formula: the variance, not the mean square
            y = x * torch.rsqrt(torch.var(x, -1, correction=0, keepdim=True) + self.epsilon)
        else:
            var, mean = torch.var_mean(x, -1, correction=0, keepdim=True)
            y = (x - mean) * torch.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            y = y * self.gamma
        if self.beta is not None:
            y = y + self.beta
        return y

    def get_config(self):
        return {**super().get_config(), "axis": -1, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "rms_scaling": self.rms_scaling,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer)}


class BatchNormalization(Layer):
    """Normalise each feature over the batch (and time) axes. Training: the batch's mean and biased
    variance (over the unmasked steps when a mask comes), and ``moving = momentum * moving +
    (1 - momentum) * batch``; inference, or a frozen layer: the moving statistics."""

    supports_masking = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", synchronized=False, renorm=False,
                 renorm_clipping=None, renorm_momentum=0.99, **kwargs):
        # renorm_clipping / renorm_momentum only act with renorm=True (refused below), as in Keras
        pop_unsupported("BatchNormalization", kwargs, _NORM_EXTRA)
        super().__init__(**kwargs)
        _last_axis("BatchNormalization", axis)
        if renorm or synchronized:
            raise ValueError("BatchNormalization: renorm=True and synchronized=True are not supported "
                             "by rnnkit.keras")
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def build(self, input_shape):
        C = input_shape[-1]
        if C is None:
            raise ValueError(f"BatchNormalization '{self.name}': the last axis must be known, got "
                             f"{tuple(input_shape)}")
        self.gamma = nn.Parameter(self.gamma_initializer(torch.empty(C))) if self.scale else None
        self.beta = nn.Parameter(self.beta_initializer(torch.empty(C))) if self.center else None
        # Keras's non-trainable variables: parameters (so they are weights, saved and moved) that
        # no optimizer updates
        self.moving_mean = nn.Parameter(self.moving_mean_initializer(torch.empty(C)), requires_grad=False)
        self.moving_variance = nn.Parameter(self.moving_variance_initializer(torch.empty(C)),
                                            requires_grad=False)
        self._non_trainable = {"moving_mean", "moving_variance"}
        self.built = True

    def forward(self, inputs: Tensor, mask=None, training=None) -> Tensor:
        x = inputs.to(self.moving_mean.dtype)
        training = (self.training if training is None else bool(training)) and self.trainable
        if training:
            axes = tuple(range(x.dim() - 1))
            if mask is None:
                var, mean = torch.var_mean(x, axes, correction=0)
            else:  # Keras's masked moments
                m = mask.to(torch.bool).unsqueeze(-1).expand_as(x)
                n = m.to(x.dtype).sum(axes) + 1e-7
                mean = torch.where(m, x, 0).sum(axes) / n
                var = torch.where(m, x - mean, 0).square().sum(axes) / n
            with torch.no_grad():
                self.moving_mean.mul_(self.momentum).add_((1 - self.momentum) * mean.detach())
                self.moving_variance.mul_(self.momentum).add_((1 - self.momentum) * var.detach())
        else:
            mean, var = self.moving_mean, self.moving_variance
        y = (x - mean) * torch.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            y = y * self.gamma
        if self.beta is not None:
            y = y + self.beta
        return y

    def get_config(self):
        return {**super().get_config(), "axis": -1, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer)}
