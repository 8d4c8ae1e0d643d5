"""Keras's metrics: stateful averages of a per-sample function over an epoch.

``update_state(y_true, y_pred)`` accumulates, ``result()`` gives the mean so far, ``reset_state()``
starts over. Like Keras 3, values are averaged per sample (over time steps first) and weighted by
samples, and steps masked in ``y_pred._keras_mask`` are left out. ``"accuracy"`` resolves to the binary,
categorical or sparse-categorical accuracy from the shapes of labels and predictions, as Keras does
(`get_metric`); the name reported in the history stays the one the user wrote."""
from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from rnnkit.keras import losses
from rnnkit.keras.backend import get_keras_mask, to_snake_case


def sparse_categorical_accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(f"sparse_categorical_accuracy: labels of shape {tuple(y_true.shape)} do not "
                         f"fit predictions of shape {tuple(y_pred.shape)}; expected integer class ids "
                         f"of shape {tuple(y_pred.shape[:-1])}")
    return (y_pred.argmax(-1) == y_true.long()).to(y_pred.dtype)


def categorical_accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    if y_true.shape != y_pred.shape:
        raise ValueError(f"categorical_accuracy: labels of shape {tuple(y_true.shape)} do not fit "
                         f"predictions of shape {tuple(y_pred.shape)}; expected one-hot labels")
    return (y_pred.argmax(-1) == y_true.argmax(-1)).to(y_pred.dtype)


def binary_accuracy(y_true: Tensor, y_pred: Tensor, threshold: float = 0.5) -> Tensor:
    y_true = losses._same_rank("binary_accuracy", y_true, y_pred)
    return ((y_pred > threshold).to(y_pred.dtype) == y_true.to(y_pred.dtype)).to(y_pred.dtype).mean(-1)


def accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """Exact equality of labels and predictions (Keras's ``Accuracy``)."""
    y_true = losses._same_rank("accuracy", y_true, y_pred)
    return (y_true.to(y_pred.dtype) == y_pred).to(y_pred.dtype)


class Metric:
    """Base class: subclasses define ``update_state``/``result``/``reset_state``."""

    def __init__(self, name: str | None = None, dtype=None):
        if dtype not in (None, "float32", torch.float32):
            raise ValueError(f"{type(self).__name__}: dtype={dtype!r} is not supported (results are "
                             f"Python floats computed in float32 or better); leave it None")
        self.name = name or to_snake_case(type(self).__name__)
        self.reset_state()

    def reset_state(self) -> None:
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def reset_states(self) -> None:
        self.reset_state()

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name}


class Mean(Metric):
    """Weighted mean of values. Totals stay tensors (no device sync per batch) until ``result()``."""

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def update_state(self, values, sample_weight=None, mask=None):
        values = torch.as_tensor(values)
        if values.dim() == 0:
            self.total, self.count = self.total + values.detach(), self.count + 1
            return
        if sample_weight is not None:  # Keras: per-sample means, weighted, over the sum of weights
            w = torch.as_tensor(sample_weight, dtype=values.dtype, device=values.device).reshape(-1)
            if w.shape[0] != values.shape[0]:
                raise ValueError(f"{self.name}: sample_weight must have one weight per sample "
                                 f"({values.shape[0]}), got shape {tuple(w.shape)}")
            flat = values.reshape(values.shape[0], -1)
            if mask is not None and mask.shape == values.shape:
                m = mask.reshape(values.shape[0], -1).to(values.dtype)
                per_sample = (flat * m).sum(1) / m.sum(1).clamp(min=1)
            else:
                per_sample = flat.mean(1)
            self.total = self.total + (per_sample * w).sum().detach()
            self.count = self.count + w.sum().detach()
            return
        per_sample = values[0].numel()
        if mask is not None and mask.shape == values.shape:
            m = mask.to(values.dtype)
            self.total = self.total + (values * m).sum().detach() / per_sample
            self.count = self.count + m.sum().detach() / per_sample
        else:
            self.total = self.total + values.sum().detach() / per_sample
            self.count = self.count + values.shape[0]

    def result(self) -> float:
        count = float(self.count)
        return float(self.total) / count if count else 0.0


