"""`Sequential`: a stack of layers, each feeding the next (``Sequential([SimpleRNN(3), Dense(5)])``).

It builds as soon as the input shape is known — from an ``Input(shape)`` first entry, the first
layer's ``input_shape=``, or the first batch — by passing shapes through ``compute_output_shape``,
so ``summary()`` works before any data is seen. Plain ``torch.nn.Module``s may sit in the stack too
(they build nothing and show ``?`` in the summary)."""
from __future__ import annotations

import torch
from torch import nn

from rnnkit.keras import backend
from rnnkit.keras.layers import deserialize, serialize
from rnnkit.keras.layers.input_layer import KerasTensor, is_input
from rnnkit.keras.layers.layer import Layer
from rnnkit.keras.models.model import Model


class Sequential(Model):
    def __init__(self, layers=None, trainable: bool = True, name: str | None = None):
        super().__init__(name=name, trainable=trainable)
        self._layers = nn.ModuleList()
        self._build_input_shape: tuple | None = None   # (None, T, I): batch axis first
        for layer in layers or []:
            self.add(layer)

    def add(self, layer) -> None:
        """Append a layer (or an ``Input(shape)`` as the first entry)."""
        if isinstance(layer, KerasTensor):
            if not is_input(layer) or len(self._layers):
                raise ValueError(f"{self.name}: only an Input(shape) may be added, and only first")
            self._build_input_shape = layer.shape
            return
        if not isinstance(layer, nn.Module):
            raise TypeError(f"{self.name}: add() expects a layer (a torch.nn.Module), got "
                            f"{type(layer).__name__}")
        if not len(self._layers) and isinstance(layer, Layer) and layer._declared_shape is not None \
                and self._build_input_shape is None:
            self._build_input_shape = layer._declared_shape
        self._layers.append(layer)
        self.built = False
        if self._build_input_shape is not None:
            self.build(self._build_input_shape)

    def pop(self) -> nn.Module:
        layer = self._layers[-1]
        del self._layers[-1]
        return layer

    @property
    def layers(self) -> list:
        return list(self._layers)

    def build(self, input_shape=None) -> None:
        """Build every layer for inputs of ``input_shape`` (batch axis first, may be None)."""
        shape = tuple(input_shape) if input_shape is not None else self._build_input_shape
        if shape is None:
            raise ValueError(f"{self.name}: give build() the input shape, e.g. (None, T, I)")
        self._build_input_shape = shape
        for layer in self._layers:
            if shape is None or not isinstance(layer, Layer):
                shape = None  # a plain torch module: the layers after it build at the first call
                continue
            layer._ensure_built(shape)
            shape = layer.compute_output_shape(shape)
        self._summary_output_shape = shape
        self.built = True

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in self._layers:
            shape = layer.compute_output_shape(shape) if isinstance(layer, Layer) else None
        return shape

    def __call__(self, *args, **kwargs):
        if args and isinstance(args[0], (list, tuple)) and len(args[0]) == 1:
            args = (args[0][0],) + args[1:]  # [x]: the single input in a list, as Keras accepts
        return super().__call__(*args, **kwargs)

    def call(self, inputs, training=None, mask=None):
        x = inputs
        if mask is not None:  # a time-step mask (B, T) for the first layer, as Keras's call(mask=)
            x = x.clone() if isinstance(x, torch.Tensor) else x
            backend.set_keras_mask(x, torch.as_tensor(mask, dtype=torch.bool))
        for layer in self._layers:
            x = layer(x)
        return x

    def get_config(self) -> dict:
        for layer in self._layers:
            if not isinstance(layer, Layer):
                raise ValueError(f"{self.name}: cannot save a Sequential holding the plain torch "
                                 f"module {type(layer).__name__}; use save_weights instead")
        shape = None if self._build_input_shape is None else list(self._build_input_shape)
        return {"name": self.name, "trainable": self.trainable, "build_input_shape": shape,
                "layers": [serialize(l) for l in self.layers]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for spec in config["layers"]:
            model.add(deserialize(spec, custom_objects))
        if config.get("build_input_shape") is not None and not model.built:
            model.build(tuple(config["build_input_shape"]))
        return model
