"""Keras 3's ``config.json``: rnnkit's models written as Keras serialises them, and read back.

Keras wraps every object as ``{"module", "class_name", "config", "registered_name"}`` (layers also
carry ``build_config: {"input_shape"}``); a `Sequential` lists an ``InputLayer`` first; a functional
model lists its layers with ``inbound_nodes`` (the arguments of each call, tensors written as
``__keras_tensor__`` with ``keras_history = [layer name, call index, output index]``). Layer
configs use Keras's argument names on both sides, so the translation is this wrapping plus: options
Keras writes at their defaults that rnnkit has no use for (``quantization_config: null``,
``*_regularizer: null``...) are dropped, and any other option rnnkit does not know reaches the
layer's constructor, which refuses it by name."""
from __future__ import annotations

import warnings

from rnnkit.keras.layers.input_layer import Input, KerasTensor, map_structure

MODULES = {"layer": "keras.layers", "initializer": "keras.initializers", "loss": "keras.losses",
           "metric": "keras.metrics", "optimizer": "keras.optimizers",
           "schedule": "keras.optimizers.schedules"}
NESTED_LAYER_KEYS = ("layer", "backward_layer", "cell")
#: written by Keras, meaningless here when at these values
IGNORABLE = {"quantization_config": None, "lora_rank": None, "lora_alpha": None, "sparse": False,
             "ragged": False, "optional": False, "query_shape": "*", "key_shape": "*", "value_shape": "*",
             "registered_name": "*"}


def _wrap(kind: str, class_name: str, config, **extra) -> dict:
    return {"module": MODULES[kind], "class_name": class_name, "config": config, "registered_name": None,
            **extra}


def _shape(s):
    """A shape (or nested shapes) as JSON lists."""
    if isinstance(s, tuple) and all(d is None or isinstance(d, int) for d in s):
        return list(s)
    if isinstance(s, (list, tuple)):
        return [_shape(v) for v in s]
    return s


def _tuple_shape(s):
    if isinstance(s, list) and all(d is None or isinstance(d, int) for d in s):
        return tuple(s)
    if isinstance(s, list):
        return [_tuple_shape(v) for v in s]
    return s


# -- rnnkit -> Keras --------------------------------------------------------------------------------
def _nested_layer(spec: dict) -> dict:
    from rnnkit.keras.layers import LAYERS
    entry = _wrap("layer", spec["class_name"], _config_to_keras(spec["config"]))
    if spec["class_name"] not in LAYERS:  # the user's class (a cell, say): found via custom_objects
        entry["module"], entry["registered_name"] = None, spec["class_name"]
    return entry


def _config_to_keras(config: dict) -> dict:
    out = {}
    for k, v in config.items():
        if k == "batch_input_shape":
            continue  # Keras 3 keeps the input shape on the InputLayer / build_config
        if k.endswith("_initializer") and isinstance(v, dict):
            v = _wrap("initializer", v["class_name"], v.get("config", {}))
        elif k in NESTED_LAYER_KEYS and isinstance(v, dict) and "class_name" in v:
            v = _nested_layer(v)
        elif k == "cells" and isinstance(v, list):
            v = [_nested_layer(c) for c in v]
        out[k] = v
    return out


def layer_to_keras(layer) -> dict:
    from rnnkit.keras.layers import LAYERS
    name = type(layer).__name__
    entry = _wrap("layer", name, _config_to_keras(layer.get_config()))
    if name not in LAYERS:  # the user's class: Keras finds it through custom_objects
        entry["module"], entry["registered_name"] = None, name
    shape = getattr(layer, "_build_shape", None)
    if shape is not None and name == "MultiHeadAttention":  # Keras builds it from three shapes
        q, v, k = (_shape(tuple(s)) for s in shape)
        entry["build_config"] = {"shapes_dict": {"query_shape": q, "value_shape": v, "key_shape": k}}
    elif shape is not None:
        entry["build_config"] = {"input_shape": _shape(shape)}
    return entry


def _input_entry(name: str, batch_shape, dtype="float32") -> dict:
    return _wrap("layer", "InputLayer", {"batch_shape": list(batch_shape), "dtype": dtype, "sparse": False,
                                         "ragged": False, "name": name, "optional": False})


