"""Layer-normalised LSTM and GRU (Ba, Kiros & Hinton 2016, "Layer Normalization").

LSTM (the paper's equations, supplementary "Layer-normalized LSTM"; gate order i, f, g, o):

    (i, f, g, o) = LN(W_hh h_{t-1}; α_hh, β_hh) + LN(W_ih x_t; α_ih, β_ih)
    c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g)
    h_t = σ(o) ⊙ tanh(LN(c_t; α_c, β_c))

GRU (the paper gives no GRU equations; this is the authors' released code, ``lngru_layer`` in
Kiros's ``layer-norm`` repository: r, z normalised together, the candidate's two products apart,
the reset gate applied after the recurrent product as in PyTorch's GRU):

    (r, z) = σ(LN(W_h{r,z} h_{t-1}; α, β) + LN(W_i{r,z} x_t; α', β'))
    n_t    = tanh(LN(W_in x_t; α'', β'') + r ⊙ LN(W_hn h_{t-1}; α''', β'''))
    h_t    = (1 - z) ⊙ n_t + z ⊙ h_{t-1}

``LN(v; α, β) = α ⊙ (v - mean(v)) / sqrt(var(v) + eps) + β`` over the feature axis of each sample.
The paper's separate bias ``b`` only ever appears summed with the shifts ``β``, so the shifts are the
biases: ``bias_ih`` is β_ih (+ b), ``bias_hh`` is β_hh, stored with PyTorch's names and layout.
Initialisation (Ba et al.): gains 1, shifts 0; weights by the ``init`` scheme of `rnnkit.cells.Cell`.

The input side ``LN(W_ih x_t)`` needs no state, so ``project_inputs`` computes it for all steps at
once and the step keeps one matrix product, one or two layer norms and fused element-wise math.
"""
from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.cells.base import Cell

_ln_backward = torch.ops.aten.native_layer_norm_backward


def _ln_grads(d_out: Tensor, v: Tensor, stats: list[Tensor], gain: Tensor,
              shift: Tensor | None) -> tuple[Tensor, Tensor, Any]:
    """Layer-norm backward (PyTorch's own kernel): ``(d_v, d_gain, d_shift)``."""
    mean, rstd = stats
    # torch.ops.aten's operators are untyped (Any); this one returns (d_v, d_gain, d_shift), d_shift
    # being None exactly when shift is (Any: callers know which, mypy cannot)
    return cast("tuple[Tensor, Tensor, Any]",
                _ln_backward(d_out, v, (v.shape[-1],), mean, rstd, gain, shift,
                             (True, True, shift is not None)))


def _check_eps(owner: str, eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"{owner}: eps must be a positive number, got {eps!r}")
    return float(eps)


class _LayerNormCell(Cell):
    """Shared parameters: gains ``ln_ih_weight (G*H,)``, ``ln_hh_weight (G*H,)``; the shifts are
    ``bias_ih`` / ``bias_hh`` (absent with ``bias=False``)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, eps: float = 1e-5,
                 **kw: Any) -> None:
        self.eps = _check_eps(type(self).__name__, eps)
        super().__init__(input_size, hidden_size, bias, **kw)

    def make_extra_parameters(self) -> None:
        GH = self.gates * self.hidden_size
        self.ln_ih_weight = nn.Parameter(torch.empty(GH))
        self.ln_hh_weight = nn.Parameter(torch.empty(GH))

    def reset_parameters(self) -> None:
        """Weights by ``init``; layer-norm gains 1 and shifts (the biases) 0, as Ba et al.;
        then ``forget_bias`` if given."""
        super().reset_parameters()
        with torch.no_grad():
            for name, p in self.named_parameters(recurse=False):
                if name.startswith("ln_") and name.endswith("_weight"):
                    p.fill_(1.0)
                elif name.startswith("bias") or name.endswith("_bias"):
                    p.zero_()
        if self.forget_bias is not None:
            self._set_forget_bias(self.forget_bias)

    def _set_forget_bias(self, value: float) -> None:
        raise ValueError(f"{type(self).__name__}: forget_bias applies to LSTM cells only")

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.eps == 1e-5 else f", eps={self.eps}")


class LayerNormLSTMCell(_LayerNormCell):
    """Layer-normalised LSTM cell (Ba et al. 2016). Parameters: ``weight_ih (4H, I)``,
    ``weight_hh (4H, H)``, ``bias_ih (4H,)`` (= β_ih + b), ``bias_hh (4H,)`` (= β_hh),
    ``ln_ih_weight (4H,)``, ``ln_hh_weight (4H,)``, ``ln_c_weight (H,)``, ``ln_c_bias (H,)``.
    State ``(h (B, H), c (B, H))``; ``c`` is carried un-normalised, as in the paper."""

    gates = 4

    def make_extra_parameters(self) -> None:
        super().make_extra_parameters()
        self.ln_c_weight = nn.Parameter(torch.empty(self.hidden_size))
        if self.bias:
            self.ln_c_bias = nn.Parameter(torch.empty(self.hidden_size))
        else:
            self.register_parameter("ln_c_bias", None)

    @property
    def state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((self.hidden_size,), (self.hidden_size,))

    def _set_forget_bias(self, value: float) -> None:
        if self.bias_ih is None:
            raise ValueError(f"{type(self).__name__}: forget_bias needs bias=True")
        H = self.hidden_size
        with torch.no_grad():
            self.bias_ih[H:2 * H].fill_(value)

    def project_inputs(self, x: Tensor) -> Tensor:
        """``(..., I) -> (..., 4H)``: ``LN(x W_ih^T; α_ih, β_ih)`` for all steps at once."""
        xp = F.linear(x, self.weight_ih)
        return F.layer_norm(xp, (4 * self.hidden_size,), self.ln_ih_weight, self.bias_ih, self.eps)

    def step(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One step: the recurrent product, then `pointwise_forward` (the step's one definition)."""
        (h, c), _ = self.pointwise_forward(xp_t, state[0] @ self.weight_hh.t(), state,
                                           self.pointwise_params())
        return h, (h, c)

    # -- the step's derivative, for the engine's hand-written BPTT (`rnnkit.core.bptt`) ----------
    def recurrent_matrix(self) -> Tensor:
        return self.weight_hh

    def pointwise_params(self) -> tuple[Tensor | None, ...]:
        return (self.ln_hh_weight, self.bias_hh, self.ln_c_weight, self.ln_c_bias)

    def pointwise_forward(self, xp_t: Tensor, hp_t: Tensor, state: tuple[Tensor, ...],
                          params: tuple[Any, ...]) -> tuple[tuple[Tensor, ...], tuple[Any, ...]]:
        """`step` after its matrix product ``hp_t = h_{t-1} W_hh^T``; same numbers as `step`."""
        g_hh, b_hh, g_c, b_c = params
        c_prev = state[1]
        H = self.hidden_size
        hn, *st1 = torch.native_layer_norm(hp_t, (4 * H,), g_hh, b_hh, self.eps)
        gates = xp_t + hn
        sig = torch.sigmoid(gates)
        tg = torch.tanh(gates[:, 2 * H:3 * H])
        c = torch.addcmul(sig[:, H:2 * H] * c_prev, sig[:, :H], tg)
        cn, *st2 = torch.native_layer_norm(c, (H,), g_c, b_c, self.eps)
        tc = torch.tanh(cn)
        h = sig[:, 3 * H:] * tc
        return (h, c), (hp_t, st1, sig, tg, c_prev, c, st2, tc)

    def pointwise_backward(self, saved: tuple[Any, ...], params: tuple[Any, ...],
                           d_state: tuple[Tensor, ...], d_xp: Tensor
                           ) -> tuple[Tensor, tuple[Tensor | None, ...], tuple[Tensor | None, ...]]:
        g_hh, b_hh, g_c, b_c = params
        hp_t, st1, sig, tg, c_prev, c, st2, tc = saved
        dh, dc = d_state
        H = self.hidden_size
        i, f, o = sig[:, :H], sig[:, H:2 * H], sig[:, 3 * H:]
        d_act = d_xp  # d/d(i, f, g, o), then times the nonlinearities' derivatives: d xp_t
        torch.mul(dh, tc, out=d_act[:, 3 * H:])
        d_cn = (dh * o) * (1 - tc * tc)
        d_c_ln, d_gc, d_bc = _ln_grads(d_cn, c, st2, g_c, b_c)
        dc = dc + d_c_ln
        torch.mul(dc, tg, out=d_act[:, :H])
        torch.mul(dc, c_prev, out=d_act[:, H:2 * H])
        torch.mul(dc, i, out=d_act[:, 2 * H:3 * H])
        deriv = sig * (1 - sig)
        deriv[:, 2 * H:3 * H] = 1 - tg * tg
        d_gates = d_act.mul_(deriv)  # (B, 4H) = d xp_t = d LN(hp_t)
        d_hp, d_ghh, d_bhh = _ln_grads(d_gates, hp_t, st1, g_hh, b_hh)
        return d_hp, (None, dc * f), (d_ghh, d_bhh, d_gc, d_bc)


