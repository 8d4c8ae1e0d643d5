"""Keras's losses: functions returning per-sample values and `Loss` objects reducing them.

Numerics follow Keras 3: probabilities (``from_logits=False``) are renormalised and clipped to
``[1e-7, 1 - 1e-7]`` before the log, so ``softmax`` + crossentropy never gives ``inf``; with
``from_logits=True`` the log-softmax is used. The reduction ``"sum_over_batch_size"`` is the mean of
all per-element values; where the prediction carries a time-step mask (``y_pred._keras_mask``,
e.g. after ``Embedding(mask_zero=True)`` and ``return_sequences``), masked steps are left out.

Every loss checks that the labels fit the predictions and says what it expected."""
from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.keras.backend import get_keras_mask, set_keras_mask

EPSILON = 1e-7


def _shape(t) -> tuple:
    return tuple(t.shape)


def _same_rank(owner: str, y_true: Tensor, y_pred: Tensor) -> Tensor:
    """Keras's squeeze-or-expand: labels ``(B,)`` fit predictions ``(B, 1)`` and vice versa."""
    if y_true.dim() == y_pred.dim() + 1 and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    elif y_true.dim() + 1 == y_pred.dim() and y_pred.shape[-1] == 1:
        y_true = y_true.unsqueeze(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{owner}: labels of shape {_shape(y_true)} do not fit predictions of shape "
                         f"{_shape(y_pred)}; expected labels of shape {_shape(y_pred)}")
    return y_true


def mean_squared_error(y_true: Tensor, y_pred: Tensor) -> Tensor:
    y_true = _same_rank("mean_squared_error", y_true, y_pred).to(y_pred.dtype)
    return (y_true - y_pred).square().mean(-1)


def mean_absolute_error(y_true: Tensor, y_pred: Tensor) -> Tensor:
    y_true = _same_rank("mean_absolute_error", y_true, y_pred).to(y_pred.dtype)
    return (y_true - y_pred).abs().mean(-1)


def huber(y_true: Tensor, y_pred: Tensor, delta: float = 1.0) -> Tensor:
    y_true = _same_rank("huber", y_true, y_pred).to(y_pred.dtype)
    return F.huber_loss(y_pred, y_true, reduction="none", delta=delta).mean(-1)


def binary_crossentropy(y_true: Tensor, y_pred: Tensor, from_logits: bool = False,
                        label_smoothing: float = 0.0, axis: int = -1) -> Tensor:
    _last_axis("binary_crossentropy", axis)
    y_true = _same_rank("binary_crossentropy", y_true, y_pred).to(y_pred.dtype)
    if label_smoothing:  # Keras: labels pulled towards 0.5
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        return F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none").mean(-1)
    p = y_pred.clamp(EPSILON, 1.0 - EPSILON)
    return -(y_true * p.log() + (1 - y_true) * (1 - p).log()).mean(-1)


def _log_probs(y_pred: Tensor, from_logits: bool) -> Tensor:
    if from_logits:
        return torch.log_softmax(y_pred, -1)
    p = y_pred / y_pred.sum(-1, keepdim=True)
    return p.clamp(EPSILON, 1.0 - EPSILON).log()


def _last_axis(owner: str, axis) -> None:
    if axis != -1:
        raise ValueError(f"{owner}: only axis=-1 (the class axis last) is supported, got {axis!r}")


def categorical_crossentropy(y_true: Tensor, y_pred: Tensor, from_logits: bool = False,
                             label_smoothing: float = 0.0, axis: int = -1) -> Tensor:
    _last_axis("categorical_crossentropy", axis)
    if y_true.shape != y_pred.shape:
        hint = " (integer class ids need sparse_categorical_crossentropy)" \
            if y_true.dim() < y_pred.dim() or (y_true.dim() and y_true.shape[-1] == 1) else ""
        raise ValueError(f"categorical_crossentropy: labels of shape {_shape(y_true)} do not fit "
                         f"predictions of shape {_shape(y_pred)}; expected one-hot labels of shape "
                         f"{_shape(y_pred)}{hint}")
    y_true = y_true.to(y_pred.dtype)
    if label_smoothing:  # Keras: labels pulled towards the uniform distribution
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_pred.shape[-1]
    return -(y_true * _log_probs(y_pred, from_logits)).sum(-1)