def model_to_keras(model) -> dict:
    """The model's ``config.json`` document, with its compile settings."""
    from rnnkit.keras.models.functional import Functional
    from rnnkit.keras.models.sequential import Sequential
    from rnnkit.keras.layers.layer import Layer
    plain = [type(m).__name__ for m in model.layers if not isinstance(m, Layer)]
    if plain:
        raise ValueError(f"save: {model.name} holds plain torch modules {plain}, which have no Keras "
                         f"config; save its weights instead (save_weights('....weights.h5'))")
    if isinstance(model, Sequential):
        shape = model._build_input_shape
        layers = [layer_to_keras(layer) for layer in model.layers]
        if shape is not None:
            layers.insert(0, _input_entry("input_layer", _shape(tuple(shape))))
        doc = {"module": "keras", "class_name": "Sequential", "registered_name": None,
               "config": {"name": model.name, "trainable": model.trainable, "layers": layers}}
        if shape is not None:
            doc["build_config"] = {"input_shape": _shape(tuple(shape))}
    elif isinstance(model, Functional):
        doc = {"module": "keras.src.models.functional", "class_name": "Functional",
               "registered_name": "Functional", "config": _functional_to_keras(model),
               "build_config": {"input_shape": None}}
    else:
        raise ValueError(f"save: {type(model).__name__} is a subclassed model, which has no config; "
                         f"save its weights with save_weights('....weights.h5') instead")
    doc["compile_config"] = compile_to_keras(model)
    return doc


def _functional_to_keras(model) -> dict:
    refs: dict[int, list] = {}
    entries, by_layer = [], {}
    for t in model._flat_inputs:
        refs[t.id] = [t.name, 0, 0]
        entries.append({**_input_entry(t.name, _shape(t.shape), t.dtype), "name": t.name,
                        "inbound_nodes": []})

    def ref(t: KerasTensor) -> dict:
        return {"class_name": "__keras_tensor__",
                "config": {"shape": _shape(t.shape), "dtype": t.dtype, "keras_history": refs[t.id]}}

    for node in model._nodes:
        layer = node.layer
        if id(layer) not in by_layer:
            by_layer[id(layer)] = {**layer_to_keras(layer), "name": layer.name, "inbound_nodes": []}
            entries.append(by_layer[id(layer)])
        calls = by_layer[id(layer)]["inbound_nodes"]
        calls.append({"args": map_structure(ref, list(node.args), leaf=KerasTensor),
                      "kwargs": map_structure(ref, dict(node.kwargs), leaf=KerasTensor)})
        for i, t in enumerate(node.outputs):
            refs[t.id] = [layer.name, len(calls) - 1, i]
    pick = lambda s: map_structure(lambda t: refs[t.id], s, leaf=KerasTensor)  # noqa: E731
    ins, outs = pick(model._inputs_struct), pick(model._outputs_struct)
    return {"name": model.name, "trainable": model.trainable, "layers": entries,
            "input_layers": ins, "output_layers": outs}


def compile_to_keras(model) -> dict | None:
    from rnnkit.keras.models.saving import compile_config
    cc = compile_config(model)
    if cc is None:
        return None
    opt = dict(cc["optimizer"])
    config = dict(opt["config"], name=model.optimizer.name)
    if isinstance(config.get("learning_rate"), dict):
        lr = config["learning_rate"]
        config["learning_rate"] = _wrap("schedule", lr["class_name"], lr["config"])

    def wrap(kind, spec):
        if isinstance(spec, dict) and "class_name" in spec:
            return _wrap(kind, spec["class_name"], spec.get("config", {}))
        if isinstance(spec, dict):
            return {k: wrap(kind, v) for k, v in spec.items()}
        if isinstance(spec, list):
            return [wrap(kind, v) for v in spec]
        return spec

    return {"optimizer": _wrap("optimizer", opt["class_name"], config), "loss": wrap("loss", cc["loss"]),
            "loss_weights": cc["loss_weights"], "metrics": wrap("metric", cc["metrics"]),
            "weighted_metrics": wrap("metric", cc.get("weighted_metrics")), "run_eagerly": False,
            "steps_per_execution": 1, "jit_compile": False}


# -- Keras -> rnnkit --------------------------------------------------------------------------------
def _config_from_keras(config: dict) -> dict:
    out = {}
    for k, v in config.items():
        if k in IGNORABLE and (IGNORABLE[k] == "*" or v == IGNORABLE[k]):
            continue
        if (k.endswith("_regularizer") or k.endswith("_constraint")) and v is None:
            continue
        if k in NESTED_LAYER_KEYS and isinstance(v, dict) and "class_name" in v:
            v = {"class_name": v["class_name"], "config": _config_from_keras(v["config"])}
        elif k == "cells" and isinstance(v, list):
            v = [{"class_name": c["class_name"], "config": _config_from_keras(c["config"])} for c in v]
        elif k.endswith("_initializer") and isinstance(v, dict):
            v = {"class_name": v["class_name"], "config": v.get("config", {})}
        out[k] = v
    return out


def layer_from_keras(entry: dict, custom_objects=None):
    from rnnkit.keras.layers import LAYERS, deserialize
    name = entry.get("class_name")
    known = {**LAYERS, **(custom_objects or {})}
    if name not in known and entry.get("registered_name") not in known:
        raise ValueError(f"load_model: the file holds a layer of class {name!r}, which rnnkit.keras does "
                         f"not have; known layers: {sorted(LAYERS)} (pass custom_objects={{'{name}': cls}} "
                         f"for your own)")
    if name not in known:
        name = entry["registered_name"]
    layer = deserialize({"class_name": name, "config": _config_from_keras(entry["config"])}, custom_objects)
    build = entry.get("build_config") or {}
    if "shapes_dict" in build and not layer.built:  # MultiHeadAttention: query, value, key shapes
        d = build["shapes_dict"]
        q, v = _tuple_shape(list(d["query_shape"])), _tuple_shape(list(d["value_shape"]))
        k = _tuple_shape(list(d["key_shape"])) if d.get("key_shape") else v
        layer._ensure_built((q, v, k))
    elif build.get("input_shape") is not None and not layer.built:
        layer._ensure_built(_tuple_shape(build["input_shape"]))
    return layer


def model_from_keras(doc: dict, custom_objects=None):
    from rnnkit.keras.models.sequential import Sequential
    kind, config = doc.get("class_name"), doc.get("config", {})
    if kind == "Sequential":
        model = Sequential(name=config.get("name"), trainable=config.get("trainable", True))
        shape = (doc.get("build_config") or {}).get("input_shape")
        for entry in config["layers"]:
            if entry.get("class_name") == "InputLayer":
                shape = entry["config"]["batch_shape"]
                continue
            model.add(layer_from_keras(entry, custom_objects))
        if shape is not None and not model.built:
            model.build(tuple(shape))
        return model
    if kind in ("Functional", "Model"):
        return _functional_from_keras(config, custom_objects)
    raise ValueError(f"load_model: cannot rebuild a model of class {kind!r} from its config (Sequential "
                     f"and functional models can be; a subclassed model loads with load_weights)")


