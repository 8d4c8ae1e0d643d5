"""The training loop behind ``fit``, ``evaluate``, ``predict`` and the ``*_on_batch`` verbs.

``fit`` reads top to bottom: for each epoch, for each batch — forward, loss, zero-grad, backward,
step (the optimizer clips, as Keras's do), metrics, callbacks — then validation and the epoch's
callbacks. Losses and metrics are resolved per output at the first batch, when the shapes of labels
and predictions are known (Keras resolves ``"accuracy"`` the same way). Logged values are Keras's:
the loss averaged over samples, each metric averaged over samples (masked steps left out)."""
from __future__ import annotations

import torch

from rnnkit.keras.callbacks import Callback, History
from rnnkit.keras.layers.layer import Layer
from rnnkit.keras.models import data as D
from rnnkit.keras.models.compile_utils import (as_outputs, check_all_labels, logs, loss_and_metrics,
                                               reset_metrics, set_range_checks)
from rnnkit.keras.progbar import Progbar


class _ProgbarLogger(Callback):
    """Keras's progress display: ``Epoch i/N`` and one bar per epoch (or per evaluate/predict)."""

    def __init__(self, verbose, steps, epochs=None):
        super().__init__()
        self.verbose, self.steps, self.epochs, self.bar, self.seen = verbose, steps, epochs, None, 0

    def on_epoch_begin(self, epoch, logs=None):
        if self.epochs and self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}")
        self.bar, self.seen = Progbar(self.steps, self.verbose), 0

    def due(self) -> bool:
        """Whether the bar would redraw now (so the trainer computes the running logs only then)."""
        return self.verbose == 1 and self.bar.dynamic

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(batch + 1, _sorted(logs), finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.update(self.steps or self.seen, _sorted(logs), finalize=True)


def _sorted(logs):
    return dict(sorted((logs or {}).items()))


def _verbosity(verbose) -> int:
    return 1 if verbose == "auto" else int(verbose)


def _overrides(cb, hook: str) -> bool:
    return hook in vars(cb) or getattr(type(cb), hook) is not getattr(Callback, hook)


# -- preparing the model -----------------------------------------------------------------------
def _check_compiled(model, verb: str) -> None:
    if not getattr(model, "compiled", False):
        raise RuntimeError(f"{model.name}: call model.compile(optimizer, loss, metrics) before "
                           f"model.{verb}()")


def _device_dtype(model):
    for p in model.parameters():
        return p.device, p.dtype
    return None, None


def _ensure_built(model, xb) -> None:
    """Create every layer's weights (from the first batch's shapes) before the optimizer sees them."""
    if all(m.built for m in model.modules() if isinstance(m, Layer)):
        return
    if hasattr(model, "_layers") and not hasattr(model, "_nodes"):  # Sequential: shapes only
        model.build((None,) + tuple(D.leaves(xb)[0].shape[1:]))
    if not all(m.built for m in model.modules() if isinstance(m, Layer)):
        with torch.no_grad():
            model(xb)
        model.reset_states()  # that call must not leave a carried state behind


def _ensure_optimizer(model) -> None:
    opt = model.optimizer
    if isinstance(opt, torch.optim.Optimizer):
        return
    params = [p for p in model.parameters() if p.requires_grad]
    if not opt.built or [id(p) for p in opt.params] != [id(p) for p in params]:
        opt.build(params)


def _step(model, xb, yb, swb) -> None:
    """One optimisation step on one batch: forward, loss, zero-grad, backward, step, metrics."""
    y_pred = model(xb)
    n = D.leaves(xb)[0].shape[0]
    loss = loss_and_metrics(model, yb, y_pred, swb, n)
    model.optimizer.zero_grad()
    loss.backward()
    model.optimizer.step()  # Keras optimizers clip (clipnorm / clipvalue) inside step()


# -- the verbs -----------------------------------------------------------------------------------
def _batches(x, y, sw, batch_size, shuffle, steps=None):
    if D.is_batch_iterable(x):
        if y is not None:
            raise ValueError("when x is a data loader it must yield (x, y) itself; do not pass y")
        return D.LoaderBatches(x, steps, shuffle)
    x = D.as_tensors(x, "x")
    y, sw = D.as_tensors(y, "y"), D.as_tensors(sw, "sample_weight")
    return D.ArrayBatches(x, y, sw, 32 if batch_size is None else batch_size, shuffle)


def fit(model, x, y, *, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
        shuffle, class_weight, sample_weight, initial_epoch, steps_per_epoch, validation_steps,
        validation_batch_size, validation_freq):
    _check_compiled(model, "fit")
    verbose = _verbosity(verbose)
    if D.is_batch_iterable(x):
        if validation_split:
            raise ValueError("validation_split needs arrays; with a data loader pass validation_data")
        if sample_weight is not None:
            raise ValueError("fit: sample_weight cannot go with a data loader (as in Keras); let the "
                             "loader yield (x, y, sample_weight)")
        train, val = _batches(x, y, None, batch_size, shuffle, steps_per_epoch), validation_data
    else:
        xs, ys, sws = D.as_tensors(x, "x"), D.as_tensors(y, "y"), D.as_tensors(sample_weight, "sample_weight")
        if ys is None:
            raise ValueError("fit: y (the labels) is missing")
        if class_weight is not None:
            sws = D.class_weights_to_sample_weights(ys, class_weight)
        val = validation_data
        if validation_split:
            (xs, ys, sws), val = D.split_validation(xs, ys, sws, validation_split)
        train = D.ArrayBatches(xs, ys, sws, 32 if batch_size is None else batch_size, shuffle,
                               steps_per_epoch)
    if val is not None and not D.is_batch_iterable(val):
        if not isinstance(val, (list, tuple)) or len(val) not in (2, 3):
            raise ValueError("validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight)")
        val = D.ArrayBatches(*[D.as_tensors(v, "validation_data") for v in val],
                             batch_size=validation_batch_size or train.batch_size
                             if isinstance(train, D.ArrayBatches) else 32)
    elif val is not None:
        val = D.LoaderBatches(val)  # a loader / PyDataset of (x, y[, sample_weight]) batches

    history, progbar = History(), _ProgbarLogger(verbose, len(train), epochs) if verbose else None
    callbacks = _callbacks("fit", callbacks, model, {})
    cbs = ([progbar] if progbar else []) + callbacks + [history]
    params = {"verbose": verbose, "epochs": epochs, "steps": len(train)}
    for cb in cbs:
        cb.set_model(model)
        cb.set_params(params)
    batch_hooks = [cb for cb in cbs if cb is not progbar and _overrides(cb, "on_train_batch_end")]
    model.stop_training, was_training = False, model.training
    set_range_checks(model, True)
    device, dtype = None, None
    for cb in cbs:
        cb.on_train_begin()
    model.train()
    for epoch in range(initial_epoch, epochs):
        reset_metrics(model)
        if hasattr(x, "on_epoch_begin") and D.is_batch_iterable(x):  # a PyDataset's own hooks
            x.on_epoch_begin()
        for cb in cbs:
            cb.on_epoch_begin(epoch)
        for step, (xb, yb, swb) in enumerate(train):
            if device is None:  # first batch: build the weights, then the optimizer's state
                _ensure_built(model, xb)
                _ensure_optimizer(model)
                device, dtype = _device_dtype(model)
            if class_weight is not None and swb is None and not isinstance(train, D.ArrayBatches):
                swb = D.class_weights_to_sample_weights(yb, class_weight)  # loaders: per batch
            xb, yb, swb = (D.to_device(t, device, dtype) for t in (xb, yb, swb))
            for cb in batch_hooks:
                cb.on_train_batch_begin(step)
            _step(model, xb, yb, swb)
            if step == 0 and epoch == initial_epoch and isinstance(train, D.ArrayBatches):
                check_all_labels(model, train.y)  # once, so later batches skip the range check
            if batch_hooks or (progbar and progbar.due()):
                batch_logs = logs(model)
                for cb in ([progbar] if progbar else []) + batch_hooks:
                    cb.on_train_batch_end(step, batch_logs)
            if progbar:
                progbar.seen = step + 1
            if model.stop_training:
                break
        if hasattr(x, "on_epoch_end") and D.is_batch_iterable(x):
            x.on_epoch_end()
        epoch_logs = _sorted(logs(model))  # Keras's history keys come sorted, val_* after
        if val is not None and (epoch + 1) % validation_freq == 0:
            val_logs = _evaluate_batches(model, val, device, dtype, callbacks, validation_steps)
            epoch_logs.update({f"val_{k}": v for k, v in _sorted(val_logs).items()})
        for cb in cbs:
            cb.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    model.train(was_training)
    set_range_checks(model, True)
    for cb in cbs:
        cb.on_train_end()
    model.history = history
    return history


def _callbacks(verb: str, callbacks, model, params: dict) -> list[Callback]:
    """The user's callbacks for ``verb``, checked and attached to ``model``."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    if not isinstance(callbacks, (list, tuple)) or not all(isinstance(c, Callback) for c in callbacks):
        raise TypeError(f"{verb}: callbacks must be a list of keras.callbacks.Callback objects, got "
                        f"{callbacks!r}")
    for cb in callbacks:
        cb.set_model(model)
        cb.set_params(params)
    return list(callbacks)


def _evaluate_batches(model, batches, device, dtype, callbacks=(), steps=None) -> dict[str, float]:
    """Loss and metrics over ``batches`` (at most ``steps``), calling the ``on_test_*`` hooks."""
    was_training = model.training
    if was_training:
        model.eval()
    reset_metrics(model)
    for cb in callbacks:
        cb.on_test_begin()
    with torch.no_grad():
        for step, (xb, yb, swb) in enumerate(batches):
            if steps is not None and step >= steps:
                break
            for cb in callbacks:
                cb.on_test_batch_begin(step)
            xb, yb, swb = (D.to_device(t, device, dtype) for t in (xb, yb, swb))
            loss_and_metrics(model, yb, model(xb), swb, D.leaves(xb)[0].shape[0])
            if callbacks:
                batch_logs = logs(model)
                for cb in callbacks:
                    cb.on_test_batch_end(step, batch_logs)
    if was_training:
        model.train()
    result = logs(model)
    for cb in callbacks:
        cb.on_test_end(result)
    return result


def evaluate(model, x, y, *, batch_size, verbose, sample_weight, steps, callbacks, return_dict):
    _check_compiled(model, "evaluate")
    set_range_checks(model, True)
    batches = _batches(x, y, sample_weight, batch_size, False, steps)
    first = next(iter(batches))[0]
    _ensure_built(model, first)
    device, dtype = _device_dtype(model)
    verbose = _verbosity(verbose)
    cbs = _callbacks("evaluate", callbacks, model, {"verbose": verbose, "epochs": 1,
                                                    "steps": len(batches)})
    progbar = _ProgbarLogger(verbose, len(batches)) if verbose else None
    if progbar:
        progbar.on_epoch_begin(0)
    result = _evaluate_batches(model, batches, device, dtype, cbs, steps)
    if progbar:
        progbar.seen = len(batches) or 0
        progbar.on_epoch_end(0, result)
    if return_dict:
        return result
    values = list(result.values())
    return values[0] if len(values) == 1 else values


def predict(model, x, *, batch_size, verbose, steps, callbacks):
    """Outputs for ``x`` as NumPy arrays (a list of them for several outputs), batch by batch,
    in inference mode without gradients."""
    batches = _batches(x, None, None, batch_size, False, steps)
    verbose = _verbosity(verbose)
    cbs = _callbacks("predict", callbacks, model, {"verbose": verbose, "epochs": 1, "steps": len(batches)})
    progbar = _ProgbarLogger(verbose, len(batches)) if verbose else None
    if progbar:
        progbar.on_epoch_begin(0)
    was_training, outs, device, dtype = model.training, [], None, None
    model.eval()
    for cb in cbs:
        cb.on_predict_begin()
    with torch.no_grad():
        for step, (xb, _, _) in enumerate(batches):
            if steps is not None and step >= steps:
                break
            if device is None:
                _ensure_built(model, xb)
                device, dtype = _device_dtype(model)
            for cb in cbs:
                cb.on_predict_batch_begin(step)
            outs.append([o.detach() for o in as_outputs(model(D.to_device(xb, device, dtype)))])
            for cb in cbs:
                out = outs[-1][0] if len(outs[-1]) == 1 else outs[-1]
                cb.on_predict_batch_end(step, {"outputs": out})
            if progbar:
                progbar.seen += 1
    model.train(was_training)
    for cb in cbs:
        cb.on_predict_end()
    if progbar:
        progbar.on_epoch_end(0, {})
    if not outs:
        raise ValueError("predict: x holds no samples")
    arrays = [torch.cat(parts).cpu().numpy() for parts in zip(*outs)]
    return arrays[0] if len(arrays) == 1 else arrays


def train_on_batch(model, x, y, sample_weight, class_weight, return_dict):
    _check_compiled(model, "train_on_batch")
    xb, yb = D.as_tensors(x, "x"), D.as_tensors(y, "y")
    swb = D.as_tensors(sample_weight, "sample_weight")
    if class_weight is not None:
        swb = D.class_weights_to_sample_weights(yb, class_weight)
    _ensure_built(model, xb)
    _ensure_optimizer(model)
    device, dtype = _device_dtype(model)
    xb, yb, swb = (D.to_device(t, device, dtype) for t in (xb, yb, swb))
    was_training = model.training
    model.train()
    _step(model, xb, yb, swb)
    model.train(was_training)
    return _report(model, return_dict)


def test_on_batch(model, x, y, sample_weight, return_dict):
    _check_compiled(model, "test_on_batch")
    xb = D.as_tensors(x, "x")
    _ensure_built(model, xb)
    device, dtype = _device_dtype(model)
    result = _evaluate_batches(model, [(xb, D.as_tensors(y, "y"), D.as_tensors(sample_weight, "sw"))],
                               device, dtype)
    return result if return_dict else _report(model, False)


def predict_on_batch(model, x):
    return predict(model, x, batch_size=max(D.num_samples(D.as_tensors(x, "x")), 1), verbose=0,
                   steps=None, callbacks=None)


def _report(model, return_dict):
    result = logs(model)
    if return_dict:
        return result
    values = list(result.values())
    return values[0] if len(values) == 1 else values
