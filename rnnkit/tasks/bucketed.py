"""`BucketedBatches`: the training-batch side of a task that trains on bucketed batches of example
indices (`rnnkit.data.padded.BucketBatcher`): the text classifier and the conditional language model.

A task mixes it in before its base class and calls `start_batches` from ``start``; ``next_batch``
reads `next_indices` (a new epoch begins when one ends). The batcher's position (epoch, batch, the
generator state that drew the epoch) is the task's checkpoint state, so a resumed run draws exactly
the batches the uninterrupted one would have.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from rnnkit.data.padded import BucketBatcher


class BucketedBatches:
    """Mixin: training batches as index arrays ``(B,)`` from one `BucketBatcher`, and its state."""

    batcher: BucketBatcher
    steps_per_epoch: int
    _it: Iterator[np.ndarray]

    def start_batches(self, lengths: Sequence[int] | np.ndarray, batch_size: int, seed: int) -> None:
        """Make the batcher over the training examples' ``lengths`` ``(N,)``."""
        self.batcher = BucketBatcher(lengths, batch_size, seed=seed)
        self.steps_per_epoch = len(self.batcher)
        self._it = iter(self.batcher)

    def next_indices(self) -> np.ndarray:
        """The next training batch's example indices ``(B,)`` int64."""
        try:
            return next(self._it)
        except StopIteration:        # a new epoch (the batcher draws its order)
            self._it = iter(self.batcher)
            return next(self._it)

    def state_dict(self) -> dict:
        return {"batcher": self.batcher.state_dict()}

    def load_state_dict(self, d: dict) -> None:
        self.batcher.load_state_dict(d["batcher"])
        self._it = iter(self.batcher)