def _functional_from_keras(config: dict, custom_objects):
    from rnnkit.keras.models.functional import Functional
    tensors: dict[tuple, KerasTensor] = {}
    layers, pending, op_nodes = {}, [], {}
    for entry in config["layers"]:
        if str(entry.get("module") or "").startswith("keras.src.ops"):
            # a keras.ops call recorded as a node; Keras writes these for the masks it computes
            # (Masking -> NotEqual, Any), which rnnkit's layers compute themselves: skipped, and an
            # error below if anything other than a mask needs one
            op_nodes[entry["name"]] = entry["class_name"]
            continue
        if entry.get("class_name") == "InputLayer":
            c = entry["config"]
            dtype = c.get("dtype") if isinstance(c.get("dtype"), str) else None
            tensors[(entry["name"], 0, 0)] = Input(batch_shape=tuple(c["batch_shape"]), dtype=dtype,
                                                   name=c.get("name", entry["name"]))
            continue
        layers[entry["name"]] = layer_from_keras(entry, custom_objects)
        pending += [(entry["name"], i, node) for i, node in enumerate(entry.get("inbound_nodes", []))]

    def is_ref(x):
        return isinstance(x, dict) and x.get("class_name") == "__keras_tensor__"

    def refs(x) -> list:
        if is_ref(x):
            return [tuple(x["config"]["keras_history"])]
        if isinstance(x, (list, tuple)):
            return [r for v in x for r in refs(v)]
        if isinstance(x, dict):
            return [r for v in x.values() for r in refs(v)]
        return []

    def resolve(x):
        if is_ref(x):
            return tensors[tuple(x["config"]["keras_history"])]
        if isinstance(x, list):
            return [resolve(v) for v in x]
        if isinstance(x, dict):
            return {k: resolve(v) for k, v in x.items()}
        return x

    def live(node) -> dict:
        """The call's arguments without ``training`` (fit decides) and ``mask`` (masks travel on
        the tensors themselves in rnnkit)."""
        kwargs = {k: v for k, v in node.get("kwargs", {}).items() if k not in ("training", "mask")}
        return {"args": node.get("args", []), "kwargs": kwargs}

    done: dict[str, int] = {}
    while pending:  # call each layer once its inputs exist, its calls in their recorded order
        progress = False
        for item in list(pending):
            name, i, node = item
            call = live(node)
            if done.get(name, 0) != i or not all(r in tensors for r in refs(call)):
                continue
            out = layers[name](*resolve(call["args"]), **resolve(call["kwargs"]))
            for k, t in enumerate(out if isinstance(out, (list, tuple)) else [out]):
                tensors[(name, i, k)] = t
            done[name] = i + 1
            pending.remove(item)
            progress = True
        if not progress:
            needed = {r for _, _, node in pending for r in refs(live(node))}
            ops = sorted({op_nodes[r[0]] for r in needed if r[0] in op_nodes})
            if ops:
                raise ValueError(f"load_model: the functional graph calls keras.ops directly ({ops}) on "
                                 f"tensors; rnnkit.keras rebuilds layers only (wrap such code in a layer)")
            missing = sorted(r for r in needed if r not in tensors)
            raise ValueError(f"load_model: the functional graph cannot be rebuilt; tensors never made: "
                             f"{missing}")

    def pick(x):
        if isinstance(x, list) and len(x) == 3 and isinstance(x[0], str):
            return tensors[tuple(x)]
        return [pick(v) for v in x]

    return Functional(pick(config["input_layers"]), pick(config["output_layers"]), name=config.get("name"),
                      trainable=config.get("trainable", True))


def compile_from_keras(model, cc: dict, where: str) -> None:
    """Compile ``model`` as the file's ``compile_config`` says; a setting rnnkit cannot rebuild leaves
    the model uncompiled with a warning, as Keras does."""
    from rnnkit.keras import optimizers

    def plain(spec):
        if isinstance(spec, dict) and "class_name" in spec:
            return {"class_name": spec["class_name"], "config": spec.get("config", {})}
        if isinstance(spec, dict):
            return {k: plain(v) for k, v in spec.items()}
        if isinstance(spec, list):
            return [plain(v) for v in spec]
        return spec

    from rnnkit.keras import losses, metrics

    def loss_of(spec):
        if isinstance(spec, dict) and "class_name" in spec:
            return losses.get(spec)
        if isinstance(spec, dict):
            return {k: loss_of(v) for k, v in spec.items()}
        if isinstance(spec, list):
            return [loss_of(v) for v in spec]
        return spec

    def metric_of(spec):
        if isinstance(spec, dict) and "class_name" in spec:
            return metrics.deserialize(spec)
        if isinstance(spec, dict):
            return {k: metric_of(v) for k, v in spec.items()}
        if isinstance(spec, list):
            return [metric_of(v) for v in spec]
        return spec

    try:
        opt = plain(cc["optimizer"])
        model.compile(optimizer=optimizers.get(opt) if isinstance(opt, dict) else opt,
                      loss=loss_of(plain(cc.get("loss"))), loss_weights=cc.get("loss_weights"),
                      metrics=metric_of(plain(cc.get("metrics"))),
                      weighted_metrics=metric_of(plain(cc.get("weighted_metrics"))))
    except (ValueError, TypeError, KeyError) as e:
        warnings.warn(f"load_model: {where} could not be compiled as saved ({e}); the model is returned "
                      f"uncompiled: call compile() yourself", stacklevel=3)
