"""Turning what ``fit``/``evaluate``/``predict`` receive into batches of tensors.

Accepted: NumPy arrays, torch tensors, nested lists of numbers, a list (several inputs/outputs) or a
dict (by input name) of those — or an iterable of batches such as a ``torch.utils.data.DataLoader``
yielding ``(x, y)`` or ``(x, y, sample_weight)``. Floats become float32 (Keras's floatx), integers
int64. Shapes: every array's first axis is the sample axis N."""
from __future__ import annotations

import math

import numpy as np
import torch

from rnnkit.keras.layers.input_layer import map_structure
from rnnkit.keras.layers.layer import to_tensor


def is_array(x) -> bool:
    return isinstance(x, (np.ndarray, torch.Tensor))


def is_batch_iterable(x) -> bool:
    """A data loader / generator of batches, as opposed to arrays or lists of arrays."""
    if x is None or is_array(x) or isinstance(x, (list, tuple, dict, str)):
        return False
    return hasattr(x, "__iter__")


def as_tensors(x, name: str):
    """Arrays (or a list/dict of them) as tensors. A list of numbers is one array, a list of
    arrays is several inputs."""
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: as_tensors(v, f"{name}[{k!r}]") for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and all(is_array(v) for v in x):
        return [to_tensor(v) for v in x]
    t = to_tensor(x)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a NumPy array, a torch tensor, a list of them or a data "
                        f"loader, got {type(x).__name__}")
    if t.dim() == 0:
        raise ValueError(f"{name}: expected an array with a sample axis, got a scalar")
    return t


def leaves(struct) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    map_structure(out.append, struct, leaf=torch.Tensor)
    return out


def num_samples(x, y=None, sample_weight=None) -> int:
    counts: dict[str, set[int]] = {}
    for name, s in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        for t in leaves(s) if s is not None else []:
            counts.setdefault(name, set()).add(t.shape[0])
    sizes = set().union(*counts.values())
    if len(sizes) != 1:
        detail = ", ".join(f"{k}: {sorted(v)}" for k, v in counts.items())
        raise ValueError(f"the arrays do not have the same number of samples (first axis): {detail}")
    return sizes.pop()


def take(struct, index):
    """Rows ``index`` (a slice or an index tensor) of every array in ``struct``."""
    if struct is None:
        return None
    if isinstance(index, slice):
        return map_structure(lambda t: t[index], struct, leaf=torch.Tensor)
    return map_structure(lambda t: t.index_select(0, index), struct, leaf=torch.Tensor)


def to_device(struct, device, dtype=None):
    def move(t):
        if dtype is not None and t.is_floating_point() and t.dtype != dtype:
            t = t.to(dtype)
        return t if device is None or t.device == device else t.to(device, non_blocking=True)
    return None if struct is None else map_structure(move, struct, leaf=torch.Tensor)


class ArrayBatches:
    """Batches of in-memory arrays: ``len()`` steps, shuffled each epoch when ``shuffle``."""

    def __init__(self, x, y=None, sample_weight=None, batch_size: int = 32, shuffle: bool = False,
                 steps: int | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0):
            raise ValueError(f"steps_per_epoch must be a positive int or None, got {steps!r}")
        self.x, self.y, self.sw = x, y, sample_weight
        self.n = num_samples(x, y, sample_weight)
        self.batch_size, self.shuffle, self.steps = batch_size, shuffle, steps
        self._stream = None

    def __len__(self) -> int:
        return self.steps or math.ceil(self.n / self.batch_size)

    def __iter__(self):
        if self.steps is None:
            yield from self._one_pass()
            return
        # Keras's steps_per_epoch on arrays: an epoch is `steps` batches, and the next epoch goes
        # on where this one stopped (a new pass, reshuffled, starts only when the data run out)
        for _ in range(self.steps):
            batch = next(self._stream, None) if self._stream is not None else None
            if batch is None:
                self._stream = self._one_pass()
                batch = next(self._stream)
            yield batch

    def _one_pass(self):
        order = torch.randperm(self.n) if self.shuffle else None
        for start in range(0, self.n, self.batch_size):
            idx = slice(start, start + self.batch_size) if order is None \
                else order[start:start + self.batch_size]
            yield take(self.x, idx), take(self.y, idx), take(self.sw, idx)


class LoaderBatches:
    """Batches from a data loader; each item ``(x, y)``, ``(x, y, sample_weight)`` or ``x``."""

    def __init__(self, loader, steps: int | None = None, shuffle: bool = False):
        self.loader, self.steps, self.shuffle = loader, steps, shuffle

    def __len__(self):
        if self.steps is not None:
            return self.steps
        if hasattr(self.loader, "num_batches"):  # a keras.utils.PyDataset
            return self.loader.num_batches
        return len(self.loader) if hasattr(self.loader, "__len__") else None

    def __iter__(self):
        source = self.loader
        n = getattr(source, "num_batches", None)
        if self.shuffle and n is not None and hasattr(source, "batches"):
            # a PyDataset of known length: Keras reads its batches in a new random order each epoch
            source = source.batches(torch.randperm(n).tolist())
        for i, item in enumerate(source):
            if self.steps is not None and i >= self.steps:
                return
            if isinstance(item, (list, tuple)) and len(item) in (2, 3):
                x, y, sw = (list(item) + [None])[:3]
            else:
                x, y, sw = item, None, None
            yield as_tensors(x, "x"), as_tensors(y, "y"), as_tensors(sw, "sample_weight")


def split_validation(x, y, sw, fraction: float):
    """Keras's ``validation_split``: the *last* ``fraction`` of the samples, taken before shuffling."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {fraction}")
    n = num_samples(x, y, sw)
    cut = int(math.floor(n * (1.0 - fraction)))
    if cut == 0 or cut == n:
        raise ValueError(f"validation_split={fraction} leaves no training or no validation samples "
                         f"out of {n}")
    head, tail = slice(0, cut), slice(cut, n)
    return (take(x, head), take(y, head), take(sw, head)), (take(x, tail), take(y, tail), take(sw, tail))


def class_weights_to_sample_weights(y, class_weight: dict) -> torch.Tensor:
    """Per-sample weights from ``{class: weight}``, for integer labels ``(N,)``/``(N, 1)`` or one-hot."""
    if not isinstance(y, torch.Tensor):
        raise ValueError("class_weight needs a single array of labels y")
    ids = y.argmax(-1) if (y.dim() > 1 and y.shape[-1] > 1) else y.reshape(y.shape[0], -1)[:, 0]
    lut = {int(k): float(v) for k, v in class_weight.items()}
    return torch.tensor([lut.get(int(c), 1.0) for c in ids.tolist()], dtype=torch.float32)
