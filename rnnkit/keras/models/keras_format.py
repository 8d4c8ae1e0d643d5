"""Keras 3's own files, written and read without Keras: the ``.keras`` zip and ``.weights.h5``.

- ``.weights.h5`` (HDF5, through h5py): one group per object in Keras's tracking tree, the variables
  as datasets ``0, 1, ...`` in Keras's order. A model's layers sit under ``layers/<name>`` where the
  name is the layer's class in snake case, numbered within the model (``lstm``, ``lstm_1``), not the
  layer's own name; a recurrent layer's weights live on its cell (``layers/lstm/cell/vars``), a
  wrapper's on its inner layers (``forward_layer``, ``backward_layer``, ``layer``, ``cells/<name>``),
  MultiHeadAttention's on ``query_dense`` ... ``output_dense``. The optimizer's state is
  ``optimizer/vars``: the step count, the learning rate (unless it is a schedule), then the slots
  (Adam: momentum and velocity interleaved per variable; RMSprop: all velocities, then momentums...).
  `variable_groups` is that tree for a model; reading and writing both walk it.
- ``.keras``: a zip of ``metadata.json``, ``config.json`` (the architecture and compile settings as
  Keras serialises them: ``{"module", "class_name", "config", "build_config"}`` per object, the
  functional graph as ``inbound_nodes``) and ``model.weights.h5``.

Nothing here unpickles: JSON and HDF5 datasets only; code in a file (a Lambda) follows
``safe_mode`` (`lambda_layer`)."""
from __future__ import annotations

import datetime
import io
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from rnnkit.keras.backend import to_snake_case

KERAS_VERSION = "3.15.1"  # written into metadata.json: the Keras release this format was checked with


# -- the variable tree ----------------------------------------------------------------------------------
def _numbered(objs):
    """``(name, obj)`` with Keras's container naming: class in snake case, ``_1``, ``_2`` on repeats."""
    seen: dict[str, int] = {}
    for obj in objs:
        base = obj if isinstance(obj, str) else to_snake_case(type(obj).__name__)
        n = seen.get(base, 0)
        seen[base] = n + 1
        yield (base if n == 0 else f"{base}_{n}"), obj


def layer_groups(layer, prefix: str) -> list[tuple[str, list]]:
    """``[(group path, [parameters])]`` for one layer, as Keras lays it out."""
    from rnnkit.keras.layers import Bidirectional, MultiHeadAttention, TimeDistributed
    from rnnkit.keras.layers.recurrent import StockRNN
    from rnnkit.keras.layers.rnn import RNN
    from rnnkit.keras.layers.rnn_cells import StackedRNNCells
    from rnnkit.keras.models.model import Model
    own: tuple[str, list] = (f"{prefix}/vars", [])
    if isinstance(layer, StockRNN):
        cell = [p for p in (layer.kernel, layer.recurrent_kernel, layer.bias) if p is not None]
        return [own, (f"{prefix}/cell/vars", cell)]
    if isinstance(layer, RNN):
        return [own] + layer_groups(layer.cell, f"{prefix}/cell")
    if isinstance(layer, StackedRNNCells):
        return [own] + [g for name, c in _numbered(layer.cells)
                        for g in layer_groups(c, f"{prefix}/cells/{name}")]
    if isinstance(layer, Bidirectional):
        return [own] + layer_groups(layer.forward_layer, f"{prefix}/forward_layer") + \
            layer_groups(layer.backward_layer, f"{prefix}/backward_layer")
    if isinstance(layer, TimeDistributed):
        return [own] + layer_groups(layer.layer, f"{prefix}/layer")
    if isinstance(layer, MultiHeadAttention):
        dense = [(f"{prefix}/{d}_dense/vars", [p for p in (getattr(layer, f"{w}_kernel"),
                                                            getattr(layer, f"{w}_bias")) if p is not None])
                 for d, w in (("query", "query"), ("key", "key"), ("value", "value"),
                              ("output", "attention_output"))]
        return [own] + dense + [(f"{prefix}/_dropout_layer/vars", []), (f"{prefix}/_softmax/vars", [])]
    if isinstance(layer, Model):
        return model_groups(layer, prefix)
    return [(f"{prefix}/vars", list(layer.parameters()))]


