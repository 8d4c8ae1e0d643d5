"""Language-model batches from one 1-D array of token ids (the two d2l textbook schemes).

Both batchers keep the ids as given (a view, never a copy; a 100 MB text trains holding one copy of
its ids) and copy only the batch they hand out, as ``(X, Y)`` int64 CPU tensors of shape ``(B, T)``
with ``Y[b, t]`` the token after ``X[b, t]``.

- :class:`SequentialBatcher` cuts the text into ``B`` contiguous streams, one per batch row; row ``b``
  of batch ``i+1`` continues row ``b`` of batch ``i``, so a model may carry its state across batches
  (truncated backpropagation through time). Every epoch is the same.
- :class:`RandomBatcher` cuts the text into ``(N-1) // T`` pieces of ``T`` steps at offsets
  ``0, T, 2T, ...`` and hands them out in a fresh random order each epoch; the state is reset per batch.

In both, every target in an epoch is a different token: one epoch sees each token of
``ids[1:]`` (``ids[offset+1:]``) once as a target, except for the last few that do not fill a row
(fewer than ``B`` for ``SequentialBatcher``, fewer than ``T`` for ``RandomBatcher``). The last batch of
an epoch is shorter (fewer steps, or fewer rows) unless ``drop_last=True``.

Iterating yields the rest of the current epoch; a new ``iter()`` after a finished epoch starts the next
one. ``state_dict()`` / ``load_state_dict()`` record the epoch and the position in it (and the shuffle
generator), so a run resumed mid-epoch gets exactly the batches it had not seen yet.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view


def _check_int(owner: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")
    return int(value)


def as_id_array(ids: Any, owner: str = "batcher") -> np.ndarray:
    """``ids`` as a 1-D integer NumPy array ``(N,)``, without a copy for an array or a CPU tensor."""
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{owner}: ids must be a 1-D array of token ids (N,), got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{owner}: ids must have an integer dtype, got {arr.dtype}")
    return arr


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))


class _Batcher:
    """Epoch/position bookkeeping shared by both batchers."""

    kind = ""
    _num_batches: int   # set by each subclass's constructor

    def __init__(self) -> None:
        self.epoch = 0       # the epoch being handed out (or just finished)
        self.position = 0    # batches of this epoch already handed out

    def __len__(self) -> int:
        return self._num_batches

    def _config(self) -> dict[str, int]:
        raise NotImplementedError

    def _new_epoch(self) -> None:
        self.epoch += 1
        self.position = 0

    def batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(X, Y)``, each ``(B, T)`` int64, for the rest of the current epoch."""
        if self.position >= len(self):
            self._new_epoch()
        while self.position < len(self):
            i = self.position
            self.position += 1   # counted as handed out as soon as it is yielded
            yield self.batch(i)

    def state_dict(self) -> dict[str, Any]:
        """Position in the data: plain Python values (JSON- and ``torch.save``-able)."""
        return {"kind": self.kind, "epoch": self.epoch, "position": self.position, **self._config()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where ``state`` (from ``state_dict()``) left off; the data and sizes must match."""
        name = type(self).__name__
        if not isinstance(state, dict) or state.get("kind") != self.kind:
            raise ValueError(f"{name}.load_state_dict: expected a state_dict of kind {self.kind!r}, "
                             f"got {state.get('kind') if isinstance(state, dict) else state!r}")
        for key, value in self._config().items():
            if state.get(key) != value:
                raise ValueError(f"{name}.load_state_dict: the state was saved with {key}="
                                 f"{state.get(key)!r}, this batcher has {key}={value!r}")
        pos = state.get("position")
        if not isinstance(pos, int) or not 0 <= pos <= len(self):
            raise ValueError(f"{name}.load_state_dict: position must be an int in [0, {len(self)}], "
                             f"got {pos!r}")
        self.epoch = int(state["epoch"])
        self.position = pos


class SequentialBatcher(_Batcher):
    """``B`` contiguous streams over ``ids[offset:]``, ``T`` steps at a time (d2l sequential sampling).

    Stream ``b`` is ``ids[offset + b*L : offset + (b+1)*L]`` with ``L = (N - offset - 1) // B``; batch
    ``i`` is ``X = streams[:, i*T:(i+1)*T]`` ``(B, T)`` and ``Y`` the same shifted by one token. The last
    batch has ``L % T`` steps unless ``drop_last``. Deterministic: no random offset unless given.
    """

    kind = "sequential"

    def __init__(self, ids: Any, batch_size: int, num_steps: int, *, offset: int = 0,
                 drop_last: bool = False):
        super().__init__()
        owner = "SequentialBatcher"
        B = _check_int(owner, "batch_size", batch_size, 1)
        T = _check_int(owner, "num_steps", num_steps, 1)
        offset = _check_int(owner, "offset", offset, 0)
        ids = as_id_array(ids, owner)
        need = B * T + 1 + offset
        if len(ids) < need:
            raise ValueError(f"{owner}: the text has {len(ids):,} tokens; one batch needs at least "
                             f"batch_size*num_steps + 1 + offset = {B}*{T} + 1 + {offset} = {need:,}; "
                             f"use a longer text or a smaller batch_size/num_steps")
        L = (len(ids) - offset - 1) // B                                # steps per stream
        self.batch_size, self.num_steps, self.offset = B, T, offset
        self.num_tokens = len(ids)
        self.stream_length = L
        self._x = ids[offset:offset + B * L].reshape(B, L)              # (B, L) view
        self._y = ids[offset + 1:offset + 1 + B * L].reshape(B, L)      # (B, L) view
        self._num_batches = L // T if drop_last else math.ceil(L / T)
        self.drop_last = drop_last

    def _config(self) -> dict[str, int]:
        return {"batch_size": self.batch_size, "num_steps": self.num_steps, "offset": self.offset,
                "num_tokens": self.num_tokens, "drop_last": self.drop_last}

    @property
    def num_targets(self) -> int:
        """Targets per epoch: ``B * L`` (``B * T * len(self)`` with ``drop_last``)."""
        steps = self.num_steps * len(self) if self.drop_last else self.stream_length
        return self.batch_size * steps

    def batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``i`` of an epoch: ``(X, Y)``, each ``(B, T)`` (``(B, L % T)`` for a short last one)."""
        if not 0 <= i < len(self):
            raise IndexError(f"SequentialBatcher: batch index {i} out of range [0, {len(self)})")
        cols = slice(i * self.num_steps, (i + 1) * self.num_steps)
        return _to_tensor(self._x[:, cols]), _to_tensor(self._y[:, cols])


class RandomBatcher(_Batcher):
    """Pieces of ``T`` steps at offsets ``0, T, 2T, ...`` in a new random order each epoch (d2l random
    sampling), shuffled by ``numpy.random.default_rng(seed)``.

    ``S = (N - 1) // T`` pieces make ``ceil(S / B)`` batches (``S // B`` with ``drop_last``); batch ``i``
    holds pieces ``perm[i*B:(i+1)*B]``: ``X`` ``(B, T)`` and ``Y`` shifted by one token.
    """

    kind = "random"

    def __init__(self, ids: Any, batch_size: int, num_steps: int, seed: int = 0, *,
                 drop_last: bool = False):
        super().__init__()
        owner = "RandomBatcher"
        B = _check_int(owner, "batch_size", batch_size, 1)
        T = _check_int(owner, "num_steps", num_steps, 1)
        seed = _check_int(owner, "seed", seed, 0)
        ids = as_id_array(ids, owner)
        need = B * T + 1
        if len(ids) < need:
            raise ValueError(f"{owner}: the text has {len(ids):,} tokens; one batch needs at least "
                             f"batch_size*num_steps + 1 = {B}*{T} + 1 = {need:,}; use a longer text "
                             f"or a smaller batch_size/num_steps")
        self.batch_size, self.num_steps, self.seed = B, T, seed
        self.num_tokens = len(ids)
        self.drop_last = drop_last
        self._pieces = sliding_window_view(ids, T + 1)[::T]               # (S, T+1) view, stride T
        S = len(self._pieces)
        self._num_batches = S // B if drop_last else math.ceil(S / B)
        self._rng = np.random.default_rng(seed)
        self._draw_order()

    def _draw_order(self) -> None:
        self._epoch_rng_state = copy.deepcopy(self._rng.bit_generator.state)
        self._order = self._rng.permutation(len(self._pieces))

    def _new_epoch(self) -> None:
        super()._new_epoch()
        self._draw_order()

    def _config(self) -> dict[str, int]:
        return {"batch_size": self.batch_size, "num_steps": self.num_steps, "seed": self.seed,
                "num_tokens": self.num_tokens, "drop_last": self.drop_last}

    @property
    def num_targets(self) -> int:
        """Targets per epoch: ``S * T`` (``B * T * len(self)`` with ``drop_last``)."""
        pieces = self.batch_size * len(self) if self.drop_last else len(self._pieces)
        return pieces * self.num_steps

    def batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``i`` of the current epoch: ``(X, Y)``, each ``(B, T)`` (fewer rows for a last one)."""
        if not 0 <= i < len(self):
            raise IndexError(f"RandomBatcher: batch index {i} out of range [0, {len(self)})")
        rows = self._pieces[self._order[i * self.batch_size:(i + 1) * self.batch_size]]  # (B, T+1)
        return _to_tensor(rows[:, :-1]), _to_tensor(rows[:, 1:])

    def state_dict(self) -> dict[str, Any]:
        """Epoch, position and the generator state that drew this epoch's order."""
        return {**super().state_dict(), "rng_state": copy.deepcopy(self._epoch_rng_state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        try:
            self._rng.bit_generator.state = copy.deepcopy(state["rng_state"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"RandomBatcher.load_state_dict: bad or missing rng_state ({exc})") from None
        self._draw_order()
