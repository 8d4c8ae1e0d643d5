"""`Layer`: the base of every Keras-style layer — an ordinary ``torch.nn.Module`` with Keras's habits.

What it adds to ``nn.Module`` (and nothing more):

- a Keras name (``lstm``, ``lstm_1``...), ``get_config()`` and ``from_config()``;
- *build on first call*: ``build(input_shape)`` creates the parameters when the input size is first
  known (from ``input_shape=`` / ``Input`` / the first real batch), as Keras does;
- Keras's weight API: ``weights``, ``get_weights()`` / ``set_weights()`` (NumPy arrays, Keras order),
  ``count_params()``, ``trainable``;
- masks: a layer that supports masking receives the mask attached to its input (``x._keras_mask``,
  as in Keras 3's torch backend) and attaches ``compute_mask(...)`` to its output;
- symbolic calls: called on an `Input` (a `KerasTensor`), it records a graph node for the functional
  `Model` instead of computing.

Keras semantics for training mode: a Keras layer starts in inference mode (``model(x)`` outside
``fit`` does not apply dropout, as in Keras); ``fit``/``train_on_batch`` switch training on for their
duration, and ``.train()`` / ``.eval()`` work as for any module when it is mixed into PyTorch code.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch
from torch import nn

from rnnkit.keras import backend
from rnnkit.keras.layers.input_layer import KerasTensor, Node, any_keras_tensor, map_structure


def is_shape(s) -> bool:
    return isinstance(s, tuple) and all(d is None or isinstance(d, int) for d in s)


def to_tensor(x, device=None, float_dtype=torch.float32):
    """NumPy arrays and nested lists become tensors (floats as float32, ints as int64, Keras's
    floatx/int rules); tensors pass through."""
    if isinstance(x, torch.Tensor):
        return x if device is None or x.device == torch.device(device) else x.to(device)
    if isinstance(x, (np.ndarray, np.generic, list, float, int)):
        a = np.asarray(x)
        if a.dtype == object:
            raise TypeError(f"cannot turn a ragged/object array into a tensor (got dtype object, "
                            f"shape {a.shape}); pad the sequences first (keras.utils.pad_sequences)")
        t = torch.from_numpy(np.ascontiguousarray(a))
        if t.is_floating_point():
            t = t.to(float_dtype)
        elif t.dtype == torch.bool:
            pass
        else:
            t = t.to(torch.int64)
        return t if device is None else t.to(device)
    return x


class Layer(nn.Module):
    """Base class. Subclasses override ``build(input_shape)``, ``forward(inputs, ...)``,
    ``compute_output_shape(input_shape)`` and, when their arguments differ from the defaults,
    ``get_config()``. Shapes are tuples with ``None`` for unknown sizes (the batch)."""

    supports_masking = False
    _passes_inner_masks = False
    _mask_arg_cache: dict = {}

    def __init__(self, *, name: str | None = None, input_shape=None, batch_input_shape=None,
                 input_dim: int | None = None, batch_size: int | None = None, dtype=None,
                 trainable: bool = True, autocast: bool = True, activity_regularizer=None, **unknown):
        super().__init__()
        owner = type(self).__name__
        if unknown:
            raise TypeError(f"{owner}: unknown keyword argument(s) {sorted(unknown)}: not an argument "
                            f"of Keras 3's {owner}, or one rnnkit.keras does not implement")
        if activity_regularizer is not None:
            raise ValueError(f"{owner}: activity_regularizer is not supported by rnnkit.keras (pass "
                             f"None, or add the penalty to the loss yourself)")
        self.dtype = _float_dtype(owner, dtype)
        self.autocast = bool(autocast)
        self.name = name or backend.unique_name(backend.to_snake_case(owner))
        self.built = False
        self.training = False  # Keras semantics: inference unless fit() / .train() says otherwise
        self._trainable = bool(trainable)
        self._summary_output_shape: tuple | list | None = None   # a list: several outputs
        self._declared_shape = None  # full shape including the batch axis, when given
        if batch_input_shape is not None:
            self._declared_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            if isinstance(input_shape, int):
                input_shape = (input_shape,)
            if not isinstance(input_shape, (tuple, list)) or not all(
                    d is None or (isinstance(d, int) and d > 0) for d in input_shape):
                raise ValueError(f"{owner}: input_shape must be a tuple of positive ints (or None), "
                                 f"without the batch axis, got {input_shape!r}")
            self._declared_shape = (batch_size,) + tuple(input_shape)
        elif input_dim is not None:
            self._declared_shape = (batch_size, input_dim)

    # -- Keras's configuration ------------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable}
        if self.dtype is not None:
            config["dtype"] = str(self.dtype).replace("torch.", "")
        if self._declared_shape is not None:
            config["batch_input_shape"] = list(self._declared_shape)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    # -- build ------------------------------------------------------------------------------------
    def build(self, input_shape) -> None:
        """Create the parameters for inputs of ``input_shape`` (batch axis first, may be None)."""
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask):
        return mask if self.supports_masking else None

    def _ensure_built(self, input_shape) -> None:
        if not self.built:
            self._build_shape = input_shape  # Keras's build_config, for saved files
            self.build(input_shape)
            self.built = True
            if self.dtype is not None:  # Keras's dtype=: the variables are created in that type
                self.to(self.dtype)
            self.trainable = self._trainable  # freeze the parameters just created, if asked
        if self._summary_output_shape is None:
            self._summary_output_shape = self.compute_output_shape(input_shape)

    def call(self, *args, **kwargs):
        """The layer's computation, as Keras subclasses write it (``forward`` runs it)."""
        raise NotImplementedError(f"{type(self).__name__}: a Keras layer defines call(inputs, ...)")

    def forward(self, *args, **kwargs):
        return self.call(*args, **kwargs)

    def add_weight(self, shape=None, initializer="glorot_uniform", dtype=None, trainable=True,
                   name=None, regularizer=None, constraint=None, **unknown) -> nn.Parameter:
        """Create a variable, as Keras's ``add_weight``: a parameter of ``shape`` filled by
        ``initializer`` (a name, an initializer or a callable), registered under ``name``."""
        from rnnkit.keras import initializers
        owner = f"{type(self).__name__} '{self.name}'.add_weight"
        if unknown:
            raise TypeError(f"{owner}: unknown keyword argument(s) {sorted(unknown)}")
        if regularizer is not None or constraint is not None:
            raise ValueError(f"{owner}: regularizer and constraint are not supported by rnnkit.keras")
        shape = () if shape is None else tuple(shape)
        dt = _float_dtype(owner, dtype) or self.dtype or torch.float32
        value = initializers.get(initializer)(torch.empty(shape, dtype=dt))
        p = nn.Parameter(value, requires_grad=bool(trainable) and self._trainable)
        base = name or "variable"
        key, k = base, 1
        while key in self._parameters or hasattr(type(self), key):
            key, k = f"{base}_{k}", k + 1
        self.register_parameter(key, p)
        self.__dict__.setdefault("_pending_weights", {})[id(p)] = key
        return p

    def __setattr__(self, name, value):
        # `self.kernel = self.add_weight(...)`: the weight moves to the attribute's name (Keras's
        # variable tracking), instead of living under two names
        pending = self.__dict__.get("_pending_weights")
        if pending and isinstance(value, nn.Parameter) and id(value) in pending:
            key = pending.pop(id(value))
            if self._parameters.get(key) is value and key != name:
                del self._parameters[key]
        super().__setattr__(name, value)

    # -- calls ------------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        inputs = args[0] if args else kwargs.pop("inputs")
        if not isinstance(inputs, torch.Tensor):  # NumPy / lists / several inputs / Keras tensors
            if any_keras_tensor(args) or any_keras_tensor(kwargs):
                return self._symbolic_call(args, kwargs)
            device = self._device()
            inputs = map_structure(lambda t: to_tensor(t, device), inputs)
        if not self.built:
            shape = map_structure(lambda t: (None,) + tuple(t.shape[1:]), inputs, leaf=torch.Tensor)
            self._ensure_built(shape)
            first = next(iter(self.parameters()), None)
            device = next(iter(t.device for t in _tensors(inputs)), None)
            if first is not None and device is not None and first.device != device:
                self.to(device)  # weights created at the first call live where the data is
        if kwargs.get("mask") is None and self._takes_mask():
            mask = map_structure(backend.get_keras_mask, inputs, leaf=torch.Tensor)
            if _has_mask(mask):
                kwargs["mask"] = mask
        outputs = super().__call__(inputs, *args[1:], **kwargs)
        if self._passes_inner_masks:
            return outputs  # a model: its outputs carry the masks its last layers set
        out_mask = self.compute_mask(inputs, kwargs.get("mask"))
        if isinstance(outputs, (tuple, list)):
            masks = out_mask if isinstance(out_mask, (tuple, list)) \
                else [out_mask] + [None] * (len(outputs) - 1)
            for o, m in zip(outputs, masks):
                backend.set_keras_mask(o, m)
        elif out_mask is not None or hasattr(outputs, "_keras_mask"):
            backend.set_keras_mask(outputs, out_mask)
        return outputs

    def _symbolic_call(self, args, kwargs):
        inputs = args[0]
        if not any_keras_tensor(inputs):
            raise TypeError(f"{type(self).__name__} '{self.name}': when called on Keras tensors "
                            f"(from keras.Input), the first argument must hold them")
        shape = map_structure(lambda t: t.shape, inputs, leaf=KerasTensor)
        self._ensure_built(shape)
        out_shape = self.compute_output_shape(shape)
        node = Node(self, args, kwargs)
        if is_shape(out_shape):
            out = KerasTensor(out_shape, node=node, index=0)
            node.outputs = [out]
            return out
        outs = [KerasTensor(s, node=node, index=i) for i, s in enumerate(out_shape)]
        node.outputs = outs
        return type(out_shape)(outs) if isinstance(out_shape, tuple) else outs

    def _takes_mask(self) -> bool:
        cls = type(self)
        if cls not in Layer._mask_arg_cache:
            Layer._mask_arg_cache[cls] = "mask" in inspect.signature(cls.forward).parameters
        return Layer._mask_arg_cache[cls]

    def _device(self):
        for p in self.parameters():
            return p.device
        return None

    # -- weights ----------------------------------------------------------------------------------
    @property
    def weights(self) -> list[nn.Parameter]:
        """The layer's variables in Keras's order (e.g. kernel, recurrent_kernel, bias)."""
        return list(self.parameters())

    @property
    def trainable_weights(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def non_trainable_weights(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if not p.requires_grad]

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for m in self.modules():  # Keras's non-trainable variables (moving statistics) stay frozen
            frozen = getattr(m, "_non_trainable", ())
            for name, p in m.named_parameters(recurse=False):
                p.requires_grad_(self._trainable and name not in frozen)

    def get_weights(self) -> list[np.ndarray]:
        return [p.detach().cpu().numpy().copy() for p in self.weights]

    def set_weights(self, weights) -> None:
        """Load NumPy arrays in Keras's layout and order (as returned by Keras's ``get_weights``)."""
        params = self.weights
        expected = [tuple(p.shape) for p in params]
        if not isinstance(weights, (list, tuple)) or len(weights) != len(params):
            got = len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__
            hint = "" if self.built else " (the layer is not built yet: call it on data, or give input_shape)"
            raise ValueError(f"{type(self).__name__} '{self.name}': set_weights expected a list of "
                             f"{len(params)} arrays of shapes {expected}, got {got}{hint}")
        for i, (p, w) in enumerate(zip(params, weights)):
            w = torch.as_tensor(np.asarray(w))
            if tuple(w.shape) != tuple(p.shape):
                raise ValueError(f"{type(self).__name__} '{self.name}': weight {i} must have shape "
                                 f"{tuple(p.shape)} (Keras layout), got {tuple(w.shape)}")
        with torch.no_grad():
            for p, w in zip(params, weights):
                p.copy_(torch.as_tensor(np.asarray(w), dtype=p.dtype))

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"{type(self).__name__} '{self.name}' is not built yet, so it has no "
                             f"parameters to count; give input_shape or call it on data first")
        return sum(p.numel() for p in self.parameters())

    @property
    def output_shape(self):
        return self._summary_output_shape

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
           "float64": torch.float64}