def model_groups(model, prefix: str = "") -> list[tuple[str, list]]:
    """The whole model's groups (its input layers too, which Keras counts as layers)."""
    head = f"{prefix}/" if prefix else ""
    layers = list(model.layers)
    if hasattr(model, "_flat_inputs"):  # functional: Keras's layers list starts with the inputs
        layers = ["input_layer"] * len(model._flat_inputs) + layers
    out: list[tuple[str, list]] = [(f"{head}vars", [])]
    for name, layer in _numbered(layers):
        path = f"{head}layers/{name}"
        out += [(f"{path}/vars", [])] if isinstance(layer, str) else layer_groups(layer, path)
    return out


# -- optimizer state --------------------------------------------------------------------------------
#: the order Keras keeps each optimizer's slots in: blocks, the slots of a block interleaved per variable
SLOT_BLOCKS: dict[str, list[tuple[str, ...]]] = {
    "Adam": [("m", "v"), ("v_hat",)], "AdamW": [("m", "v"), ("v_hat",)], "SGD": [("momentum",)],
    "RMSprop": [("v",), ("m",), ("mean_g",)], "Adagrad": [("accumulator",)]}


def _optimizer_head(opt) -> list[np.ndarray]:
    from rnnkit.keras.schedules import LearningRateSchedule
    head = [np.asarray(opt.iterations, dtype="int32")]
    if not isinstance(opt._learning_rate, LearningRateSchedule):
        head.append(np.asarray(opt.learning_rate, dtype="float32"))
    return head


def optimizer_arrays(opt) -> list[np.ndarray]:
    """The optimizer's variables in Keras's order (step count, learning rate, slots)."""
    arrays = _optimizer_head(opt)
    if opt.built:
        n_params = len(opt.params or ())   # (a built optimizer has its params)
        for block in SLOT_BLOCKS[type(opt).__name__]:
            slots = [s for s in block if s in opt.state]
            for i in range(n_params if slots else 0):
                arrays += [opt.state[s][i].detach().cpu().numpy() for s in slots]
    return arrays


def load_optimizer_arrays(model, arrays: list[np.ndarray], where: str) -> None:
    """Give ``model.optimizer`` (a rnnkit one; built here on the trainable weights) Keras's state."""
    opt = model.optimizer
    from rnnkit.keras.optimizers import Optimizer
    if not isinstance(opt, Optimizer) or type(opt).__name__ not in SLOT_BLOCKS:
        return
    head = len(_optimizer_head(opt))
    if len(arrays) == head:  # saved before any training step: no slots yet, nothing to build
        opt.iterations = int(arrays[0])
        if head == 2:
            opt.learning_rate = float(arrays[1])
        return
    if not opt.built:
        opt.build([p for p in model.parameters() if p.requires_grad])
    blocks = [[s for s in b if s in opt.state] for b in SLOT_BLOCKS[type(opt).__name__]]
    n_params = len(opt.params or ())   # (built just above)
    expected = head + sum(len(b) for b in blocks) * n_params
    if len(arrays) != expected:
        warnings.warn(f"{where}: the saved optimizer state has {len(arrays)} variables, "
                      f"{type(opt).__name__} on this model has {expected}; its state starts fresh "
                      f"(as Keras does)", stacklevel=4)
        return
    opt.iterations = int(arrays[0])
    if head == 2:
        opt.learning_rate = float(arrays[1])
    k = head
    with torch.no_grad():
        for block in blocks:
            for i in range(n_params):
                for s in block:
                    target = opt.state[s][i]
                    if tuple(arrays[k].shape) != tuple(target.shape):
                        raise ValueError(f"{where}: optimizer variable {k} has shape "
                                         f"{tuple(arrays[k].shape)}, expected {tuple(target.shape)}")
                    target.copy_(torch.from_numpy(np.asarray(arrays[k])))
                    k += 1


