"""Functional models: ``Model(inputs, outputs)`` over a graph of layer calls on `Input` tensors
(several inputs and outputs, shared layers, encoder–decoder with ``initial_state=``).

The graph is the `Node`s that the symbolic calls recorded; the model keeps them in dependency order
and replays them on real tensors in ``call``. ``get_config`` writes the graph as JSON (layer
configs + which tensors each call took), ``from_config`` replays it."""
from __future__ import annotations

import torch
from torch import nn

from rnnkit.keras.backend import set_keras_mask, unique_name
from rnnkit.keras.layers import deserialize, serialize
from rnnkit.keras.layers.input_layer import (Input, KerasTensor, flatten_keras_tensors, is_input,
                                             map_structure)
from rnnkit.keras.layers.layer import to_tensor
from rnnkit.keras.models.model import Model


def _topological_nodes(outputs: list[KerasTensor], inputs: list[KerasTensor]) -> list:
    order, seen, input_ids = [], set(), {t.id for t in inputs}

    def visit(t: KerasTensor):
        if t.id in input_ids:
            return
        node = t.origin
        if is_input(t):
            raise ValueError(f"Model: the graph is disconnected: it needs the input {t.name!r} "
                             f"{t.shape}, which is not among the model's inputs")
        if id(node) in seen:
            return
        seen.add(id(node))
        for parent in node.parents:
            visit(parent)
        order.append(node)

    for t in outputs:
        visit(t)
    return order


class Functional(Model):
    def __init__(self, inputs, outputs, name: str | None = None, trainable: bool = True, **kw):
        super().__init__(name=name or unique_name("functional"), trainable=trainable, **kw)
        flat_in, flat_out = flatten_keras_tensors(inputs), flatten_keras_tensors(outputs)
        if not flat_in or not all(isinstance(t, KerasTensor) and is_input(t) for t in flat_in):
            raise ValueError("Model: inputs must be keras.Input(...) tensors (or a list of them)")
        if not flat_out:
            raise ValueError("Model: outputs must be Keras tensors produced by layers from the inputs")
        self._inputs_struct, self._outputs_struct = inputs, outputs
        self._flat_inputs, self._flat_outputs = flat_in, flat_out
        self._nodes = _topological_nodes(flat_out, flat_in)
        layers: list[nn.Module] = []
        for node in self._nodes:
            if all(node.layer is not l for l in layers):
                layers.append(node.layer)
        self._layers = nn.ModuleList(layers)
        self.built = True

    @property
    def inputs(self) -> list[KerasTensor]:
        return list(self._flat_inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._flat_outputs)

    @property
    def output_names(self) -> list[str]:
        return [t.origin.layer.name for t in self._flat_outputs]

    @property
    def layers(self) -> list:
        return list(self._layers)

    def compute_output_shape(self, input_shape):
        shapes = [t.shape for t in self._flat_outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def call(self, inputs, training=None, mask=None):
        given = inputs
        if isinstance(given, dict):
            names = [t.name for t in self._flat_inputs]
            missing = set(names) - set(given)
            if missing:
                raise ValueError(f"{self.name}: missing inputs {sorted(missing)}; expected {names}")
            given = [given[n] for n in names]
        elif not isinstance(given, (list, tuple)) or len(self._flat_inputs) == 1 and len(given) != 1:
            given = [given]
        if len(given) != len(self._flat_inputs):
            raise ValueError(f"{self.name}: expected {len(self._flat_inputs)} inputs "
                             f"{[t.shape for t in self._flat_inputs]}, got {len(given)}")
        values = {}
        masks = list(mask) if isinstance(mask, (list, tuple)) else [mask] * len(given)
        for t, v, m in zip(self._flat_inputs, given, masks):
            v = to_tensor(v)
            if m is not None:  # Keras's call(mask=): the inputs' time-step masks
                v = v.clone()
                set_keras_mask(v, torch.as_tensor(m, dtype=torch.bool))
            if v.dim() != len(t.shape) or any(d is not None and d != s
                                              for d, s in zip(t.shape[1:], v.shape[1:])):
                raise ValueError(f"{self.name}: input {t.name!r} expects shape {t.shape}, got "
                                 f"{tuple(v.shape)}")
            values[t.id] = v
        for node in self._nodes:
            args = map_structure(lambda t: values[t.id], node.args, leaf=KerasTensor)
            kwargs = map_structure(lambda t: values[t.id], node.kwargs, leaf=KerasTensor)
            out = node.layer(*args, **kwargs)
            outs = list(out) if len(node.outputs) > 1 else [out]
            for t, v in zip(node.outputs, outs):
                values[t.id] = v
        return map_structure(lambda t: values[t.id], self._outputs_struct, leaf=KerasTensor)

    # -- configuration: the graph as JSON -------------------------------------------------------
    def get_config(self) -> dict:
        refs = {}  # tensor id -> [layer name, node index of that layer, output index]
        for t in self._flat_inputs:
            refs[t.id] = [t.name, 0, 0]
        calls: list[dict] = []
        per_layer: dict[str, int] = {}
        for node in self._nodes:
            k = per_layer.setdefault(node.layer.name, 0)
            per_layer[node.layer.name] = k + 1
            for i, t in enumerate(node.outputs):
                refs[t.id] = [node.layer.name, k, i]
            ref = lambda t: {"keras_tensor": refs[t.id]}  # noqa: E731
            calls.append({"layer": node.layer.name,
                          "args": map_structure(ref, list(node.args), leaf=KerasTensor),
                          "kwargs": map_structure(ref, node.kwargs, leaf=KerasTensor)})
        return {
            "name": self.name, "trainable": self.trainable,
            "input_layers": [t.origin.layer.get_config() for t in self._flat_inputs],
            "layers": [serialize(l) for l in self.layers], "calls": calls,
            "inputs": map_structure(lambda t: refs[t.id], self._inputs_struct, leaf=KerasTensor),
            "outputs": map_structure(lambda t: refs[t.id], self._outputs_struct, leaf=KerasTensor),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        tensors = {}
        for spec in config["input_layers"]:
            t = Input(batch_shape=tuple(spec["batch_shape"]), dtype=spec["dtype"], name=spec["name"])
            tensors[(spec["name"], 0, 0)] = t
        layers = {spec["config"]["name"]: deserialize(spec, custom_objects) for spec in config["layers"]}
        calls_made: dict[str, int] = {}

        def resolve(x):
            if isinstance(x, dict) and set(x) == {"keras_tensor"}:
                return tensors[tuple(x["keras_tensor"])]
            if isinstance(x, list):
                return [resolve(v) for v in x]
            if isinstance(x, dict):
                return {k: resolve(v) for k, v in x.items()}
            return x

        for call in config["calls"]:
            layer = layers[call["layer"]]
            k = calls_made.get(call["layer"], 0)
            calls_made[call["layer"]] = k + 1
            out = layer(*resolve(call["args"]), **resolve(call["kwargs"]))
            for i, t in enumerate(out if isinstance(out, (list, tuple)) else [out]):
                tensors[(call["layer"], k, i)] = t

        def pick(x):
            if isinstance(x, list) and len(x) == 3 and isinstance(x[0], str):
                return tensors[tuple(x)]
            return [pick(v) for v in x]

        return cls(pick(config["inputs"]), pick(config["outputs"]), name=config["name"],
                   trainable=config.get("trainable", True))