def sparse_categorical_crossentropy(y_true: Tensor, y_pred: Tensor, from_logits: bool = False,
                                    check_range: bool = True, ignore_class: int | None = None,
                                    axis: int = -1) -> Tensor:
    """``check_range=False`` skips the per-call label range check (``fit`` checks the whole label
    array once instead, saving a device sync per batch). ``ignore_class``: labels equal to it give
    zero and are left out of the mean (marked in the values' ``_keras_mask``, as Keras does)."""
    _last_axis("sparse_categorical_crossentropy", axis)
    keep = None
    if ignore_class is not None:
        labels = y_true.squeeze(-1) if _shape(y_true) == _shape(y_pred)[:-1] + (1,) else y_true
        keep = labels.round().long() != ignore_class if labels.is_floating_point() else labels != ignore_class
        y_true = torch.where(keep, labels, torch.zeros_like(labels))
    ids = _class_ids("sparse_categorical_crossentropy", y_true, y_pred, check_range)
    values = -_log_probs(y_pred, from_logits).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    if keep is not None:
        values = torch.where(keep, values, torch.zeros_like(values))
        set_keras_mask(values, keep)
    return values


def check_class_range(owner: str, ids: Tensor, num_classes: int) -> None:
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_classes):
        raise ValueError(f"{owner}: class ids must be in [0, {num_classes - 1}] for {num_classes} "
                         f"classes, got values in [{int(ids.min())}, {int(ids.max())}]")


def _class_ids(owner: str, y_true: Tensor, y_pred: Tensor, check_range: bool = True) -> Tensor:
    """Integer labels ``y_pred.shape[:-1]`` (or with a trailing 1) as int64, range-checked."""
    want = _shape(y_pred)[:-1]
    if _shape(y_true) == want + (1,):
        y_true = y_true.squeeze(-1)
    if _shape(y_true) != want:
        hint = " (one-hot labels need categorical_crossentropy)" if _shape(y_true) == _shape(y_pred) else ""
        raise ValueError(f"{owner}: labels of shape {_shape(y_true)} do not fit predictions of shape "
                         f"{_shape(y_pred)}; expected integer class ids of shape {want} (or "
                         f"{want + (1,)}){hint}")
    if y_true.is_floating_point():
        y_true = y_true.round()
    ids = y_true.long()
    if check_range:
        check_class_range(owner, ids, y_pred.shape[-1])
    return ids


class Loss:
    """A loss object: ``loss(y_true, y_pred)`` -> scalar (mean over all non-masked elements)."""

    fn: ClassVar[Callable[..., Tensor] | None] = None   # the loss function of a subclass
    check_range = True  # sparse crossentropy: check the class ids on every call (fit checks once)

    def __init__(self, name: str | None = None, reduction: str = "sum_over_batch_size", **fn_kwargs):
        if reduction not in ("sum_over_batch_size", "mean", "sum", "none", None):
            raise ValueError(f"{type(self).__name__}: reduction must be 'sum_over_batch_size', "
                             f"'sum' or 'none', got {reduction!r}")
        self.name = name or _snake(type(self).__name__)
        self.reduction, self.fn_kwargs = reduction, fn_kwargs

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return _call(type(self).fn, self, y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None) -> Tensor:
        y_true = torch.as_tensor(y_true, device=y_pred.device)
        values = self.call(y_true, y_pred)
        mask, ignored = get_keras_mask(y_pred), get_keras_mask(values)
        if ignored is not None:  # ignore_class: those labels leave the mean too
            mask = ignored if mask is None or mask.shape != ignored.shape else mask & ignored
        if sample_weight is not None:
            sw = torch.as_tensor(sample_weight, dtype=values.dtype, device=values.device)
            values = values * sw.reshape(sw.shape + (1,) * (values.dim() - sw.dim()))
        if self.reduction in ("none", None):
            return values
        if mask is not None and mask.shape == values.shape:
            total = (values * mask).sum()
            return total if self.reduction == "sum" else total / mask.sum().clamp_min(1)
        return values.sum() if self.reduction == "sum" else values.mean()

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, **self.fn_kwargs}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _float32_only(owner: str, dtype) -> None:
    """Keras's loss ``dtype``: the computation type; rnnkit computes in the predictions' type."""
    policy = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    if policy not in (None, "float32", torch.float32):
        raise ValueError(f"{owner}: dtype={dtype!r} is not supported (losses compute in the "
                         f"predictions' float type); leave it None")


class LossFunctionWrapper(Loss):
    def __init__(self, fn, name=None, reduction="sum_over_batch_size", **fn_kwargs):
        super().__init__(name or fn.__name__, reduction, **fn_kwargs)
        self._fn = fn

    def call(self, y_true, y_pred):
        return _call(self._fn, self, y_true, y_pred)


def _call(fn, loss: Loss, y_true, y_pred):
    if fn is sparse_categorical_crossentropy:
        return fn(y_true, y_pred, check_range=loss.check_range, **loss.fn_kwargs)
    return fn(y_true, y_pred, **loss.fn_kwargs)


class MeanSquaredError(Loss):
    fn = staticmethod(mean_squared_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        _float32_only(name, dtype)
        super().__init__(name, reduction)


class MeanAbsoluteError(Loss):
    fn = staticmethod(mean_absolute_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        _float32_only(name, dtype)
        super().__init__(name, reduction)


class Huber(Loss):
    fn = staticmethod(huber)

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        _float32_only(name, dtype)
        super().__init__(name, reduction, delta=delta)


class BinaryCrossentropy(Loss):
    fn = staticmethod(binary_crossentropy)

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy", dtype=None):
        _float32_only(name, dtype)
        super().__init__(name, reduction, from_logits=bool(from_logits),
                         label_smoothing=float(label_smoothing), axis=axis)


class CategoricalCrossentropy(Loss):
    fn = staticmethod(categorical_crossentropy)

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        _float32_only(name, dtype)
        super().__init__(name, reduction, from_logits=bool(from_logits),
                         label_smoothing=float(label_smoothing), axis=axis)


class SparseCategoricalCrossentropy(Loss):
    fn = staticmethod(sparse_categorical_crossentropy)

    def __init__(self, from_logits=False, ignore_class=None, axis=-1, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        _float32_only(name, dtype)
        super().__init__(name, reduction, from_logits=bool(from_logits), ignore_class=ignore_class,
                         axis=axis)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error

#: loss names `compile` understands
LOSSES = {
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error, "huber": huber,
    "binary_crossentropy": binary_crossentropy, "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}
_CLASSES = {c.__name__: c for c in (MeanSquaredError, MeanAbsoluteError, Huber, BinaryCrossentropy,
                                    CategoricalCrossentropy, SparseCategoricalCrossentropy)}


def get(identifier) -> Loss:
    """A `Loss` for a name in `LOSSES`, a `Loss` object, a ``{class_name, config}`` dict or a
    function ``fn(y_true, y_pred) -> per-sample values``."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        if identifier not in LOSSES and identifier not in _CLASSES:
            raise ValueError(f"unknown loss {identifier!r}; known losses: {sorted(LOSSES)}")
        if identifier in _CLASSES:
            return _CLASSES[identifier]()
        return LossFunctionWrapper(LOSSES[identifier], name=identifier)
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise TypeError(f"loss must be a name, a Loss object or a function, got {identifier!r}")


def serialize(loss: Loss):
    if type(loss) in _CLASSES.values():
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    if isinstance(loss, LossFunctionWrapper) and loss.name in LOSSES:
        return loss.name
    raise ValueError(f"cannot save the custom loss {loss.name!r} in a config")


def _snake(name: str) -> str:
    from rnnkit.keras.backend import to_snake_case
    return to_snake_case(name)