# -- .weights.h5 ----------------------------------------------------------------------------------------
def write_weights_h5(model, target) -> None:
    """Write the model's weights (and its optimizer's state) to ``target`` (a path or a file object)."""
    import h5py
    with h5py.File(target, "w") as f:
        for path, params in model_groups(model):
            g = f.require_group(path)
            for i, p in enumerate(params):
                g.create_dataset(str(i), data=p.detach().cpu().numpy())
        opt = getattr(model, "optimizer", None)
        from rnnkit.keras.optimizers import Optimizer
        if isinstance(opt, Optimizer):
            g = f.require_group("optimizer/vars")
            g.attrs["name"] = opt.name
            for i, a in enumerate(optimizer_arrays(opt)):
                g.create_dataset(str(i), data=a)


def _datasets(group) -> list[np.ndarray]:
    return [group[str(i)][()] for i in range(len(group))]


def read_weights_h5(model, source, where: str, skip_mismatch: bool = False) -> None:
    """Load Keras-layout weights (and optimizer state, if the model has a rnnkit optimizer)."""
    import h5py
    try:
        f = h5py.File(source, "r")
    except OSError as e:
        raise ValueError(f"{where} is not a readable HDF5 weights file ({e})") from e
    with f:
        from rnnkit.keras.layers.layer import Layer
        if not all(m.built for m in model.modules() if isinstance(m, Layer)):
            raise ValueError(f"load_weights: {model.name} is not built yet; build it (or call it on data) "
                             f"before loading weights from {where}")
        groups = model_groups(model)
        problems, plan = [], []
        wanted = {path for path, params in groups if params}
        for path, params in groups:
            if not params:
                continue
            if path not in f:
                problems.append(f"{path}: missing in the file")
                continue
            saved = _datasets(f[path])
            shapes = [tuple(a.shape) for a in saved]
            own = [tuple(p.shape) for p in params]
            if shapes != own:
                problems.append(f"{path}: the file has {shapes}, the model {own}")
                continue
            plan.append((params, saved))
        extra = []
        f.visititems(lambda name, obj: extra.append(name) if isinstance(obj, h5py.Group) and
                     name.endswith("vars") and len(obj) and name not in wanted and
                     not name.startswith("optimizer") else None)
        problems += [f"{name}: in the file, not in the model" for name in extra]
        if problems and not skip_mismatch:
            raise ValueError(f"load_weights: {where} does not match {model.name}: " + "; ".join(problems)
                             + " (pass skip_mismatch=True to load the rest)")
        if problems:
            warnings.warn(f"load_weights(skip_mismatch=True): skipped {problems}", stacklevel=3)
        with torch.no_grad():
            for params, saved in plan:
                for p, a in zip(params, saved):
                    p.copy_(torch.from_numpy(np.asarray(a)).to(p.dtype))
        if "optimizer/vars" in f and getattr(model, "optimizer", None) is not None:
            load_optimizer_arrays(model, _datasets(f["optimizer/vars"]), where)


# -- .keras -----------------------------------------------------------------------------------------------
def save_keras(model, path: Path, overwrite: bool = True) -> None:
    from rnnkit.keras.models.keras_config import model_to_keras
    if path.exists() and not overwrite:
        raise FileExistsError(f"save: {path} exists and overwrite=False")
    config = model_to_keras(model)
    weights = io.BytesIO()
    write_weights_h5(model, weights)
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        z.writestr("metadata.json", json.dumps(metadata))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", weights.getvalue())
    os.replace(tmp, path)


def load_keras(path: Path, custom_objects=None, compile: bool = True, safe_mode: bool = True):
    from rnnkit.keras.layers.lambda_layer import loading
    from rnnkit.keras.models.keras_config import compile_from_keras, model_from_keras
    if not zipfile.is_zipfile(path):
        raise ValueError(f"load_model: {path} is not a .keras zip archive")
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        for need in ("config.json", "model.weights.h5"):
            if need not in names:
                raise ValueError(f"load_model: {path} has no {need} (found {sorted(names)})")
        try:
            config = json.loads(z.read("config.json"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"load_model: {path}!config.json is not valid JSON ({e})") from e
        weights = io.BytesIO(z.read("model.weights.h5"))
    with loading(safe_mode, custom_objects):
        model = model_from_keras(config, custom_objects)
    if compile and config.get("compile_config"):
        compile_from_keras(model, config["compile_config"], str(path))
    read_weights_h5(model, weights, f"{path}!model.weights.h5")
    return model
