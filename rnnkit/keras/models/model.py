"""`Model`: Keras's model API on a ``torch.nn.Module`` — compile, fit, evaluate, predict, summary,
save — for `Sequential`, functional ``Model(inputs, outputs)`` and subclassed models (``call``).

This file holds the configuration side (compile, weights, summary, saving entry points); the
training loop is `rnnkit.keras.models.training`, one readable function per verb."""
from __future__ import annotations

import inspect

import torch

from rnnkit.keras import losses as losses_mod
from rnnkit.keras import metrics as metrics_mod
from rnnkit.keras import optimizers as optimizers_mod
from rnnkit.keras.layers.layer import Layer
from rnnkit.keras.models import compile_utils, saving, summary, training


_CALL_TAKES_TRAINING: dict[type, bool] = {}


class Model(Layer):
    """``Model(inputs, outputs)`` builds a functional graph model; subclass it and define
    ``call(self, inputs, training=None)`` for a model written as code."""

    _passes_inner_masks = True  # outputs keep the masks set by the last layers

    def __new__(cls, *args, **kwargs):
        if cls is Model and (len(args) >= 2 or "inputs" in kwargs or "outputs" in kwargs):
            from rnnkit.keras.models.functional import Functional
            return object.__new__(Functional)  # Python then runs Functional.__init__(*args)
        return super().__new__(cls)

    def __init__(self, *, name: str | None = None, trainable: bool = True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self.optimizer = None
        self.compiled = False
        self.stop_training = False
        self.history = None

    def forward(self, *args, **kwargs):
        """``call`` under ``training=`` when given: the layers run in that mode for this call (dropout
        on, batch statistics used) and the model's own mode comes back afterwards, as Keras does."""
        training = kwargs.get("training")
        cls = type(self)
        if cls not in _CALL_TAKES_TRAINING:  # once per class: signature() is slow for a per-batch path
            _CALL_TAKES_TRAINING[cls] = "training" in inspect.signature(self.call).parameters
        if not _CALL_TAKES_TRAINING[cls]:
            kwargs.pop("training", None)
        if training is None:
            return self.call(*args, **kwargs)
        was = self.training
        self.train(bool(training))
        try:
            return self.call(*args, **kwargs)
        finally:
            self.train(was)

    def call(self, inputs, training=None):
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Model define call(inputs)")

    def __call__(self, *args, **kwargs):
        if type(self).build is Model.build and not self.built:
            self.built = True  # a subclassed model builds its layers as they are first called
        return super().__call__(*args, **kwargs)

    def build(self, input_shape):
        self.built = True

    # -- structure --------------------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """The model's top-level Keras layers, in order."""
        return [m for m in self.children() if isinstance(m, Layer)]

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name}: no layer named {name!r}; layers: {[l.name for l in self.layers]}")

    def reset_states(self) -> None:
        """Zero the carried state of every stateful recurrent layer."""
        for m in self.modules():
            reset = getattr(m, "reset_states", None)
            if m is not self and reset is not None and hasattr(m, "stateful"):
                reset()

    reset_state = reset_states

    @property
    def output_names(self) -> list[str]:
        return [self.name]

    # -- compile ----------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1, jit_compile="auto",
                auto_scale_loss=True):
        """Configure training: ``optimizer`` (a name in `optimizers.OPTIMIZERS`, a Keras optimizer, or
        a ``torch.optim.Optimizer``), ``loss`` (a name in `losses.LOSSES`, a Loss, a function, or one
        per output as a list/dict), ``loss_weights`` (one per output), ``metrics`` (names in
        `metrics.KNOWN`, Metric objects, or functions; one list for all outputs, or one per output)
        and ``weighted_metrics`` (the same, weighted by ``sample_weight``/``class_weight``).

        Keras's execution settings: ``run_eagerly`` (rnnkit always runs eagerly, so either value
        gives the same numbers), ``jit_compile`` (``"auto"``/False; True is refused: nothing is
        compiled), ``steps_per_execution`` (1 only), ``auto_scale_loss`` (loss scaling only acts
        under a float16 policy, which rnnkit does not offer, so either value is the same)."""
        owner = f"{self.name}.compile"
        if jit_compile not in ("auto", False, None):
            raise ValueError(f"{owner}: jit_compile={jit_compile!r} is not supported (rnnkit runs the "
                             f"model eagerly on its own kernels); pass 'auto' or False")
        if isinstance(steps_per_execution, bool) or steps_per_execution != 1:
            raise ValueError(f"{owner}: steps_per_execution={steps_per_execution!r} is not supported "
                             f"(each batch is one step here); pass 1")
        for arg, value in (("run_eagerly", run_eagerly), ("auto_scale_loss", auto_scale_loss)):
            if not isinstance(value, bool) and value is not None:
                raise ValueError(f"{owner}: {arg} must be True or False, got {value!r}")
        if weighted_metrics is not None and not isinstance(weighted_metrics, (list, tuple, dict)):
            raise ValueError(f"{owner}: weighted_metrics must be a list, tuple or dict, got "
                             f"{weighted_metrics!r}")
        self.optimizer = optimizer if isinstance(optimizer, torch.optim.Optimizer) \
            else optimizers_mod.get(optimizer)
        if loss is None:
            raise ValueError(f"{self.name}.compile: give a loss (e.g. loss='mse'); known losses: "
                             f"{sorted(losses_mod.LOSSES)}")
        for l in (loss.values() if isinstance(loss, dict)
                  else loss if isinstance(loss, (list, tuple)) else [loss]):
            if l is not None:
                losses_mod.get(l)  # unknown names fail here, listing the known ones
        for m in _flatten_metric_spec(metrics) + _flatten_metric_spec(weighted_metrics):
            metrics_mod.check_name(m)
        if isinstance(loss_weights, (list, tuple, dict)):
            values = loss_weights.values() if isinstance(loss_weights, dict) else loss_weights
            bad = [w for w in values if isinstance(w, bool) or not isinstance(w, (int, float))]
        else:
            bad = [] if loss_weights is None or (isinstance(loss_weights, (int, float))
                                                 and not isinstance(loss_weights, bool)) else [loss_weights]
        if bad:
            raise ValueError(f"{owner}: loss_weights must be numbers (one, a list per output or a "
                             f"dict by output name), got {loss_weights!r}")
        self._loss_spec, self._metric_spec = loss, metrics
        self._weighted_metric_spec = weighted_metrics
        self.loss_weights = loss_weights
        self.compiled = True
        self._compiled_for = None  # per-output losses/metrics are resolved at the first batch
        self.compile_config = {"optimizer": optimizer, "loss": loss, "metrics": metrics,
                               "loss_weights": loss_weights, "weighted_metrics": weighted_metrics}

    @property
    def loss(self):
        return getattr(self, "_loss_spec", None)

    # -- training verbs (see training.py) ----------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs on NumPy arrays, tensors, lists of them (several inputs or
        outputs) or a data loader yielding ``(x, y)``; returns a `callbacks.History`."""
        return training.fit(self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                            callbacks=callbacks, validation_split=validation_split,
                            validation_data=validation_data, shuffle=shuffle,
                            class_weight=class_weight, sample_weight=sample_weight,
                            initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                            validation_steps=validation_steps, validation_batch_size=validation_batch_size,
                            validation_freq=validation_freq)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        return training.evaluate(self, x, y, batch_size=batch_size, verbose=verbose,
                                 sample_weight=sample_weight, steps=steps, callbacks=callbacks,
                                 return_dict=return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        return training.predict(self, x, batch_size=batch_size, verbose=verbose, steps=steps,
                                callbacks=callbacks)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        return training.train_on_batch(self, x, y, sample_weight, class_weight, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        return training.test_on_batch(self, x, y, sample_weight, return_dict)

    def predict_on_batch(self, x):
        return training.predict_on_batch(self, x)

    def reset_metrics(self) -> None:
        compile_utils.reset_metrics(self)

    @property
    def metrics_names(self) -> list[str]:
        return compile_utils.metric_names(self)

    # -- summary and saving --------------------------------------------------------------------------
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print Keras's table: layer (type), output shape, parameter count, and the totals;
        ``line_length``/``positions`` size the columns, ``show_trainable`` adds Keras's Trainable
        column. ``expand_nested`` and ``layer_range`` are refused (not implemented)."""
        if expand_nested or layer_range is not None:
            raise ValueError(f"{self.name}.summary: expand_nested=True and layer_range are not supported "
                             f"by rnnkit.keras")
        summary.print_summary(self, print_fn=print_fn, line_length=line_length, positions=positions,
                              show_trainable=show_trainable)

    def save(self, filepath, overwrite=True, zipped=None) -> None:
        """``m.keras``: Keras 3's own zip (config.json, metadata.json, model.weights.h5 with the
        optimizer's state), which real Keras loads. A path without an extension: rnnkit's run folder
        (``config.json`` + ``model.safetensors``). Written atomically; loaded without pickle."""
        saving.save_model(self, filepath, overwrite=overwrite, zipped=zipped)

    def save_weights(self, filepath, overwrite=True, max_shard_size=None) -> None:
        """``x.weights.h5``: Keras's HDF5 weights file (with the optimizer's state);
        ``x.safetensors``: rnnkit's own fast format."""
        saving.save_weights(self, filepath, overwrite=overwrite, max_shard_size=max_shard_size)

    def load_weights(self, filepath, skip_mismatch=False) -> None:
        """Load weights saved by `save_weights`; ``skip_mismatch=True`` skips (with a warning) the
        layers whose weights do not match in number or shape, as Keras does."""
        saving.load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def get_compile_config(self):
        return saving.compile_config(self)


def _flatten_metric_spec(metrics) -> list:
    if metrics is None:
        return []
    if isinstance(metrics, dict):
        metrics = list(metrics.values())
    if not isinstance(metrics, (list, tuple)):
        metrics = [metrics]
    out = []
    for m in metrics:
        out += _flatten_metric_spec(m) if isinstance(m, (list, tuple, dict)) else [m]
    return [m for m in out if m is not None]
