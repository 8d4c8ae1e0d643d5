"""Regularisers of the recurrence, for any cell: variational recurrent dropout, zoneout, weight drop.

- ``recurrent_dropout=p`` (Gal & Ghahramani 2016): in training, ``h_{t-1}`` is multiplied by one
  dropout mask ``m`` ``(B, H_out)`` (entries ``0`` or ``1/(1-p)``) where it enters the recurrent
  matrix product; the same mask serves every step of the sequence (a fresh one per sequence, per
  layer and direction). The carried state itself is not dropped: the LSTM's ``c`` and the GRU's
  interpolation ``z ⊙ h_{t-1}`` see the undropped ``h_{t-1}``, as in Keras. Needs the loop kernel.
- ``zoneout=p`` (Krueger et al. 2016): in training, each unit of each state tensor keeps its
  previous value with probability ``p``, drawn per unit and per step
  (``s_t = d_t ⊙ s_{t-1} + (1 - d_t) ⊙ s~_t``, ``d_t ~ Bernoulli(p)``, ``h`` and ``c`` apart);
  at evaluation the expectation ``s_t = p s_{t-1} + (1 - p) s~_t``, as the paper. Needs the loop.
- ``weight_drop=p`` (DropConnect on ``weight_hh``, Wan et al. 2013, as AWD-LSTM, Merity et al.
  2018): in training, each forward uses ``weight_hh * m``, ``m = (u < 1 - p) / (1 - p)`` with ``u``
  uniform (``rand``, float32 or wider, the weight's shape) — one mask for the whole batch and all
  steps, fresh per forward; gradients reach the raw weights through the mask. Any kernel, the fused
  one included (it is given the dropped weights). (Why not ``F.dropout``: on the CPU its Bernoulli
  draws cost 3x a ``rand`` — 38 against 13 ms for a 4096 x 1024 matrix on one core, a fifth of an
  LSTM(1024) language model's training step.)

All are off by default, and in evaluation mode only zoneout changes the output. Masks are drawn
with the global torch generator in a fixed order (recurrent-dropout mask at a layer's first step,
then per step one ``rand`` per state tensor for zoneout), so a seed reproduces a run.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor

if TYPE_CHECKING:
    from rnnkit.cells.base import Cell


def _check_rate(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{owner}: {name} must be a number in [0, 1), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Regularizers:
    """The three rates of one recurrent module (0 = off)."""

    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    weight_drop: float = 0.0

    @classmethod
    def checked(cls, owner: str, cells: Sequence[Cell], recurrent_dropout: float = 0.0,
                zoneout: float = 0.0, weight_drop: float = 0.0) -> Regularizers:
        """Validate the rates against the cells (a cell without a recurrent matrix has nothing
        for recurrent dropout or weight drop to act on)."""
        regs = cls(_check_rate(owner, "recurrent_dropout", recurrent_dropout),
                   _check_rate(owner, "zoneout", zoneout),
                   _check_rate(owner, "weight_drop", weight_drop))
        cell = cells[0]
        if getattr(cell, "weight_hh", None) is None:
            for name in ("recurrent_dropout", "weight_drop"):
                if getattr(regs, name):
                    raise ValueError(
                        f"{owner}: {name}={getattr(regs, name)} needs a recurrent weight, but "
                        f"{type(cell).__name__} has none (its gates read only x_t); use zoneout= "
                        f"or dropout= between layers instead")
        return regs

    def kernel_restriction(self) -> str | None:
        """Why only the loop kernel can serve (a per-step mask inside the recurrence), or None."""
        if self.recurrent_dropout:
            return f"recurrent_dropout={self.recurrent_dropout} needs the loop kernel"
        if self.zoneout:
            return f"zoneout={self.zoneout} needs the loop kernel"
        return None

    def wrap(self, cell: Cell, training: bool) -> Cell | RegularizedStep:
        """What the loop kernel should step: ``cell`` itself, or a `RegularizedStep` around it."""
        if (self.recurrent_dropout and training) or self.zoneout:
            return RegularizedStep(cell, self.recurrent_dropout if training else 0.0,
                                   self.zoneout, training)
        return cell

    @contextmanager
    def dropped_weights(self, cells: Sequence[Cell], training: bool) -> Iterator[None]:
        """Within the block, each cell's ``weight_hh`` is ``dropout(raw, p)`` (training only)."""
        if not (self.weight_drop and training):
            yield
            return
        raw = [c._parameters["weight_hh"] for c in cells]
        for c, w in zip(cells, raw):
            # torch types the slot Parameter | None: the dropped weight is a plain tensor on purpose
            # (gradients reach the raw one through it), and every cell checked has a weight_hh
            c._parameters["weight_hh"] = w * drop_connect_mask(w, self.weight_drop)  # type: ignore[assignment, operator, arg-type]
        try:
            yield
        finally:  # put the parameters back even when the forward raises
            for c, w in zip(cells, raw):
                c._parameters["weight_hh"] = w

    def extra_repr(self) -> str:
        return "".join(f", {k}={v}" for k, v in vars(self).items() if v)


def drop_connect_mask(w: Tensor, p: float) -> Tensor:
    """A DropConnect mask for ``w``: ``1 / (1 - p)`` with probability ``1 - p``, else 0 (no grad)."""
    keep = 1.0 - p
    u = torch.rand(w.shape, device=w.device, dtype=torch.promote_types(w.dtype, torch.float32))
    return u.lt_(keep).to(w.dtype).mul_(1.0 / keep)


class RegularizedStep:
    """A cell's step with recurrent dropout and/or zoneout around it (the loop kernel calls
    ``step(xp_t, state)`` on it as on a cell). Made afresh for each sequence and layer."""

    def __init__(self, cell: Cell, recurrent_dropout: float, zoneout: float, training: bool) -> None:
        self.cell, self.p_drop, self.p_zone, self.training = cell, recurrent_dropout, zoneout, training
        self.mask: Tensor | None = None

    def step(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        if self.p_drop:
            if self.mask is None:  # one mask per sequence, reused at every step
                keep = 1.0 - self.p_drop
                self.mask = torch.empty_like(state[0]).bernoulli_(keep).div_(keep)
            out, new = step_with_recurrent_input(self.cell, xp_t, state, state[0] * self.mask)
        else:
            out, new = self.cell.step(xp_t, state)
        if self.p_zone:
            if self.training:
                new = tuple(torch.where(torch.rand_like(n) < self.p_zone, s, n)
                            for n, s in zip(new, state))
            else:
                new = tuple(torch.lerp(n, s, self.p_zone) for n, s in zip(new, state))
            out = new[0]  # every rnnkit cell outputs its state h
        return out, new


def step_with_recurrent_input(cell: Cell, xp_t: Tensor, state: tuple[Tensor, ...],
                              h_rec: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One step of ``cell`` with ``h_rec`` in place of ``h_{t-1}`` where it enters the recurrent
    matrix product, and the true ``h_{t-1}`` everywhere else.

    Cells that use ``h_{t-1}`` outside the product (the GRUs' interpolation) define
    ``step_with_recurrent_input`` with their own step; in every other cell (Elman, LSTM, LN-LSTM,
    IndRNN) ``h_{t-1}`` enters the step only through the recurrent weights, so swapping the state's
    ``h`` is exact."""
    own = getattr(cell, "step_with_recurrent_input", None)
    if own is not None:
        # found by name (a GRU's own hook), so untyped: it returns what `step` does
        return cast("tuple[Tensor, tuple[Tensor, ...]]", own(xp_t, state, h_rec))
    return cell.step(xp_t, (h_rec,) + tuple(state[1:]))