class LayerNormGRUCell(_LayerNormCell):
    """Layer-normalised GRU cell (Ba et al. 2016; the authors' ``lngru_layer``). Parameters (gates
    ``r, z, n``): ``weight_ih (3H, I)``, ``weight_hh (3H, H)``, ``bias_ih (3H,)``, ``bias_hh (3H,)``
    (the shifts), ``ln_ih_weight (3H,)``, ``ln_hh_weight (3H,)`` (the gains; blocks ``[r, z]`` and
    ``[n]`` are normalised separately). State ``(h (B, H),)``."""

    gates = 3

    def _ln_split(self, v: Tensor, gain: Tensor, shift: Tensor | None) -> Tensor:
        """LN of ``v (..., 3H)`` over its ``[r, z]`` block (2H) and its ``[n]`` block (H) apart."""
        H = self.hidden_size
        b_rz = b_n = None
        if shift is not None:
            b_rz, b_n = shift[:2 * H], shift[2 * H:]
        rz = F.layer_norm(v[..., :2 * H], (2 * H,), gain[:2 * H], b_rz, self.eps)
        n = F.layer_norm(v[..., 2 * H:], (H,), gain[2 * H:], b_n, self.eps)
        return torch.cat((rz, n), -1)

    def project_inputs(self, x: Tensor) -> Tensor:
        """``(..., I) -> (..., 3H)``: the normalised input products of all steps at once."""
        return self._ln_split(F.linear(x, self.weight_ih), self.ln_ih_weight, self.bias_ih)

    def step(self, xp_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        return self.step_with_recurrent_input(xp_t, state, state[0])

    def step_with_recurrent_input(self, xp_t: Tensor, state: tuple[Tensor, ...],
                                  h_rec: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The step with ``h_rec`` in place of ``h_{t-1}`` inside the recurrent matrix product
        only (the interpolation keeps ``h_{t-1}``): the hook recurrent dropout uses. The product,
        then `pointwise_forward` (the step's one definition)."""
        (h,), _ = self.pointwise_forward(xp_t, h_rec @ self.weight_hh.t(), state,
                                         self.pointwise_params())
        return h, (h,)

    # -- the step's derivative, for the engine's hand-written BPTT (`rnnkit.core.bptt`) ----------
    def recurrent_matrix(self) -> Tensor:
        return self.weight_hh

    def pointwise_params(self) -> tuple[Tensor | None, ...]:
        return (self.ln_hh_weight, self.bias_hh)

    def pointwise_forward(self, xp_t: Tensor, hp_t: Tensor, state: tuple[Tensor, ...],
                          params: tuple[Any, ...]) -> tuple[tuple[Tensor, ...], tuple[Any, ...]]:
        """`step` after its matrix product ``hp_t = h_{t-1} W_hh^T``; same numbers as `step`."""
        gain, shift = params
        (h_prev,) = state
        H = self.hidden_size
        b_rz = b_n = None
        if shift is not None:
            b_rz, b_n = shift[:2 * H], shift[2 * H:]
        v_rz, v_n = hp_t[:, :2 * H].contiguous(), hp_t[:, 2 * H:].contiguous()
        n_rz, *st_rz = torch.native_layer_norm(v_rz, (2 * H,), gain[:2 * H], b_rz, self.eps)
        n_n, *st_n = torch.native_layer_norm(v_n, (H,), gain[2 * H:], b_n, self.eps)
        rz = torch.sigmoid(xp_t[:, :2 * H] + n_rz)
        n = torch.tanh(torch.addcmul(xp_t[:, 2 * H:], rz[:, :H], n_n))
        h = torch.lerp(n, h_prev, rz[:, H:])
        return (h,), (v_rz, st_rz, v_n, st_n, n_n, rz, n, h_prev)

    def pointwise_backward(self, saved: tuple[Any, ...], params: tuple[Any, ...],
                           d_state: tuple[Tensor, ...], d_xp: Tensor
                           ) -> tuple[Tensor, tuple[Tensor | None, ...], tuple[Tensor | None, ...]]:
        gain, shift = params
        v_rz, st_rz, v_n, st_n, n_n, rz, n, h_prev = saved
        (dh,) = d_state
        H = self.hidden_size
        r, z = rz[:, :H], rz[:, H:]
        b_rz = b_n = None
        if shift is not None:
            b_rz, b_n = shift[:2 * H], shift[2 * H:]
        d_npre = torch.mul(dh - dh * z, 1 - n * n, out=d_xp[:, 2 * H:])  # d of tanh's input
        torch.mul(d_npre, n_n, out=d_xp[:, :H])  # d r
        torch.mul(dh, h_prev - n, out=d_xp[:, H:2 * H])  # d z
        d_xp[:, :2 * H].mul_(rz * (1 - rz))
        d_rz, d_g_rz, d_b_rz = _ln_grads(d_xp[:, :2 * H], v_rz, st_rz, gain[:2 * H], b_rz)
        d_n, d_g_n, d_b_n = _ln_grads(d_npre * r, v_n, st_n, gain[2 * H:], b_n)
        d_gain = torch.cat((d_g_rz, d_g_n))
        d_shift = None if shift is None else torch.cat((d_b_rz, d_b_n))
        return torch.cat((d_rz, d_n), 1), (dh * z,), (d_gain, d_shift)
