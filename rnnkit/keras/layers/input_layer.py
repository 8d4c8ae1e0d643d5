"""Symbolic tensors for the functional API: ``Input(shape)`` and the graph nodes layers record.

``x = Input((T, I)); y = LSTM(8)(x)`` computes nothing: each layer called on a `KerasTensor`
builds itself for that shape and returns new `KerasTensor`s carrying the output shape and the
`Node` (layer + arguments) that produced them. `Model(inputs, outputs)` walks these nodes."""
from __future__ import annotations

import itertools

from rnnkit.keras import backend

_ids = itertools.count()


class Node:
    """One call of ``layer`` on symbolic arguments (``args``/``kwargs`` may nest KerasTensors)."""

    def __init__(self, layer, args, kwargs):
        self.layer, self.args, self.kwargs = layer, tuple(args), dict(kwargs)
        self.outputs: list[KerasTensor] = []
        self.parents = flatten_keras_tensors((self.args, self.kwargs))


class KerasTensor:
    """A symbolic tensor: ``shape`` (batch axis first, ``None`` where unknown) and ``dtype``."""

    def __init__(self, shape, dtype: str = "float32", node: Node | None = None, index: int = 0,
                 name: str | None = None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.node, self.index, self.name = node, index, name
        self.id = next(_ids)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def origin(self) -> Node:
        """The call that made this tensor (`Input` and layer calls always record one)."""
        if self.node is None:
            raise ValueError(f"{self!r} was made by no layer call and no keras.Input; it is not part of a "
                             f"graph")
        return self.node

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *a, **k):
        raise TypeError("a KerasTensor is symbolic (from keras.Input); it has no values. Build a "
                        "Model(inputs, outputs) and call the model on data instead")


class InputLayer:
    """The layer behind ``Input``: no parameters, shown in functional summaries."""

    def __init__(self, shape, batch_size=None, dtype="float32", name=None):
        self.name = name or backend.unique_name("input_layer")
        self.batch_shape = (batch_size,) + tuple(shape)
        self.dtype = dtype

    def get_config(self) -> dict:
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype, "name": self.name}


def Input(shape=None, batch_size: int | None = None, dtype=None, sparse=None, ragged=None,
          batch_shape=None, name: str | None = None, tensor=None, optional: bool = False) -> KerasTensor:
    """A symbolic input of per-sample ``shape`` (e.g. ``(T, I)``; ``None`` for a variable length),
    as ``keras.Input``. Sparse, ragged, optional and tensor-backed inputs are refused (not here)."""
    for arg, value in (("sparse", sparse), ("ragged", ragged), ("tensor", tensor), ("optional", optional)):
        if value not in (None, False):
            raise ValueError(f"Input: {arg}={value!r} is not supported by rnnkit.keras (dense "
                             f"tensors only; pad ragged sequences with keras.utils.pad_sequences)")
    if batch_shape is not None:
        batch_size, shape = batch_shape[0], tuple(batch_shape[1:])
    if shape is None:
        raise ValueError("Input: give shape=(...) (per sample, without the batch axis)")
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(d is None or (isinstance(d, int) and d > 0)
                                                       for d in shape):
        raise ValueError(f"Input: shape must be a tuple of positive ints or None (per sample, "
                         f"without the batch axis), got {shape!r}")
    layer = InputLayer(tuple(shape), batch_size, dtype or "float32", name)
    node = Node(layer, (), {})
    t = KerasTensor(layer.batch_shape, layer.dtype, node=node, name=layer.name)
    node.outputs = [t]
    return t


def is_input(t: KerasTensor) -> bool:
    return t.node is not None and isinstance(t.node.layer, InputLayer)


def map_structure(fn, x, leaf=None):
    """Apply ``fn`` to every leaf of nested lists/tuples/dicts (leaves of type ``leaf`` if given)."""
    if isinstance(x, (list, tuple)) and not (leaf is not None and isinstance(x, leaf)):
        return type(x)(map_structure(fn, v, leaf) for v in x)
    if isinstance(x, dict):
        return {k: map_structure(fn, v, leaf) for k, v in x.items()}
    if leaf is not None and not isinstance(x, leaf):
        return x
    return fn(x)


def flatten_keras_tensors(x) -> list[KerasTensor]:
    out: list[KerasTensor] = []
    map_structure(out.append, x, leaf=KerasTensor)
    return out


def any_keras_tensor(x) -> bool:
    return bool(flatten_keras_tensors(x))
