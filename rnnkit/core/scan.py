"""Scan kernels for cells whose recurrence is linear in the state: ``h_t = a_t ⊙ h_{t-1} + b_t``.

Three ways to compute all ``h_t`` of a sequence (shapes: T time, B batch, H hidden; ``a, b`` are
``(T, B, H)``, ``h0`` is ``(B, H)``):

- ``sequential``: one fused multiply-add per step, forward and backward written by hand
  (`SequentialScan`): no autograd graph per step, the output written in place, and the backward is
  the same scan run backward in time (``g_t = dL/dh_t + a_{t+1} ⊙ g_{t+1}``). ``T`` small ops.
  For a cell (`run_scan`, no mask) it is `CellScan`: the same, with the cell's coefficients and
  their derivatives computed a block of steps at a time instead of as whole-sequence tensors.
  For the stock minGRU/minLSTM cells with rnnkit's C++ kernels built (`rnnkit.core.native`) it is
  `NativeMinScan`: gates and scan fused in C++, one pass per direction, no per-step overhead; `run_scan`
  then uses it for ``algorithm="auto"`` too, as it beats the other two at every size.
- ``parallel``: the log-space scan of Feng et al. 2024 (appendix B), made exact for any sign of
  ``h0``: ``h_t = exp(A_t) h0 + exp(A_t + logcumsumexp_s(log b_s - A_s))`` with
  ``A_t = sum_{s<=t} log a_s``. A handful of whole-sequence ops, O(log T) depth on a parallel
  machine, but ``logcumsumexp`` costs several transcendental functions per element.
- ``chunked``: a two-level scan (Blelloch's idea in blocks): a sequential scan inside chunks of
  ``C`` steps run for all chunks at once, a scan of the ``T/C`` chunk carries, one fix-up.
  ``C + T/C`` steps of wider ops instead of ``T``.

`choose_algorithm` picks one per situation; why it picks what it picks is measured by
``benchmarks/bench_cells.py`` and explained at `choose_algorithm`. All three give the same numbers
(tests hold them to the plain loop and to finite differences).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.core import native
from rnnkit.core.fast_paths import fast_path_unavailable
from rnnkit.core.higher_order import keeps_graph, recompute_grads

ALGORITHMS = ("auto", "sequential", "parallel", "chunked")


# -- the sequential scan ---------------------------------------------------------------------------
def _scan_into(out: Tensor, a: Tensor, b: Tensor, h: Tensor, reverse: bool = False) -> Tensor:
    """``out[t] = a[t] * h_prev + b[t]`` over t (in reverse if asked); returns the last ``h``."""
    steps = zip(a.unbind(0), b.unbind(0), out.unbind(0))
    for a_t, b_t, o_t in (reversed(list(steps)) if reverse else steps):
        h = torch.addcmul(b_t, a_t, h, out=o_t)
    return h


class SequentialScan(torch.autograd.Function):
    """``h = SequentialScan.apply(a, b, h0)``: ``(T, B, H), (T, B, H), (B, H) -> (T, B, H)``."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        out = torch.empty_like(b)
        _scan_into(out, a, b, h0)
        ctx.save_for_backward(a, out, h0, b)
        return out

    @staticmethod
    def backward(ctx: Any, g_out: Tensor) -> tuple[Tensor | None, ...]:
        a, out, h0, b = ctx.saved_tensors
        if keeps_graph():  # the graph is kept: the scan again, differentiably (`higher_order`)
            return tuple(recompute_grads(_scan_steps, [a, b, h0], ctx.needs_input_grad, [g_out]))
        # g_t = dL/dh_t in full = g_out_t + a_{t+1} g_{t+1}: the same scan, backward in time
        g = torch.empty_like(out)
        g[-1] = g_out[-1]
        _scan_into(g[:-1], a[1:], g_out[:-1], g[-1], reverse=True)
        da = db = dh0 = None
        if ctx.needs_input_grad[0]:
            da = torch.empty_like(g)
            torch.mul(g[1:], out[:-1], out=da[1:])
            torch.mul(g[0], h0, out=da[0])
        if ctx.needs_input_grad[1]:
            db = g
        if ctx.needs_input_grad[2]:
            dh0 = a[0] * g[0]
        return da, db, dh0


