"""``keras.layers``: the layers of a recurrent model, as ``torch.nn.Module``s with Keras's arguments."""
from __future__ import annotations

import inspect

from rnnkit.keras.layers.core import (Activation, Concatenate, Dense, Dropout, Embedding, Flatten,
                                      Masking, RepeatVector, Reshape)
from rnnkit.keras.layers.input_layer import Input, InputLayer, KerasTensor
from rnnkit.keras.layers.layer import Layer
from rnnkit.keras.layers.recurrent import GRU, LSTM, SimpleRNN, fast_path_unavailable
from rnnkit.keras.layers.rnn import RNN
from rnnkit.keras.layers.rnn_cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from rnnkit.keras.layers.wrappers import Bidirectional, TimeDistributed
from rnnkit.keras.layers.attention import AdditiveAttention, Attention, MultiHeadAttention
from rnnkit.keras.layers.convolutional import (AveragePooling1D, Conv1D, GlobalAveragePooling1D,
                                               GlobalMaxPooling1D, MaxPooling1D)
from rnnkit.keras.layers.lambda_layer import Lambda
from rnnkit.keras.layers.merging import Add, Average, Maximum, Minimum, Multiply, Subtract
from rnnkit.keras.layers.normalization import BatchNormalization, LayerNormalization

#: every layer class a saved config may name
LAYERS = {cls.__name__: cls for cls in (
    Activation, Concatenate, Dense, Dropout, Embedding, Flatten, Masking, RepeatVector, Reshape,
    SimpleRNN, LSTM, GRU, Bidirectional, TimeDistributed, RNN, SimpleRNNCell, LSTMCell, GRUCell,
    StackedRNNCells, Attention, AdditiveAttention, MultiHeadAttention, Conv1D, MaxPooling1D,
    AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, Lambda, Add, Subtract, Multiply,
    Average, Maximum, Minimum, LayerNormalization, BatchNormalization)}


def serialize(layer: Layer) -> dict:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config: dict, custom_objects: dict | None = None) -> Layer:
    known = {**LAYERS, **(custom_objects or {})}
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in known:
        raise ValueError(f"unknown layer class {name!r} in the config; known layers: {sorted(known)} "
                         f"(pass custom_objects={{'{name}': cls}} for your own)")
    cls = known[name]
    if "custom_objects" in inspect.signature(cls.from_config).parameters:  # containers of layers
        return cls.from_config(config["config"], custom_objects=custom_objects)
    return cls.from_config(config["config"])


__all__ = ["Layer", "Input", "InputLayer", "KerasTensor", "Dense", "Activation", "Dropout",
           "Flatten", "RepeatVector", "Reshape", "Concatenate", "Embedding", "Masking", "RNN",
           "SimpleRNN", "LSTM", "GRU", "SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells",
           "Attention", "AdditiveAttention", "MultiHeadAttention", "Conv1D", "MaxPooling1D",
           "AveragePooling1D", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "Lambda", "Add",
           "Subtract", "Multiply", "Average", "Maximum", "Minimum", "LayerNormalization",
           "BatchNormalization", "Bidirectional", "TimeDistributed", "serialize",
           "deserialize", "fast_path_unavailable"]
