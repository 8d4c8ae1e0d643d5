"""Saving and loading: dispatch by file name (`.keras` and `.weights.h5`: Keras 3's formats, in
`keras_format`; `.safetensors` and run folders: rnnkit's own). No pickles.

A saved model is a folder (DESIGN.md's run-folder format):

- ``config.json``: ``{"format": "rnnkit.keras", "version": 1, "class_name", "config", "compile_config"}``
  — the architecture as Keras-like layer configs, and how the model was compiled;
- ``model.safetensors``: the weights in Keras's layout, keyed by structure (`named_weights`: e.g.
  ``"lstm/kernel"``, ``"lstm_1/kernel"``, ``"bidirectional/forward_layer/kernel"``).

Every file is written to a temporary name and renamed into place, so a crash never leaves a
half-written file. `load_model` reads JSON and safetensors only; a missing or corrupt file is a
clear error naming it. (The optimizer's state is not saved: a loaded model is compiled afresh.)"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rnnkit.keras.backend import to_snake_case
from rnnkit.keras.models import keras_format

FORMAT, VERSION = "rnnkit.keras", 1
CONFIG, WEIGHTS = "config.json", "model.safetensors"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def named_weights(model) -> dict[str, torch.Tensor]:
    """The model's parameters keyed by structure, as Keras 3's weight files are: the layer's class
    in snake case, numbered within this model (``lstm``, ``lstm_1``...), then the parameter path.
    Two models of the same architecture share keys whatever their layers' global names."""
    out: dict[str, torch.Tensor] = {}
    seen: dict[str, int] = {}
    for layer in model.layers:
        base = to_snake_case(type(layer).__name__)
        n = seen.get(base, 0)
        seen[base] = n + 1
        key = base if n == 0 else f"{base}_{n}"
        for pname, p in layer.named_parameters():
            out[f"{key}/{pname.replace('.', '/')}"] = p
    return out


def state_tensors(model) -> dict[str, torch.Tensor]:
    return {k: p.detach().cpu().contiguous() for k, p in named_weights(model).items()}


def save_weights(model, filepath, overwrite: bool = True, max_shard_size=None) -> None:
    """``.weights.h5``: Keras's HDF5 layout (`keras_format`); ``.safetensors``: rnnkit's own."""
    path = Path(filepath)
    if max_shard_size is not None:
        raise ValueError("save_weights: max_shard_size (sharded weights) is not supported by rnnkit.keras")
    if not (path.name.endswith(".weights.h5") or path.suffix == ".safetensors"):
        raise ValueError(f"save_weights: the file name must end in .weights.h5 (Keras's format) or "
                         f".safetensors (rnnkit's own), got {path.name!r}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"save_weights: {path} exists and overwrite=False")
    if not all(getattr(l, "built", True) for l in model.modules()):
        raise ValueError(f"save_weights: {model.name} is not built yet; build it or call it on data first")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if path.suffix == ".safetensors":
        save_file(state_tensors(model), str(tmp), metadata={"format": FORMAT})
    else:
        keras_format.write_weights_h5(model, tmp)
    os.replace(tmp, path)


def load_weights(model, filepath, skip_mismatch: bool = False) -> None:
    path = Path(filepath)
    if path.is_dir():
        path = path / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"load_weights: no weights file at {path}")
    if path.suffix in (".h5", ".hdf5"):
        keras_format.read_weights_h5(model, str(path), str(path), skip_mismatch=skip_mismatch)
        return
    if path.suffix == ".keras":
        import io
        import zipfile
        with zipfile.ZipFile(path) as z:
            data = io.BytesIO(z.read("model.weights.h5"))
        keras_format.read_weights_h5(model, data, f"{path}!model.weights.h5", skip_mismatch=skip_mismatch)
        return
    try:
        saved = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"load_weights: {path} is not a readable safetensors file ({e})") from e
    own = state_tensors(model)
    if not own and saved:
        raise ValueError(f"load_weights: {model.name} is not built yet; build it (or call it on "
                         f"data) before loading weights")
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    params = named_weights(model)
    wrong = sorted(k for k in set(saved) & set(own) if tuple(saved[k].shape) != tuple(params[k].shape))
    if (missing or unexpected or wrong) and not skip_mismatch:
        shapes = {k: (tuple(saved[k].shape), tuple(params[k].shape)) for k in wrong}
        raise ValueError(f"load_weights: {path} does not match {model.name}: missing {missing}, "
                         f"unexpected {unexpected}, shapes (file, model) {shapes}; pass "
                         f"skip_mismatch=True to load the rest")
    if missing or unexpected or wrong:  # Keras's skip_mismatch: the layer concerned keeps its weights
        bad_layers = {k.split("/")[0] for k in missing + unexpected + wrong}
        warnings.warn(f"load_weights(skip_mismatch=True): skipped the layers {sorted(bad_layers)} "
                      f"of {model.name}, whose weights in {path} do not match", stacklevel=3)
        saved = {k: t for k, t in saved.items() if k in own and k.split("/")[0] not in bad_layers}
    with torch.no_grad():
        for key, t in saved.items():
            params[key].copy_(t)