def _scan_steps(a: Tensor, b: Tensor, h: Tensor) -> tuple[Tensor]:
    """The scan as plain differentiable steps (what a backward that keeps the graph recomputes)."""
    outs = []
    for a_t, b_t in zip(a.unbind(0), b.unbind(0)):
        h = torch.addcmul(b_t, a_t, h)
        outs.append(h)
    return (torch.stack(outs),)


def _cell_steps(step: Callable[[Tensor, Tensor], Tensor], xp: Tensor, h: Tensor) -> tuple[Tensor]:
    """``step(xp_t, h) -> h_t`` over the whole sequence, differentiably: ``(T, B, H)``."""
    outs = []
    for xp_t in xp.unbind(0):
        h = step(xp_t, h)
        outs.append(h)
    return (torch.stack(outs),)


def sequential_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    return cast(Tensor, SequentialScan.apply(a, b, h0))  # type: ignore[no-untyped-call]  # torch's Function.apply is unannotated


#: CellScan computes the coefficients of this many elements (C steps of B*H) per call: large enough
#: to amortise the per-op overhead and for PyTorch to split each op over the threads (its grain is
#: 32768 elements), small enough for the block to stay in cache. Measured (T=1000, B=32, H=512, 2
#: threads, quiet machine): 2**15 -> minGRU 2.98x the fused LSTM, 2**17 -> 3.91x, 2**19 -> 3.77x.
BLOCK_ELEMENTS = 2 ** 17


