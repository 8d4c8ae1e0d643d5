"""``keras.ops``: the backend-neutral tensor functions Keras code calls, on torch.

The subset that recurrent models, their cells and the layers around them use (matrix products,
element-wise maths, reductions, shape manipulation, comparisons, activations). Arguments are
Keras's (``axis=``, ``keepdims=``); NumPy arrays and Python numbers are accepted wherever tensors
are, and floats become float32 (Keras's floatx). Results are torch tensors."""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from rnnkit.keras import activations
from rnnkit.keras.layers.layer import to_tensor

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
           "float64": torch.float64, "int8": torch.int8, "int16": torch.int16, "int32": torch.int32,
           "int64": torch.int64, "uint8": torch.uint8, "bool": torch.bool}


def torch_dtype(dtype):
    """A Keras dtype name (or a torch dtype) as a torch dtype."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype) not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known: {sorted(_DTYPES)}")
    return _DTYPES[str(dtype)]


def convert_to_tensor(x, dtype=None):
    t = to_tensor(x)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"keras.ops: expected an array, a tensor or a number, got {type(x).__name__}")
    return t if dtype is None else t.to(torch_dtype(dtype))


def _t(*xs):
    """Tensors from the arguments, numbers promoted to the tensors' dtype."""
    ts = [x if isinstance(x, torch.Tensor) else None for x in xs]
    like = next((t for t in ts if t is not None and t.is_floating_point()), None)
    out = []
    for x, t in zip(xs, ts):
        if t is None:
            t = convert_to_tensor(x)
            if like is not None and isinstance(x, (int, float)):
                t = t.to(like.dtype)
        out.append(t)
    return out if len(out) > 1 else out[0]


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def convert_to_numpy(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def cast(x, dtype):
    return _t(x).to(torch_dtype(dtype))


def shape(x):
    return tuple(_t(x).shape)


# -- products ----------------------------------------------------------------------------------------
def matmul(x1, x2):
    a, b = _t(x1, x2)
    return torch.matmul(a, b)


def dot(x1, x2):
    a, b = _t(x1, x2)
    if a.dim() == 0 or b.dim() == 0:
        return a * b
    return torch.tensordot(a, b, dims=([-1], [-2 if b.dim() > 1 else 0]))


def einsum(subscripts, *operands):
    return torch.einsum(subscripts, *[_t(o) for o in operands])


# -- element-wise -------------------------------------------------------------------------------------
def add(x1, x2):
    a, b = _t(x1, x2)
    return a + b


def subtract(x1, x2):
    a, b = _t(x1, x2)
    return a - b


def multiply(x1, x2):
    a, b = _t(x1, x2)
    return a * b


def divide(x1, x2):
    a, b = _t(x1, x2)
    return a / b


def maximum(x1, x2):
    a, b = _t(x1, x2)
    return torch.maximum(a, b)


def minimum(x1, x2):
    a, b = _t(x1, x2)
    return torch.minimum(a, b)


def power(x1, x2):
    a, b = _t(x1, x2)
    return torch.pow(a, b)


def where(condition, x1=None, x2=None):
    c = _t(condition).bool()
    if x1 is None and x2 is None:
        return torch.nonzero(c, as_tuple=True)
    a, b = _t(x1, x2)
    return torch.where(c, a, b)


def clip(x, x_min, x_max):
    return torch.clamp(_t(x), x_min, x_max)


def _unary(fn):
    def op(x):
        return fn(_t(x))
    op.__name__ = fn.__name__
    return op


exp, log, sqrt, square, abs, negative, sign, tanh, sigmoid, relu, floor, ceil, round, erf = (
    _unary(f) for f in (torch.exp, torch.log, torch.sqrt, torch.square, torch.abs, torch.neg,
                        torch.sign, torch.tanh, torch.sigmoid, torch.relu, torch.floor, torch.ceil,
                        torch.round, torch.erf))
logical_not = _unary(torch.logical_not)


def logical_and(x1, x2):
    return torch.logical_and(*_t(x1, x2))


def logical_or(x1, x2):
    return torch.logical_or(*_t(x1, x2))


def equal(x1, x2):
    return torch.eq(*_t(x1, x2))


def not_equal(x1, x2):
    return torch.ne(*_t(x1, x2))


def greater(x1, x2):
    return torch.gt(*_t(x1, x2))


def greater_equal(x1, x2):
    return torch.ge(*_t(x1, x2))


def less(x1, x2):
    return torch.lt(*_t(x1, x2))


def less_equal(x1, x2):
    return torch.le(*_t(x1, x2))


def softmax(x, axis=-1):
    return torch.softmax(_t(x), dim=axis)


def log_softmax(x, axis=-1):
    return torch.log_softmax(_t(x), dim=axis)


def gelu(x, approximate=True):
    return F.gelu(_t(x), approximate="tanh" if approximate else "none")


def silu(x):
    return F.silu(_t(x))


def hard_sigmoid(x):
    return activations.hard_sigmoid(_t(x))


def one_hot(x, num_classes, axis=-1, dtype=None):
    out = F.one_hot(_t(x).long(), num_classes).to(torch_dtype(dtype) or torch.float32)
    return out if axis == -1 else torch.movedim(out, -1, axis)


# -- reductions ----------------------------------------------------------------------------------------
def _reduce(fn, x, axis, keepdims):
    t = _t(x)
    if axis is None:
        out = fn(t)
        return out.reshape([1] * t.dim()) if keepdims else out
    return fn(t, dim=_axis(axis), keepdim=keepdims)


def sum(x, axis=None, keepdims=False):
    return _reduce(torch.sum, x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    t = _t(x)
    return _reduce(torch.mean, t if t.is_floating_point() else t.float(), axis, keepdims)


def var(x, axis=None, keepdims=False):
    return _reduce(lambda t, **k: torch.var(t, correction=0, **k), x, axis, keepdims)


def std(x, axis=None, keepdims=False):
    return _reduce(lambda t, **k: torch.std(t, correction=0, **k), x, axis, keepdims)


def max(x, axis=None, keepdims=False):
    return _reduce(torch.amax, x, axis, keepdims)


def min(x, axis=None, keepdims=False):
    return _reduce(torch.amin, x, axis, keepdims)


def prod(x, axis=None, keepdims=False):
    t = _t(x)
    if axis is None:
        return _reduce(torch.prod, t, None, keepdims)
    return torch.prod(t, dim=axis, keepdim=keepdims)


def any(x, axis=None, keepdims=False):
    return _reduce(torch.any, _t(x).bool(), axis, keepdims)


def all(x, axis=None, keepdims=False):
    return _reduce(torch.all, _t(x).bool(), axis, keepdims)


def argmax(x, axis=None, keepdims=False):
    return torch.argmax(_t(x), dim=axis, keepdim=keepdims)


def argmin(x, axis=None, keepdims=False):
    return torch.argmin(_t(x), dim=axis, keepdim=keepdims)


def cumsum(x, axis=None):
    t = _t(x)
    return torch.cumsum(t.reshape(-1) if axis is None else t, dim=0 if axis is None else axis)


def norm(x, ord=None, axis=None, keepdims=False):
    return torch.linalg.norm(_t(x), ord=ord, dim=_axis(axis), keepdim=keepdims)


# -- shapes ------------------------------------------------------------------------------------------
def reshape(x, newshape):
    return _t(x).reshape(tuple(newshape) if not isinstance(newshape, int) else (newshape,))


def transpose(x, axes=None):
    t = _t(x)
    return t.permute(*(axes if axes is not None else range(t.dim() - 1, -1, -1)))


def expand_dims(x, axis):
    return _t(x).unsqueeze(axis)


def squeeze(x, axis=None):
    t = _t(x)
    return t.squeeze() if axis is None else t.squeeze(axis)


def concatenate(xs, axis=0):
    return torch.cat([_t(x) for x in xs], dim=axis)


def stack(x, axis=0):
    return torch.stack([_t(v) for v in x], dim=axis)


def split(x, indices_or_sections, axis=0):
    t = _t(x)
    if isinstance(indices_or_sections, int):
        return list(torch.tensor_split(t, indices_or_sections, dim=axis))
    return list(torch.tensor_split(t, list(indices_or_sections), dim=axis))


def tile(x, repeats):
    return _t(x).tile(tuple(repeats) if not isinstance(repeats, int) else (repeats,))


def repeat(x, repeats, axis=None):
    return torch.repeat_interleave(_t(x), repeats, dim=axis)


def flip(x, axis=None):
    t = _t(x)
    dims = range(t.dim()) if axis is None else ([axis] if isinstance(axis, int) else axis)
    return torch.flip(t, dims=tuple(dims))


def take(x, indices, axis=None):
    t, i = _t(x), _t(indices).long()
    if axis is None:
        return t.reshape(-1)[i]
    return torch.index_select(t, axis, i.reshape(-1)).reshape(
        t.shape[:axis % t.dim()] + i.shape + t.shape[axis % t.dim() + 1:])


def take_along_axis(x, indices, axis=None):
    return torch.take_along_dim(_t(x), _t(indices).long(), dim=axis)


def pad(x, pad_width, mode="constant", constant_values=None):
    flat = [p for pair in reversed([tuple(p) for p in pad_width]) for p in pair]
    return F.pad(_t(x), flat, mode=mode, value=constant_values or 0)


# -- creation ----------------------------------------------------------------------------------------
def zeros(shape, dtype=None):
    return torch.zeros(tuple(shape) if not isinstance(shape, int) else (shape,),
                       dtype=torch_dtype(dtype) or torch.float32)


def ones(shape, dtype=None):
    return torch.ones(tuple(shape) if not isinstance(shape, int) else (shape,),
                      dtype=torch_dtype(dtype) or torch.float32)


def zeros_like(x, dtype=None):
    return torch.zeros_like(_t(x), dtype=torch_dtype(dtype))


def ones_like(x, dtype=None):
    return torch.ones_like(_t(x), dtype=torch_dtype(dtype))


def full(shape, fill_value, dtype=None):
    return torch.full(tuple(shape), fill_value, dtype=torch_dtype(dtype) or torch.float32)


def arange(start, stop=None, step=1, dtype=None):
    if stop is None:
        start, stop = 0, start
    return torch.arange(start, stop, step, dtype=torch_dtype(dtype))


def eye(N, M=None, k=0, dtype=None):
    cols = torch.arange(M if M is not None else N)
    return (cols[None, :] - torch.arange(N)[:, None] == k).to(torch_dtype(dtype) or torch.float32)


def stop_gradient(x):
    return _t(x).detach()