def _float_dtype(owner: str, dtype):
    """Keras's layer ``dtype=`` (a name, a torch dtype or None) as a torch float dtype."""
    if dtype is None or isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, dict):  # a saved Keras 3 DTypePolicy: {"config": {"name": "float32"}}
        dtype = dtype.get("config", {}).get("name")
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"{owner}: dtype must be one of {sorted(_DTYPES)} (or None for float32), got "
                     f"{dtype!r}; mixed-precision policies are not supported")


def _tensors(x) -> list:
    out: list = []   # leaves of any type; the tensors among them are kept
    map_structure(out.append, x, leaf=torch.Tensor)
    return [t for t in out if isinstance(t, torch.Tensor)]


def _has_mask(mask) -> bool:
    if isinstance(mask, (list, tuple)):
        return any(m is not None for m in mask)
    return mask is not None


def pop_unsupported(owner: str, kwargs: dict, names) -> None:
    """Accept Keras arguments that rnnkit does not implement only at their default (None)."""
    for n in names:
        if kwargs.pop(n, None) is not None:
            raise ValueError(f"{owner}: {n} is not supported by rnnkit.keras (pass None, or add the "
                             f"penalty to the loss yourself)")


REGULARIZER_ARGS = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                    "activity_regularizer", "kernel_constraint", "recurrent_constraint",
                    "bias_constraint", "embeddings_regularizer", "embeddings_constraint")