class CellScan(torch.autograd.Function):
    """``h = CellScan.apply(cell, xp, h0)``: the sequential scan with the cell's coefficients
    computed block by block of C steps from ``xp`` ``(T, B, G*H)`` (`scan_coefficients` forward,
    `scan_coefficients_backward` backward; only ``a`` is kept, the rest is recomputed). Apart from
    ``a``, the output and the input gradient nothing of size ``(T, B, H)`` is formed: the block's
    tiles stay in cache, which on a CPU beats whole-sequence element-wise passes that stream the
    coefficients through memory several times, and per-step ops pay the per-op overhead T times."""

    @staticmethod
    def forward(ctx: Any, cell: Any, xp: Tensor, h0: Tensor) -> Tensor:
        T, B, H = xp.shape[0], xp.shape[1], h0.shape[-1]
        C = max(1, BLOCK_ELEMENTS // (B * H))
        out = xp.new_empty(T, B, H)
        a_all = torch.empty_like(out)
        h = h0
        for t0 in range(0, T, C):
            a, b = cell.scan_coefficients(xp[t0:t0 + C])  # (C, B, H) each
            a_all[t0:t0 + C] = a
            h = _scan_into(out[t0:t0 + C], a, b, h)
        ctx.cell, ctx.block = cell, C
        ctx.save_for_backward(xp, a_all, out, h0)
        return out

    @staticmethod
    def backward(ctx: Any, g_out: Tensor) -> tuple[Tensor | None, ...]:
        xp, a_all, out, h0 = ctx.saved_tensors
        if keeps_graph():  # the cell's own steps, differentiably (`higher_order`)
            cell = ctx.cell
            grads = recompute_grads(lambda xp, h0: _cell_steps(lambda x_t, h: cell.step(x_t, (h,))[0],
                                                               xp, h0),
                                    [xp, h0], ctx.needs_input_grad[1:], [g_out])
            return (None, *grads)
        T, C = xp.shape[0], ctx.block
        d_xp = torch.empty_like(xp)
        g = torch.empty_like(out)  # dL/dh_t in full
        carry = torch.zeros_like(h0)  # a_{t+1} g_{t+1}: what reaches h_t from the future
        for t0 in reversed(range(0, T, C)):
            t1 = min(t0 + C, T)
            for t in range(t1 - 1, t0 - 1, -1):
                torch.add(g_out[t], carry, out=g[t])
                carry = a_all[t] * g[t]
            h_prev = out[t0 - 1:t1 - 1] if t0 else torch.cat((h0.unsqueeze(0), out[:t1 - 1]))
            ctx.cell.scan_coefficients_backward(xp[t0:t1], a_all[t0:t1], g[t0:t1], h_prev,
                                                d_xp[t0:t1])
        return None, d_xp, carry


class NativeMinScan(torch.autograd.Function):
    """``h = NativeMinScan.apply(xp, bias, h0, gates)``: `CellScan` of a stock minGRU (``gates=2``)
    or minLSTM (``gates=3``) in rnnkit's C++ kernel (``csrc/minscan.cpp``): gates and scan fused, one
    pass over the sequence per direction, rows of the batch in parallel. ``bias`` ``(G*H,)`` is added
    to ``xp`` inside the kernel (None: ``xp`` includes it)."""

    @staticmethod
    def forward(ctx: Any, xp: Tensor, bias: Tensor | None, h0: Tensor, gates: int) -> Tensor:
        b = xp.new_empty(0) if bias is None else bias.contiguous()
        out: Tensor = native.ops().min_scan_forward(xp.contiguous(), b, h0.contiguous(), gates)
        ctx.gates = gates
        ctx.save_for_backward(xp, b, out, h0)  # the inputs themselves: a kept graph starts there
        return out

    @staticmethod
    def backward(ctx: Any, g_out: Tensor) -> tuple[Tensor | None, ...]:
        xp, b, out, h0 = ctx.saved_tensors
        if keeps_graph():  # the cells' own steps, differentiably (`higher_order`)
            from rnnkit.cells.minimal import mingru_step, minlstm_step
            step = mingru_step if ctx.gates == 2 else minlstm_step
            bias = b if ctx.needs_input_grad[1] else None

            def steps(xp: Tensor, bias: Tensor | None, h0: Tensor) -> tuple[Tensor]:
                return _cell_steps(step, xp if bias is None else xp + bias, h0)
            if bias is None and b.numel():
                xp = xp + b  # a bias that wants no gradient: added before, as a constant
            grads = recompute_grads(steps, [xp, bias, h0], ctx.needs_input_grad[:3], [g_out])
            return (*grads, None)
        d_xp, d_h0 = native.ops().min_scan_backward(g_out.contiguous(), xp.contiguous(), b, out,
                                                    h0.contiguous(), ctx.gates)
        d_b = d_xp.sum((0, 1)) if ctx.needs_input_grad[1] else None
        return d_xp, d_b, d_h0, None


# `cell` below is Any: a cell linear in the state (`linear_recurrence`, `scan_coefficients` and its
# relatives, as rnnkit.cells.minimal's), which the engine finds by duck typing
def scan_layer(cell: Any, x: Tensor, state: tuple[Tensor, ...], mask: Tensor | None,
               masked_output: str = "zero", algorithm: str = "auto") -> tuple[Tensor, tuple[Tensor, ...]]:
    """`run_scan` of ``cell`` on raw inputs ``x`` ``(T, B, I)``: the engine's entry point. Where
    `NativeMinScan` applies, the input projection is one product without the bias (adding the bias
    to a product's output costs a pass over ``(T, B, G*H)``; the kernel adds it on the fly)."""
    if (algorithm in ("auto", "sequential") and mask is None
            and fast_path_unavailable([cell], "native_scan", dtype=x.dtype, device=x.device) is None):
        h = NativeMinScan.apply(F.linear(x, cell.weight_ih), cell.bias_ih, state[0],  # type: ignore[no-untyped-call]  # torch's Function.apply is unannotated
                                cell.gates)
        return h, (h[-1],)
    return run_scan(cell, cell.project_inputs(x), state, mask, masked_output, algorithm)


# -- the log-space parallel scan -------------------------------------------------------------------
def parallel_scan_log(log_a: Tensor, log_b: Tensor, h0: Tensor) -> Tensor:
    """``h_t`` from ``log a``, ``log b`` ``(T, B, H)`` and ``h0`` ``(B, H)`` of any sign.

    The paper folds ``h0`` into the values as ``log g(h0)``, which needs ``h0 > 0``; keeping
    ``exp(A_t) h0`` apart is exact for every ``h0`` and identical otherwise."""
    A = torch.cumsum(log_a, 0)  # (T, B, H): log of prod_{s<=t} a_s
    return torch.exp(A + torch.logcumsumexp(log_b - A, 0)) + torch.exp(A) * h0


# -- the chunked two-level scan --------------------------------------------------------------------
def chunked_scan(a: Tensor, b: Tensor, h0: Tensor, chunk: int | None = None) -> Tensor:
    """Two-level scan: chunks of ``chunk`` steps (default about sqrt(T)) scanned side by side from a
    zero state, then the chunk carries scanned, then ``h = h_local + (prod a within chunk) * carry``."""
    T, B, H = b.shape
    C = chunk or max(1, math.isqrt(T))
    if C >= T:
        return sequential_scan(a, b, h0)
    n = -(-T // C)  # chunks
    pad = n * C - T
    if pad:  # identity steps (a=1, b=0) at the end change nothing
        a = torch.cat((a, a.new_ones(pad, B, H)))
        b = torch.cat((b, b.new_zeros(pad, B, H)))
    # (C, n*B, H): step-in-chunk major, so every chunk is one more "batch" row of the inner scan
    a_c = a.view(n, C, B, H).transpose(0, 1).reshape(C, n * B, H)
    b_c = b.view(n, C, B, H).transpose(0, 1).reshape(C, n * B, H)
    local = sequential_scan(a_c, b_c, b_c.new_zeros(n * B, H)).view(C, n, B, H)
    decay = torch.cumprod(a_c, 0).view(C, n, B, H)  # prod of a from the chunk's start to each step
    carry_in = sequential_scan(decay[-1], local[-1], h0)  # (n, B, H): h at the end of each chunk
    carry_in = torch.cat((h0.unsqueeze(0), carry_in[:-1]))  # h before each chunk
    h = local + decay * carry_in.unsqueeze(0)  # (C, n, B, H)
    return h.transpose(0, 1).reshape(n * C, B, H)[:T]


# -- the choice and the engine entry ---------------------------------------------------------------
def choose_algorithm(T: int, B: int, H: int, *, device: torch.device | None = None,
                     threads: int | None = None) -> str:
    """The scan algorithm for one call (see the module docstring for the three).

    Measured on the project's 2-core CPU machine with ``benchmarks/bench_cells.py`` (minGRU layer,
    forward + backward, 1 and 2 threads, T from 100 to 4000, B*H from 64 to 16384; ``sequential``
    is `CellScan` there):

    - ``parallel`` never won on the CPU: 1x to 7x slower than ``sequential`` (7x at T=1000, B=32,
      H=512). Its whole-sequence ops stream (T, B, H) tensors through memory several times, and
      ``logcumsumexp`` (an exp and a log per element, sequential along T anyway) and its backward
      cost several times a multiply-add. The paper's ~3x advantage is a GPU result.
    - ``chunked`` won only where a step's work is tiny (B*H = 64) and T long: there the ~3T
      per-step ops of ``sequential`` are pure overhead, and C + T/C wider steps are cheaper
      (T=1000, B=1, H=64: 3 ms vs 9 ms with one thread). From B*H = 256 up its extra passes
      (padding, transposes, cumprod, fix-up) cost as much or more than the overheads they save
      (T=4000, B=4, H=64: 49 vs 54 ms; T=1000, B=32, H=512: 2341 vs 827 ms).
    - Otherwise ``sequential``: one multiply-add per step on (B, H) tiles that stay in cache.
    - On a GPU each step of a sequential loop costs a kernel launch (~10 us) whatever its size, and
      the log-space scan is a handful of launches: ``parallel`` (as the paper measured on GPUs; not
      measured here, the project's machines being CPU-only) beyond a few dozen steps.

    ``threads`` is accepted for callers that know their budget; with 1 and 2 threads the same rule
    held (with 2 threads on a busy machine ``sequential`` won even at B*H = 64)."""
    if device is not None and torch.device(device).type != "cpu":
        return "parallel" if T > 32 else "sequential"
    if T >= 512 and B * H <= 64:
        return "chunked"
    return "sequential"


def linear_scan(a: Tensor, b: Tensor, h0: Tensor, algorithm: str = "auto", *,
                log_coefficients: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """All ``h_t`` ``(T, B, H)`` of ``h_t = a_t ⊙ h_{t-1} + b_t`` from ``h0`` ``(B, H)``.

    ``log_coefficients``: ``(log a, log b)`` for the ``parallel`` algorithm, computed stably by the
    cell; without them it takes logarithms of ``a`` and ``b`` (which must then be positive)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"linear_scan: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "auto":
        algorithm = choose_algorithm(*b.shape, device=b.device)
    if algorithm == "sequential":
        return sequential_scan(a, b, h0)
    if algorithm == "chunked":
        return chunked_scan(a, b, h0)
    log_a, log_b = log_coefficients if log_coefficients is not None else (a.log(), b.log())
    return parallel_scan_log(log_a, log_b, h0)


def run_scan(cell: Any, xp: Tensor, state: tuple[Tensor, ...], mask: Tensor | None,
             masked_output: str = "zero", algorithm: str = "auto") -> tuple[Tensor, tuple[Tensor, ...]]:
    """The engine's scan kernel, with `rnnkit.core.kernels.run_loop`'s contract: run ``cell`` over
    projected inputs ``xp`` ``(T, B, G*H)`` from ``state`` ``((B, H),)``; ``mask`` ``(T, B, 1)`` bool
    or None (masked steps keep the state: ``a=1, b=0``). Returns ``(out (T, B, H), (h_T,))``."""
    (h0,) = state
    T, B = xp.shape[0], xp.shape[1]
    if (algorithm in ("auto", "sequential") and mask is None
            and fast_path_unavailable([cell], "native_scan", dtype=xp.dtype,
                                                             device=xp.device) is None):
        # the C++ scan has no per-step overhead: sequential is then the fastest at every size
        h = NativeMinScan.apply(xp, None, h0, cell.gates)  # type: ignore[no-untyped-call]  # torch's Function.apply is unannotated
        return h, (h[-1],)
    if algorithm == "auto":
        algorithm = choose_algorithm(T, B, cell.hidden_size, device=xp.device)
    logs = None
    if algorithm == "sequential" and mask is None and hasattr(cell, "scan_coefficients_backward"):
        h = CellScan.apply(cell, xp, h0)  # type: ignore[no-untyped-call]  # torch's Function.apply is unannotated
        return h, (h[-1],)
    if algorithm == "parallel":
        logs = cell.log_scan_coefficients(xp)
        if mask is not None:
            logs = (logs[0].masked_fill(~mask, 0.0), logs[1].masked_fill(~mask, -math.inf))
        a = b = None
    else:
        a, b = cell.scan_coefficients(xp)
        if mask is not None:
            a, b = a.masked_fill(~mask, 1.0), b.masked_fill(~mask, 0.0)
    # the parallel algorithm reads log_coefficients in place of a, b
    h = linear_scan(a, b, h0, algorithm, log_coefficients=logs)  # type: ignore[arg-type]
    out = h if mask is None or masked_output == "hold" else h * mask
    return out, (h[-1],)
