"""Adapters between Keras's recurrent layout and the engine's cells.

1. Layout. Keras stores ``kernel (I, G*H)``, ``recurrent_kernel (H, G*H)`` and ``bias (G*H,)`` — or
   ``(2, 3H)`` for a GRU with ``reset_after=True`` (row 0 input bias, row 1 recurrent bias) — with
   gates ``i, f, c, o`` (LSTM, the same order as PyTorch's ``i, f, g, o``) and ``z, r, h`` (GRU;
   PyTorch's order is ``r, z, n``). `torch_layout` turns them into the engine's
   ``weight_ih (G*H, I)``, ``weight_hh``, ``bias_ih``, ``bias_hh`` as differentiable views (a single
   Keras bias goes to ``bias_ih``; ``bias_hh`` is zero), and `keras_layout` goes back.

2. Cells for what the engine's stock cells do not offer: Keras's ``activation`` /
   ``recurrent_activation`` other than tanh/sigmoid, and ``recurrent_dropout`` (a mask on the
   state fed to the recurrent matrix product, fixed over time; in the GRU the carry
   ``z * h_{t-1}`` uses the unmasked state, as in Keras). They subclass the engine's cells (same
   parameters, same loop kernel) and only replace ``step``; the engine still owns time.
   Keras draws one recurrent-dropout mask per gate; we draw one per layer call (same expected
   effect, one mask instead of G) — documented difference, dropout is random either way.
"""
from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells import GRUCell, LSTMCell, SimpleRNNCell
from rnnkit.cells.gru import gru_step
from rnnkit.cells.lstm import lstm_step
from rnnkit.cells.rnn import elman_step

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _swap_zr(w: Tensor, H: int, dim: int = 0) -> Tensor:
    """Swap the first two gate blocks (GRU ``z, r, h`` <-> ``r, z, n``); its own inverse."""
    a, b, c = w.narrow(dim, 0, H), w.narrow(dim, H, H), w.narrow(dim, 2 * H, H)
    return torch.cat([b, a, c], dim)


def torch_layout(kind: str, kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor | None,
                 units: int, *, zero_bias_hh: bool = True) -> dict[str, Tensor | None]:
    """Keras weights -> the engine's ``weight_ih, weight_hh, bias_ih, bias_hh`` (autograd-connected).

    ``zero_bias_hh=False`` leaves ``bias_hh`` None when Keras has a single bias (the loop kernel
    then skips the addition); the fused kernel needs the explicit zeros."""
    w_ih, w_hh = kernel.t(), recurrent_kernel.t()
    b_ih = b_hh = None
    if bias is not None:
        if bias.dim() == 2:  # GRU reset_after: (2, 3H)
            b_ih, b_hh = bias[0], bias[1]
        else:
            b_ih = bias
    if kind == "gru":
        w_ih, w_hh = _swap_zr(w_ih, units), _swap_zr(w_hh, units)
        b_ih = None if b_ih is None else _swap_zr(b_ih, units)
        b_hh = None if b_hh is None else _swap_zr(b_hh, units)
    if b_ih is not None and b_hh is None and zero_bias_hh:   # (b_ih is set exactly when bias is)
        b_hh = torch.zeros_like(b_ih)
    return {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}


def keras_layout(kind: str, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None,
                 bias_hh: Tensor | None, *, reset_after: bool = True) -> list[Tensor]:
    """The engine's (PyTorch's) layout -> Keras's ``[kernel, recurrent_kernel, bias]``.

    PyTorch's two biases become Keras's one (their sum) except for a ``reset_after`` GRU, whose
    recurrent bias sits inside ``r * (...)`` and so stays a separate row."""
    H = weight_hh.shape[1]
    if kind == "gru":
        weight_ih, weight_hh = _swap_zr(weight_ih, H), _swap_zr(weight_hh, H)
        bias_ih = None if bias_ih is None else _swap_zr(bias_ih, H)
        bias_hh = None if bias_hh is None else _swap_zr(bias_hh, H)
    out = [weight_ih.t().contiguous(), weight_hh.t().contiguous()]
    if bias_ih is not None:
        if bias_hh is None:   # a single bias (`torch_layout` with zero_bias_hh=False)
            bias_hh = torch.zeros_like(bias_ih)
        if kind == "gru" and reset_after:
            out.append(torch.stack([bias_ih, bias_hh]))
        elif kind == "gru" and bool((bias_hh[2 * H:] != 0).any()):
            raise ValueError("a GRU with reset_after=False has no place for a non-zero recurrent "
                             "bias of the candidate gate in Keras's layout")
        else:
            out.append(bias_ih + bias_hh)
    return out


class KerasSimpleRNNCell(SimpleRNNCell):
    """``h_t = act(x_t W + b + (m ⊙ h_{t-1}) U)``, any activation, optional recurrent mask ``m``."""

    def __init__(self, input_size, hidden_size, bias=True, *, activation=torch.tanh, **kw):
        super().__init__(input_size, hidden_size, bias, **kw)
        self.act, self.rec_mask = activation, None

    def step(self, xp_t: Tensor, state):
        (h,) = state
        hm = h if self.rec_mask is None else h * self.rec_mask
        h = elman_step(xp_t, hm, self.weight_hh, self.bias_hh, self.act)
        return h, (h,)


class KerasLSTMCell(LSTMCell):
    """Keras's LSTM step with ``act`` (Keras ``activation``) and ``ract`` (``recurrent_activation``):
    ``c_t = ract(f) c + ract(i) act(g)``, ``h_t = ract(o) act(c_t)``, gates from ``m ⊙ h_{t-1}``."""

    def __init__(self, input_size, hidden_size, bias=True, *, activation=torch.tanh,
                 recurrent_activation=torch.sigmoid, **kw):
        super().__init__(input_size, hidden_size, bias, **kw)
        self.act, self.ract, self.rec_mask = activation, recurrent_activation, None

    def step(self, xp_t: Tensor, state):
        h, c = state
        hm = h if self.rec_mask is None else h * self.rec_mask
        h, c = lstm_step(xp_t, hm, c, self.weight_hh, self.bias_hh, None, self.act, self.ract)
        return h, (h, c)


class KerasGRUCell(GRUCell):
    """Keras's GRU step (PyTorch gate order ``r, z, n`` inside): ``h_t = z h_{t-1} + (1 - z) act(n)``,
    gates ``ract``, recurrent products from ``m ⊙ h_{t-1}``, both reset-gate placements."""

    def __init__(self, input_size, hidden_size, bias=True, *, activation=torch.tanh,
                 recurrent_activation=torch.sigmoid, **kw):
        super().__init__(input_size, hidden_size, bias, **kw)
        self.act, self.ract, self.rec_mask = activation, recurrent_activation, None

    def step(self, xp_t: Tensor, state):
        (h,) = state
        hm = None if self.rec_mask is None else h * self.rec_mask
        h = gru_step(xp_t, h, self.weight_hh, self.bias_hh, reset_after=self.reset_after, h_rec=hm,
                     activation=self.act, recurrent_activation=self.ract)
        return h, (h,)


STOCK = {"rnn": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}
CUSTOM = {"rnn": KerasSimpleRNNCell, "lstm": KerasLSTMCell, "gru": KerasGRUCell}


def bind(cell, weights: dict[str, Tensor | None]) -> None:
    """Point ``cell``'s parameters at ``weights`` (tensors computed from the Keras layer's own
    parameters for this call), as `RecurrentStack` does for its cells."""
    for name, t in weights.items():
        if name in cell._parameters:
            cell._parameters[name] = t