def compile_config(model):
    """The compile arguments as JSON-able data, or None when something custom cannot be saved."""
    from rnnkit.keras import losses, metrics, optimizers
    if not getattr(model, "compiled", False) or isinstance(model.optimizer, torch.optim.Optimizer):
        return None
    spec = model.compile_config
    try:
        def loss_ser(l):
            if isinstance(l, dict):
                return {k: loss_ser(v) for k, v in l.items()}
            if isinstance(l, (list, tuple)):
                return [loss_ser(v) for v in l]
            return l if isinstance(l, str) or l is None else losses.serialize(losses.get(l))

        def metric_ser(m):
            if isinstance(m, dict):
                return {k: metric_ser(v) for k, v in m.items()}
            if isinstance(m, (list, tuple)):
                return [metric_ser(v) for v in m]
            return None if m is None else metrics.serialize(m)

        return {"optimizer": optimizers.serialize(model.optimizer), "loss": loss_ser(spec["loss"]),
                "metrics": metric_ser(spec["metrics"]), "loss_weights": spec["loss_weights"],
                "weighted_metrics": metric_ser(spec.get("weighted_metrics"))}
    except ValueError:
        return None


def save_model(model, filepath, overwrite: bool = True, zipped=None) -> None:
    path = Path(filepath)
    if path.suffix == ".keras":
        if zipped is False:
            raise ValueError("save: zipped=False (an unzipped .keras folder) is not supported; use the "
                             "zipped .keras file, or a path without an extension for rnnkit's run folder")
        if not all(getattr(l, "built", True) for l in model.modules()):
            raise ValueError(f"save: {model.name} is not built yet; build it or call it on data first")
        keras_format.save_keras(model, path, overwrite=overwrite)
        return
    if path.suffix in (".h5", ".hdf5"):
        raise ValueError(f"save: {path.name}: the legacy Keras 2 HDF5 model format is not supported (as in "
                         f"Keras 3); save to 'model.keras', or save_weights('model.weights.h5')")
    if path.exists() and not path.is_dir():
        raise ValueError(f"save: {path} is a file; a saved model is a folder (config.json + "
                         f"model.safetensors) — give a folder path")
    if (path / CONFIG).exists() and not overwrite:
        raise FileExistsError(f"save: {path} already holds a model and overwrite=False")
    if not all(getattr(l, "built", True) for l in model.layers):
        raise ValueError(f"save: {model.name} is not built yet; build it or call it on data first")
    try:
        config = model.get_config()
    except (AttributeError, NotImplementedError) as e:
        raise ValueError(f"save: {type(model).__name__} has no get_config (a subclassed model); use "
                         f"save_weights instead") from e
    path.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT, "version": VERSION, "class_name": type(model).__name__,
           "config": config, "compile_config": compile_config(model)}
    save_weights(model, path / WEIGHTS)
    _atomic_write_text(path / CONFIG, json.dumps(doc, indent=2) + "\n")


def load_model(filepath, custom_objects: dict | None = None, compile: bool = True, safe_mode: bool = True):
    """Rebuild a saved model: a ``.keras`` file (written by Keras 3 or by rnnkit: architecture,
    weights and, when ``compile``, the compile settings and the optimizer's state), or an rnnkit run
    folder (the optimizer starts fresh). ``safe_mode=False`` allows a Lambda's saved code to run."""
    from rnnkit.keras.layers.lambda_layer import loading
    from rnnkit.keras.models.functional import Functional
    from rnnkit.keras.models.sequential import Sequential
    path = Path(filepath)
    if path.suffix == ".keras":
        if not path.is_file():
            raise FileNotFoundError(f"load_model: no file at {path}")
        return keras_format.load_keras(path, custom_objects, compile=compile, safe_mode=safe_mode)
    if not path.is_dir():
        what = "a file" if path.exists() else "missing"
        raise FileNotFoundError(f"load_model: {path} is {what}; expected a folder written by "
                                f"model.save() holding {CONFIG} and {WEIGHTS}")
    for name in (CONFIG, WEIGHTS):
        if not (path / name).is_file():
            raise FileNotFoundError(f"load_model: {path / name} is missing")
    try:
        doc = json.loads((path / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"load_model: {path / CONFIG} is not valid JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"load_model: {path / CONFIG} is not an rnnkit.keras model config "
                         f"(format {doc.get('format') if isinstance(doc, dict) else None!r})")
    classes: dict[str, type[Sequential] | type[Functional]] = {"Sequential": Sequential,
                                                                "Functional": Functional}
    if doc.get("class_name") not in classes:
        raise ValueError(f"load_model: unknown model class {doc.get('class_name')!r} in {path / CONFIG}")
    with loading(safe_mode, custom_objects):
        model = classes[doc["class_name"]].from_config(doc["config"], custom_objects)
    load_weights(model, path / WEIGHTS)
    cc = doc.get("compile_config")
    if compile and cc:
        from rnnkit.keras import metrics, optimizers
        def metric_de(m):
            if isinstance(m, list):
                return [metric_de(v) for v in m]
            if isinstance(m, dict) and "class_name" not in m:
                return {k: metric_de(v) for k, v in m.items()}
            return metrics.deserialize(m)
        model.compile(optimizer=optimizers.get(cc["optimizer"]), loss=cc["loss"],
                      metrics=metric_de(cc["metrics"]), loss_weights=cc.get("loss_weights"),
                      weighted_metrics=metric_de(cc.get("weighted_metrics")))
    return model
