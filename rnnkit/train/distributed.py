"""Training in several processes (``torchrun``): one `Dist` tells the trainer who it is and does the
few collective operations a data-parallel run needs.

How a run is split (data parallelism, ``torch.nn.parallel.DistributedDataParallel``):

- every rank builds the same task, model and batches; each step, rank ``r`` of ``W`` keeps rows
  ``[r*B/W, (r+1)*B/W)`` of the global batch of ``B`` rows (`Dist.shard`): for a language model its
  own contiguous streams (and their carried state), for the other tasks its own sentences or windows.
  The configured ``B`` must be divisible by ``W`` (a clear error says how to fix it otherwise); a
  shorter last batch of an epoch is split as evenly as possible;
- the model's forward and backward run inside DDP, which sums the ranks' gradients; each rank scales
  its summed loss by ``W / (total count over the ranks)``, so the update is exactly the one a single
  process would make with the global batch (a language model's loss per token, a tagger's per real
  token, whatever the padding);
- the counts, the stop flag (SIGINT/SIGTERM on any rank, early stopping) and the training losses for
  the log are summed across ranks (`Dist.all_sum`); validation runs on every rank over the whole
  validation data, so every rank takes the same decisions (best weights, early stopping, schedule);
- rank 0 alone writes the run folder and prints; a budget in minutes is measured on rank 0 and its
  plan broadcast (`Dist.broadcast`), so every rank stops at the same step;
- a rank that dies makes the collectives of the others fail (gloo and NCCL notice the closed
  connection; a timeout, ``RNNKIT_DIST_TIMEOUT`` seconds, catches the rest): they stop with a
  `DistributedError` naming the failure instead of hanging.

``Dist.from_environment()`` reads torchrun's variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and initialises the default process group (gloo on CPU, NCCL on
GPU), or uses one the caller initialised already.

Shutting down. A group must really be destroyed before the interpreter finalises: gloo's worker
threads release each finished collective's tensors a moment after the caller has its result, and a
thread that drops a tensor with a Python object once finalisation has begun is stopped by Python in
the middle of a C++ destructor: ``terminate called without an active exception``, SIGABRT (measured:
4 of 15 short 2-process runs on a busy machine). Two things keep that from happening:

- ``torch.distributed.nn`` is imported here, with rnnkit, before any group exists. It takes the
  current default group as the default argument of ten functions when first imported; imported
  after ``init_process_group`` (PyTorch imports it lazily with ``torch._dynamo``, e.g. at the first
  optimizer step), it keeps that group alive for good, so ``destroy_process_group()`` no longer
  stops its threads. A group created before rnnkit was imported gets a warning saying so;
- a group rnnkit initialised itself (``torchrun``) is destroyed at exit (`atexit`, while the
  interpreter is still whole); a group the caller initialised is the caller's to destroy.
"""
from __future__ import annotations

import atexit
import datetime
import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from rnnkit.errors import ConfigError, RnnkitError

if dist.is_available():   # before any process group exists: see "Shutting down" above
    import torch.distributed.nn  # noqa: F401

#: seconds a collective may wait for the other ranks before the run stops with an error
DEFAULT_TIMEOUT_S = 120.0


class DistributedError(RnnkitError, RuntimeError):
    """The other ranks could not be reached (one died, or the network failed)."""

    exit_code = 1


