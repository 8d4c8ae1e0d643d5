"""``keras.utils``: the helpers Keras recurrent-model code reaches for."""
from __future__ import annotations

import random

import numpy as np
import torch

from rnnkit.keras.backend import clear_session
from rnnkit.keras.progbar import Progbar
from rnnkit.keras.pydataset import PyDataset


def set_random_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (weights, shuffling, dropout)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_categorical(x, num_classes: int | None = None) -> np.ndarray:
    """Class ids ``(...)`` -> one-hot float64 ``(..., num_classes)``, Keras 3's dtype (a trailing
    axis of 1 is dropped)."""
    x = np.asarray(x, dtype="int64")
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x[..., 0]
    if num_classes is None:
        num_classes = int(x.max()) + 1
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(f"to_categorical: class ids must be in [0, {num_classes - 1}], got values "
                         f"in [{x.min()}, {x.max()}]")
    return np.eye(num_classes, dtype="float64")[x]


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0) -> np.ndarray:
    """Lists of ids -> a ``(N, maxlen)`` array, padded/truncated at the start (``"pre"``, Keras's
    default) or the end (``"post"``)."""
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError(f"pad_sequences: padding and truncating must be 'pre' or 'post', got "
                         f"{padding!r}, {truncating!r}")
    seqs = [list(s) for s in sequences]
    maxlen = maxlen if maxlen is not None else max((len(s) for s in seqs), default=0)
    out = np.full((len(seqs), maxlen), value, dtype=dtype)
    for i, s in enumerate(seqs):
        s = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if not s:
            continue
        if padding == "post":
            out[i, :len(s)] = s
        else:
            out[i, maxlen - len(s):] = s
    return out


__all__ = ["PyDataset", "set_random_seed", "to_categorical", "pad_sequences", "clear_session", "Progbar"]
