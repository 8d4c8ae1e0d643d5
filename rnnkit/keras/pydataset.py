"""``keras.utils.PyDataset``: a dataset written as a Python class that ``fit``/``evaluate``/``predict``
read batch by batch.

Subclass it, define ``__len__`` (or the ``num_batches`` property; None means endless) and
``__getitem__(index) -> batch`` (``x``, ``(x, y)`` or ``(x, y, sample_weight)``), optionally
``on_epoch_begin``/``on_epoch_end`` (``fit`` calls them, e.g. to reshuffle). ``workers > 1`` reads
batches on that many threads, up to ``max_queue_size`` ahead, and still yields them in order."""
from __future__ import annotations

import itertools
from collections import deque
from concurrent.futures import ThreadPoolExecutor


class PyDataset:
    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"PyDataset: workers must be an int >= 1, got {workers!r}")
        if use_multiprocessing:
            raise ValueError("PyDataset: use_multiprocessing=True is not supported by rnnkit.keras; "
                             "batches are read on threads (workers=N)")
        if isinstance(max_queue_size, bool) or not isinstance(max_queue_size, int) or max_queue_size < 1:
            raise ValueError(f"PyDataset: max_queue_size must be an int >= 1, got {max_queue_size!r}")
        self._workers, self._max_queue_size = workers, max_queue_size

    @property
    def workers(self) -> int:
        return getattr(self, "_workers", 1)  # a subclass may forget to call super().__init__

    @property
    def use_multiprocessing(self) -> bool:
        return False

    @property
    def max_queue_size(self) -> int:
        return getattr(self, "_max_queue_size", 10)

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__}: define __getitem__(index) -> batch")

    @property
    def num_batches(self):
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__}: define __len__ or the num_batches property")

    def __iter__(self):
        n = self.num_batches
        yield from self.batches(range(n) if n is not None else itertools.count())

    def batches(self, indices):
        """The batches at ``indices``, in that order (``fit(shuffle=True)`` passes a permutation)."""
        if self.workers == 1:
            for i in indices:
                yield self[i]
            return
        with ThreadPoolExecutor(self.workers) as pool:
            pending: deque = deque()
            for i in indices:
                pending.append(pool.submit(self.__getitem__, i))
                if len(pending) >= self.max_queue_size:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass
