"""Per-output losses and metrics for ``compile``: resolved at the first batch (when the shapes of
labels and predictions are known, as Keras resolves ``"accuracy"``), then updated every batch.

Logged values are Keras's: the loss averaged over samples (``_Tracker``), each metric averaged over
samples with masked steps left out (`rnnkit.keras.metrics`)."""
from __future__ import annotations

import torch

from rnnkit.keras import losses as losses_mod
from rnnkit.keras import metrics as metrics_mod


class _Tracker:
    """Sample-weighted mean of the batch losses (Keras's loss tracker); tensors until read."""

    def __init__(self, name):
        self.name, self.total, self.count = name, 0.0, 0

    def update(self, value, n):
        self.total, self.count = self.total + value.detach() * n, self.count + n

    def result(self):
        return float(self.total) / self.count if self.count else 0.0


def as_outputs(y_pred) -> list:
    return list(y_pred) if isinstance(y_pred, (list, tuple)) else [y_pred]


def _labels(y, n_out: int) -> list:
    if n_out == 1:
        return [y[0] if isinstance(y, (list, tuple)) and len(y) == 1 else y]
    if isinstance(y, dict):
        raise ValueError("labels given as a dict need output names; give a list, one per output")
    if not isinstance(y, (list, tuple)) or len(y) != n_out:
        got = len(y) if isinstance(y, (list, tuple)) else 1
        raise ValueError(f"the model has {n_out} outputs, so y must be a list of {n_out} label "
                         f"arrays, got {got}")
    return list(y)


def _per_output(spec, names: list[str], what: str) -> list:
    """Spread a compile argument over the outputs: one value for all, a list, or a dict by name."""
    if isinstance(spec, dict):
        unknown = set(spec) - set(names)
        if unknown:
            raise ValueError(f"compile: {what} names outputs {sorted(unknown)} that the model does "
                             f"not have; outputs: {names}")
        return [spec.get(n) for n in names]
    one_each = what in ("loss", "loss_weights")  # a list of these is always one per output
    if isinstance(spec, (list, tuple)) and one_each and len(names) == 1 and len(spec) != 1:
        raise ValueError(f"compile: the model has 1 output, so {what} must be one value or a list "
                         f"of 1, got a list of {len(spec)}")
    if isinstance(spec, (list, tuple)) and len(spec) == len(names) and \
            (one_each or len(names) > 1 and all(isinstance(s, (list, tuple)) or s is None for s in spec)):
        return list(spec)
    if isinstance(spec, (list, tuple)) and what == "loss_weights":
        raise ValueError(f"compile: loss_weights must have one weight per output ({len(names)}: "
                         f"{names}), got {len(spec)}")
    return [spec] * len(names)


def _resolve(model, ys: list, preds: list) -> None:
    names = model.output_names if len(preds) > 1 else [model.name]
    losses = _per_output(model._loss_spec, names, "loss")
    metric_specs = _per_output(model._metric_spec, names, "metrics")
    weights = _per_output(model.loss_weights if model.loss_weights is not None else 1.0, names,
                          "loss_weights")
    prefix = [f"{n}_" if len(preds) > 1 else "" for n in names]
    model._losses = [losses_mod.get(l) if l is not None else None for l in losses]
    model._loss_weights = [float(w) for w in weights]
    model._trackers = [_Tracker("loss")] + ([_Tracker(f"{p}loss") for p in prefix] if len(preds) > 1 else [])
    weighted_specs = _per_output(model._weighted_metric_spec, names, "weighted_metrics")
    model._metrics, taken = [], set()
    for weighted, specs in ((False, metric_specs), (True, weighted_specs)):
        for i, (spec, y, p) in enumerate(zip(specs, ys, preds)):
            for m in _flat(spec):
                metric = metrics_mod.get_metric(m, torch.as_tensor(y), p)
                name = prefix[i] + metric.name
                if weighted and name in taken:  # Keras's naming: a clash gets "weighted_"
                    name = prefix[i] + "weighted_" + metric.name
                k, base = 1, name
                while name in taken:
                    name, k = f"{base}_{k}", k + 1
                taken.add(name)
                model._metrics.append((i, name, metric, weighted))
    model._num_classes = [p.shape[-1] for p in preds]
    model._compiled_for = len(preds)


def _flat(spec) -> list:
    if spec is None:
        return []
    return [s for s in (spec if isinstance(spec, (list, tuple)) else [spec]) if s is not None]


def loss_and_metrics(model, y, y_pred, sw, n: int, *, update_metrics: bool = True):
    """Total loss (a scalar with grad) for one batch; updates the loss trackers and metrics."""
    preds = as_outputs(y_pred)
    ys = _labels(y, len(preds))
    if model._compiled_for != len(preds):
        _resolve(model, ys, preds)
    total, parts = 0.0, []
    for loss, w, yt, p in zip(model._losses, model._loss_weights, ys, preds):
        if loss is None:
            continue
        value = loss(yt, p, sample_weight=sw)
        parts.append(value)
        total = total + w * value
    model._trackers[0].update(total, n)
    for tracker, value in zip(model._trackers[1:], parts):
        tracker.update(value, n)
    if update_metrics:
        for i, _, metric, weighted in model._metrics:
            metric.update_state(ys[i], preds[i], sample_weight=sw if weighted else None)
    return total


def logs(model) -> dict[str, float]:
    out = {t.name: t.result() for t in getattr(model, "_trackers", [])}
    out.update({name: m.result() for _, name, m, _ in getattr(model, "_metrics", [])})
    return out


def reset_metrics(model) -> None:
    for t in getattr(model, "_trackers", []):
        t.total, t.count = 0.0, 0
    for _, _, m, _ in getattr(model, "_metrics", []):
        m.reset_state()


def metric_names(model) -> list[str]:
    return list(logs(model)) if getattr(model, "_compiled_for", None) else ["loss"]


def _sparse_losses(model):
    return [(i, l) for i, l in enumerate(model._losses)
            if getattr(l, "_fn", getattr(type(l), "fn", None)) is losses_mod.sparse_categorical_crossentropy]


def check_all_labels(model, y) -> None:
    """Check the class ids of every sparse-crossentropy output over the whole label array at
    once, then switch the per-batch check off for the rest of this ``fit``."""
    outputs = _labels(y, model._compiled_for)
    for i, loss in _sparse_losses(model):
        preds_classes = model._num_classes[i]
        ids = outputs[i]
        losses_mod.check_class_range(loss.name, ids.round().long() if ids.is_floating_point() else ids,
                                     preds_classes)
    set_range_checks(model, False)


def set_range_checks(model, on: bool) -> None:
    for _, loss in _sparse_losses(model) if getattr(model, "_losses", None) else []:
        loss.check_range = on


