"""`Lambda`: a function as a layer (``Lambda(lambda x: x[:, -1])``).

Saving follows Keras's format so files move both ways: a named function is saved by name
(``{"class_name": "function", "config": name, "module": module}``) and found again in
``custom_objects``; a ``lambda`` is saved as Keras saves it (its marshalled bytecode). Loading never
runs code unasked: a lambda's bytecode is only rebuilt, and a function only imported from its module,
under ``safe_mode=False`` — as Keras does."""
from __future__ import annotations

import base64
import contextlib
import contextvars
import importlib
import inspect
import marshal
import types

import torch

from rnnkit.keras.layers.layer import Layer

#: set by `load_model(safe_mode=...)` while a model is being rebuilt
SAFE_MODE: contextvars.ContextVar[bool] = contextvars.ContextVar("rnnkit_keras_safe_mode", default=True)
#: the custom objects of the load in progress
CUSTOM_OBJECTS: contextvars.ContextVar[dict] = contextvars.ContextVar("rnnkit_keras_custom", default={})


@contextlib.contextmanager
def loading(safe_mode: bool, custom_objects: dict | None):
    a, b = SAFE_MODE.set(bool(safe_mode)), CUSTOM_OBJECTS.set(dict(custom_objects or {}))
    try:
        yield
    finally:
        SAFE_MODE.reset(a)
        CUSTOM_OBJECTS.reset(b)


def serialize_function(fn) -> dict:
    if getattr(fn, "__name__", None) == "<lambda>":
        code = base64.b64encode(marshal.dumps(fn.__code__)).decode("ascii")
        return {"class_name": "__lambda__", "config": {"code": code, "defaults": fn.__defaults__,
                                                       "closure": None}}
    if not callable(fn) or not hasattr(fn, "__name__"):
        raise ValueError(f"Lambda: cannot save the function {fn!r} (a lambda or a named function only)")
    return {"class_name": "function", "config": fn.__name__, "module": fn.__module__,
            "registered_name": fn.__name__}


UNSAFE = ("loading it runs code from the file; pass safe_mode=False to load_model only if you trust "
          "the file (as in Keras)")


def deserialize_function(spec):
    if callable(spec):
        return spec
    if not isinstance(spec, dict):
        raise ValueError(f"Lambda: cannot read the saved function {spec!r}")
    name = spec.get("config") if spec.get("class_name") == "function" else None
    known = CUSTOM_OBJECTS.get()
    if name is not None and name in known:
        return known[name]
    if SAFE_MODE.get():
        what = "a Python lambda" if spec.get("class_name") == "__lambda__" else f"the function {name!r}"
        hint = f" (or pass custom_objects={{'{name}': {name}}})" if name else ""
        raise ValueError(f"Lambda: the saved model holds {what}: {UNSAFE}{hint}")
    if spec.get("class_name") == "__lambda__":
        cfg = spec["config"]
        code = marshal.loads(base64.b64decode(cfg["code"]))
        defaults = tuple(cfg["defaults"]) if cfg.get("defaults") else None
        return types.FunctionType(code, {"__builtins__": __builtins__, **_ops_globals()}, None, defaults)
    return getattr(importlib.import_module(spec["module"]), name)


def _ops_globals() -> dict:
    from rnnkit import keras
    return {"keras": keras, "ops": keras.ops, "torch": torch}


class Lambda(Layer):
    """``function(inputs, **arguments)``; ``output_shape`` (without the batch axis, or a function
    of the input shape) when it cannot be found by running the function on zeros; ``mask`` a
    function ``(inputs, mask) -> mask`` or a fixed mask (default: the input's mask passes)."""

    supports_masking = True

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        function = deserialize_function(function)
        if not callable(function):
            raise TypeError(f"Lambda: function must be callable, got {type(function).__name__}")
        self.function, self.output_shape_arg, self.mask = function, output_shape, mask
        self.arguments = dict(arguments or {})
        self._takes_training = "training" in inspect.signature(function).parameters \
            if not isinstance(function, type) else False

    def forward(self, inputs, mask=None, training=None):
        kw = dict(self.arguments)
        if self._takes_training:
            kw["training"] = self.training if training is None else training
        return self.function(inputs, **kw)

    def compute_mask(self, inputs, mask):
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask if self.mask is not None else mask

    def compute_output_shape(self, input_shape):
        given = self.output_shape_arg
        if callable(given):
            return given(input_shape)
        if given is not None:
            return (input_shape[0] if isinstance(input_shape, tuple) else None, *tuple(given))
        from rnnkit.keras.layers.input_layer import map_structure
        from rnnkit.keras.layers.layer import is_shape
        probe = map_structure(lambda s: torch.zeros([2 if d is None else d for d in s]),
                              input_shape, leaf=tuple) if not is_shape(input_shape) else \
            torch.zeros([2 if d is None else d for d in input_shape])
        with torch.no_grad():
            out = self.function(probe, **self.arguments)
        return map_structure(lambda t: (None, *t.shape[1:]), out, leaf=torch.Tensor)

    def get_config(self):
        config = {**super().get_config(), "function": serialize_function(self.function),
                  "arguments": self.arguments}
        if self.output_shape_arg is not None and not callable(self.output_shape_arg):
            config["output_shape"] = list(self.output_shape_arg)
        return config