@dataclass
class Dist:
    """This process's place in the run: ``rank`` of ``world`` (``world == 1``: a single process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device | str = "cpu") -> Dist:
        """The process group torchrun describes (initialised here if the caller has not), or a
        single process when there is none."""
        if dist.is_available() and dist.is_initialized():
            _warn_if_pinned()
            return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return cls()
        if not dist.is_available():
            raise ConfigError("WORLD_SIZE > 1 but this PyTorch was built without torch.distributed")
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        timeout = float(os.environ.get("RNNKIT_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
        except (RuntimeError, ValueError) as exc:
            raise DistributedError(f"could not join the process group ({backend}, WORLD_SIZE={world}): "
                                   f"{exc}") from None
        atexit.register(_destroy_own_group, dist.group.WORLD)
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))

    # -- the batch --------------------------------------------------------------------------------
    def check_divides(self, batch_size: int, what: str = "--batch-size") -> None:
        if self.enabled and batch_size % self.world:
            lower = batch_size - batch_size % self.world
            raise ConfigError(
                f"{what} {batch_size} cannot be split over {self.world} processes: each rank takes "
                f"batch/world rows; use a multiple of {self.world} (e.g. {lower or self.world} or "
                f"{lower + self.world}) or --nproc_per_node that divides {batch_size}")

    def shard(self, batch):
        """This rank's rows of a global batch: every tensor of a tuple/list/dict (nested) is cut
        along its first dimension into ``world`` equal parts; other values are kept."""
        if not self.enabled:
            return batch
        if isinstance(batch, torch.Tensor):
            n = batch.shape[0]
            if n < self.world:
                raise ConfigError(f"a batch of {n} rows cannot be split over {self.world} processes; "
                                  f"use a larger batch size (a multiple of {self.world})")
            # as even as possible (the last, shorter batch of an epoch may not divide): the loss is
            # scaled by the total count over the ranks, so the update stays exact
            return torch.tensor_split(batch, self.world)[self.rank]
        if isinstance(batch, (tuple, list)):
            return type(batch)(self.shard(b) for b in batch)
        if isinstance(batch, dict):
            return {k: self.shard(v) for k, v in batch.items()}
        return batch

    # -- collectives ------------------------------------------------------------------------------
    def all_sum(self, values: list[float]) -> list[float]:
        """The element-wise sum of ``values`` over the ranks (float64)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        self._collective(dist.all_reduce, t)
        return t.tolist()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (pickled by torch.distributed between our own processes)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        self._collective(dist.broadcast_object_list, box, src=0)
        return box[0]

    def all_gather_object(self, obj) -> list:
        """Every rank's ``obj``, in rank order."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world
        self._collective(dist.all_gather_object, out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            self._collective(dist.barrier)

    def _collective(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (RuntimeError, ConnectionError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DistributedError(f"rank {self.rank} of {self.world} lost the other ranks ({first}); "
                                   f"a process of the run died or the network failed; the last "
                                   f"checkpoint written by rank 0 is kept") from None

    # -- the model --------------------------------------------------------------------------------
    def wrap(self, task) -> nn.Module | None:
        """A DDP module whose forward is the task's loss (so any forward method of the task's model
        runs under DDP's gradient synchronisation); None for a single process."""
        if not self.enabled:
            return None
        device = next(task.model.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(_TaskLoss(task), device_ids=ids)


def _destroy_own_group(group) -> None:
    """At exit: destroy the group rnnkit initialised (its threads joined while Python is whole)."""
    try:
        if dist.is_initialized() and dist.group.WORLD is group:
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 -- the process is ending; a failed clean-up must not mask its status
        pass


def _warn_if_pinned() -> None:
    """Warn when ``torch.distributed.nn`` holds the caller's default group (see the module's
    "Shutting down"): it was imported after the group was made, so destroying the group will not
    stop its threads."""
    import torch.distributed.nn.functional as functional
    default = (functional.all_reduce.__defaults__ or (None,))[-1]
    if default is not None and default is dist.group.WORLD:
        warnings.warn("the default process group was initialised before torch.distributed.nn was "
                      "imported (by PyTorch's lazy imports, or by importing rnnkit after "
                      "init_process_group), which keeps it alive: destroy_process_group() will not stop "
                      "its threads, and the process may abort at exit ('terminate called without an "
                      "active exception'); import rnnkit (or torch.distributed.nn) before "
                      "init_process_group", RuntimeWarning, stacklevel=3)


class _TaskLoss(nn.Module):
    """The task's model as a submodule, and its loss as the forward: what DDP wraps."""

    def __init__(self, task):
        super().__init__()
        self.model = task.model
        self._loss = task.loss

    def forward(self, batch):
        return self._loss(batch)