class MeanMetricWrapper(Mean):
    """Mean over samples of ``fn(y_true, y_pred)`` (per-sample or per-step values)."""

    def __init__(self, fn, name=None, dtype=None, **fn_kwargs):
        self._fn, self._fn_kwargs = fn, fn_kwargs
        super().__init__(name or fn.__name__, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = torch.as_tensor(y_true, device=y_pred.device)
        with torch.no_grad():
            values = self._fn(y_true, y_pred.detach(), **self._fn_kwargs)
        super().update_state(values, sample_weight=sample_weight, mask=get_keras_mask(y_pred))


class _FunctionMetric(MeanMetricWrapper):
    """The mean of the class's function ``fn``, named after it by default (Keras's named metrics)."""

    fn: ClassVar[Callable[..., Tensor]]

    def __init__(self, name=None, dtype=None, **kw):
        super().__init__(type(self).fn, name, dtype, **kw)


class SparseCategoricalAccuracy(_FunctionMetric):
    fn = staticmethod(sparse_categorical_accuracy)


class CategoricalAccuracy(_FunctionMetric):
    fn = staticmethod(categorical_accuracy)


class BinaryAccuracy(_FunctionMetric):
    fn = staticmethod(binary_accuracy)


class Accuracy(_FunctionMetric):
    fn = staticmethod(accuracy)


class MeanSquaredError(_FunctionMetric):
    fn = staticmethod(losses.mean_squared_error)


class MeanAbsoluteError(_FunctionMetric):
    fn = staticmethod(losses.mean_absolute_error)


#: metric names `compile` understands ("accuracy"/"acc" are resolved from the shapes)
METRICS: dict[str, Callable[..., Metric]] = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy, "binary_accuracy": BinaryAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
}
KNOWN = sorted(list(METRICS) + ["accuracy", "acc"])
_CLASSES = {c.__name__: c for c in (SparseCategoricalAccuracy, CategoricalAccuracy, BinaryAccuracy,
                                    Accuracy, MeanSquaredError, MeanAbsoluteError)}


def _auc(name="auc", **kw):
    from rnnkit.keras.metrics_auc import AUC
    return AUC(name=name, **kw)


METRICS["auc"] = METRICS["AUC"] = _auc
KNOWN = sorted(list(METRICS) + ["accuracy", "acc"])


def __getattr__(name):  # keras.metrics.AUC, loaded on first use (it lives in its own file)
    if name == "AUC":
        from rnnkit.keras.metrics_auc import AUC
        return AUC
    raise AttributeError(f"module 'rnnkit.keras.metrics' has no attribute {name!r}")


def check_name(identifier) -> None:
    """Fail early (at ``compile``) on an unknown metric name."""
    if (isinstance(identifier, str) and identifier not in METRICS
            and identifier.lower() not in ("accuracy", "acc")):
        raise ValueError(f"unknown metric {identifier!r}; known metrics: {KNOWN}")
    if not isinstance(identifier, (str, Metric)) and not callable(identifier):
        raise TypeError(f"a metric must be a name, a Metric object or a function, got {identifier!r}")


def get_metric(identifier, y_true: Tensor, y_pred: Tensor) -> Metric:
    """The metric object for ``identifier``; "accuracy"/"acc" pick binary (one output unit),
    sparse (labels of lower rank, or last size 1) or categorical accuracy, as Keras does."""
    check_name(identifier)
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            if y_pred.shape[-1] == 1:
                return BinaryAccuracy(name=identifier)
            if y_true.dim() < y_pred.dim() or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1):
                return SparseCategoricalAccuracy(name=identifier)
            return CategoricalAccuracy(name=identifier)
        return METRICS[identifier](name=identifier)
    return MeanMetricWrapper(identifier, name=getattr(identifier, "__name__", "metric"))


def serialize(identifier):
    if isinstance(identifier, str):
        return identifier
    if type(identifier) in _CLASSES.values() or type(identifier).__name__ == "AUC":
        return {"class_name": type(identifier).__name__, "config": identifier.get_config()}
    raise ValueError(f"cannot save the custom metric {identifier!r} in a config")


def deserialize(config):
    if isinstance(config, dict):
        if config.get("class_name") == "AUC":
            return _auc(**config.get("config", {}))
        return _CLASSES[config["class_name"]](**config.get("config", {}))
    return config
