"""The scan kernels against a plain loop and against finite differences, and inside the engine
(lengths, masks, directions) against the step-by-step loop kernel."""
from __future__ import annotations

import pytest
import torch

from rnnkit.core import Recurrent, RecurrentStack, fast_path_unavailable
from rnnkit.core import scan
from rnnkit.cells import MinGRUCell, MinLSTMCell

D = torch.float64
ALGOS = ("sequential", "parallel", "chunked")


def plain_loop(a, b, h0):
    h, outs = h0, []
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        outs.append(h)
    return torch.stack(outs)


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("T", [1, 7, 16])
def test_scan_equals_plain_loop(assert_close, algorithm, T):
    torch.manual_seed(T)
    a, b = torch.rand(T, 3, 4, dtype=D), torch.rand(T, 3, 4, dtype=D) + 0.01
    h0 = torch.randn(3, 4, dtype=D)  # negative entries too: the log-space scan must still be exact
    assert_close(scan.linear_scan(a, b, h0, algorithm), plain_loop(a, b, h0), f"{algorithm} T={T}")


@pytest.mark.parametrize("algorithm", ALGOS)
def test_scan_gradients_match_finite_differences(algorithm):
    torch.manual_seed(0)
    a = torch.rand(9, 2, 3, dtype=D, requires_grad=True)
    b = (torch.rand(9, 2, 3, dtype=D) + 0.1).requires_grad_()
    h0 = torch.randn(2, 3, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, h0: scan.linear_scan(a, b, h0, algorithm),
                                    (a, b, h0))


@pytest.mark.parametrize("cls", [MinGRUCell, MinLSTMCell])
@pytest.mark.parametrize("algorithm", ALGOS)
def test_cell_scan_gradients_match_finite_differences(cls, algorithm):
    """Through the cell's (log-)coefficients and the engine's masking, in float64."""
    torch.manual_seed(1)
    cell = cls(3, 2).to(D)
    x = torch.randn(5, 2, 3, dtype=D, requires_grad=True)
    h0 = torch.rand(2, 2, dtype=D, requires_grad=True)
    mask = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1], [1, 0]], dtype=torch.bool).unsqueeze(2)

    def f(x, h0):
        out, (h,) = scan.run_scan(cell, cell.project_inputs(x), (h0,), mask, "zero", algorithm)
        return out, h
    assert torch.autograd.gradcheck(f, (x, h0))


@pytest.mark.parametrize("algorithm", ALGOS)
def test_masked_steps_keep_the_state(assert_close, algorithm):
    torch.manual_seed(0)
    cell = MinGRUCell(3, 4).to(D)
    xp = cell.project_inputs(torch.randn(6, 2, 3, dtype=D))
    mask = torch.rand(6, 2, 1) > 0.4
    h0 = torch.randn(2, 4, dtype=D)
    out, (h_T,) = scan.run_scan(cell, xp, (h0,), mask, "hold", algorithm)
    h, expect = h0, []
    for t in range(6):  # the step, applied only where the mask is on
        new, _ = cell.step(xp[t], (h,))
        h = torch.where(mask[t], new, h)
        expect.append(h)
    assert_close(out, torch.stack(expect), f"{algorithm} hold output")
    assert_close(h_T, h, f"{algorithm} final state")
    zero, _ = scan.run_scan(cell, xp, (h0,), mask, "zero", algorithm)
    assert_close(zero, torch.stack(expect) * mask, f"{algorithm} zero output")


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_stack_scan_equals_loop_with_lengths_layers_and_directions(assert_close, name):
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, batch_first=True, dtype=D)
    scan_m = RecurrentStack(name, 3, 4, **kw)
    loop_m = RecurrentStack(name, 3, 4, kernel="loop", **kw)
    loop_m.load_state_dict(scan_m.state_dict())
    assert (scan_m.kernel, loop_m.kernel) == ("scan", "loop")
    x = torch.randn(3, 7, 3, dtype=D)
    h0 = torch.randn(4, 3, 4, dtype=D)
    for lengths in (None, torch.tensor([7, 2, 5])):
        a, (ha,) = scan_m(x, h0, lengths=lengths)
        b, (hb,) = loop_m(x, h0, lengths=lengths)
        assert_close(a, b, f"{name} output lengths={lengths}")
        assert_close(ha, hb, f"{name} h_n lengths={lengths}")
        ga = torch.autograd.grad(a.square().sum(), list(scan_m.parameters()))
        gb = torch.autograd.grad(b.square().sum(), list(loop_m.parameters()))
        for (n, _), u, v in zip(scan_m.named_parameters(), ga, gb):
            assert_close(u, v, f"{name} gradient of {n}")
    mask = torch.rand(3, 7) > 0.3
    a, _ = scan_m(x, h0, mask=mask, masked_output="hold")
    b, _ = loop_m(x, h0, mask=mask, masked_output="hold")
    assert_close(a, b, f"{name} output with a mask")


def test_recurrent_layer_uses_the_scan(assert_close):
    torch.manual_seed(0)
    cell = MinLSTMCell(3, 4).to(D)
    x = torch.randn(5, 2, 3, dtype=D)
    fast, slow = Recurrent(cell, reverse=True), Recurrent(cell, reverse=True, kernel="loop")
    assert (fast.kernel, slow.kernel) == ("scan", "loop")
    assert_close(fast(x, lengths=[5, 3])[0], slow(x, lengths=[5, 3])[0], "Recurrent scan vs loop")


def test_choose_algorithm_and_bad_names():
    assert scan.choose_algorithm(1000, 32, 512, threads=2) in ALGOS
    assert scan.choose_algorithm(1000, 32, 512, device=torch.device("cuda")) == "parallel"
    assert scan.choose_algorithm(8, 32, 512, threads=2) == "sequential"
    with pytest.raises(ValueError, match="algorithm must be one of"):
        scan.linear_scan(torch.ones(2, 1, 1), torch.ones(2, 1, 1), torch.ones(1, 1), "magic")
    with pytest.raises(ValueError, match="kernel='scan' cannot serve .* not linear in the state"):
        RecurrentStack("lstm", 3, 4, kernel="scan")
    with pytest.raises(ValueError, match="kernel='scan' cannot serve .*zoneout"):
        RecurrentStack("mingru", 3, 4, kernel="scan", zoneout=0.1)


def _native_or_skip():
    from rnnkit.core import native
    if native.unavailable() is not None:
        pytest.skip(native.unavailable())   # then run_scan uses CellScan, tested above


@pytest.mark.parametrize("cls", [MinGRUCell, MinLSTMCell])
def test_native_min_scan_gradients_match_finite_differences(cls):
    _native_or_skip()
    torch.manual_seed(2)
    cell = cls(3, 4).to(D)
    xp = (3 * torch.randn(6, 3, cell.gates * 4, dtype=D)).requires_grad_()  # both sides of g's knee
    h0 = torch.randn(3, 4, dtype=D, requires_grad=True)
    bias = torch.randn(cell.gates * 4, dtype=D, requires_grad=True)   # added inside the kernel
    assert fast_path_unavailable([cell], "native_scan", dtype=xp.dtype) is None
    assert torch.autograd.gradcheck(lambda xp, h0: scan.NativeMinScan.apply(xp, None, h0, cell.gates),
                                    (xp, h0))
    assert torch.autograd.gradcheck(lambda xp, b, h0: scan.NativeMinScan.apply(xp, b, h0, cell.gates),
                                    (xp, bias, h0))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("cls", [MinGRUCell, MinLSTMCell])
@pytest.mark.parametrize("scale", [1.0, 30.0])     # 30: saturated gates, softplus past its threshold
def test_native_min_scan_equals_the_python_cell_scan(cls, scale, dtype, tol):
    _native_or_skip()
    torch.manual_seed(3)
    cell = cls(5, 16).to(dtype)
    xp0 = scale * torch.randn(40, 7, cell.gates * 16, dtype=dtype)
    h00 = torch.randn(7, 16, dtype=dtype)
    g = torch.randn(40, 7, 16, dtype=dtype)
    results = []
    for fn in (lambda xp, h0: scan.NativeMinScan.apply(xp, None, h0, cell.gates),
               lambda xp, h0: scan.CellScan.apply(cell, xp, h0)):
        xp, h0 = xp0.clone().requires_grad_(), h00.clone().requires_grad_()
        out = fn(xp, h0)
        (out * g).sum().backward()
        results.append((out.detach(), xp.grad, h0.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_run_scan_takes_the_native_scan_only_where_it_applies():
    _native_or_skip()
    cell = MinGRUCell(3, 4)
    assert fast_path_unavailable([cell], "native_scan", dtype=torch.float32) is None
    assert "bfloat16" in fast_path_unavailable([cell], "native_scan", dtype=torch.bfloat16)
    assert "not a stock" in fast_path_unavailable([object()], "native_scan")


@pytest.mark.parametrize("cls", [MinGRUCell, MinLSTMCell])
def test_scan_layer_adds_the_bias_in_the_kernel_with_the_same_result(cls):
    """The engine's entry point (unbiased product + bias in C++) against the cell's own projection
    through the Python scan: outputs and the gradients of input, weight, bias and state."""
    _native_or_skip()
    torch.manual_seed(4)
    cell = cls(5, 8).to(D)
    with torch.no_grad():
        cell.bias_ih.normal_()
    x0, h00 = torch.randn(12, 3, 5, dtype=D), torch.randn(3, 8, dtype=D)
    results = []
    for fast in (True, False):
        cell.zero_grad()
        x, h0 = x0.clone().requires_grad_(), h00.clone().requires_grad_()
        if fast:
            out, (h,) = scan.scan_layer(cell, x, (h0,), None)
        else:
            out = scan.CellScan.apply(cell, cell.project_inputs(x), h0)
            h = out[-1]
        (out.sin().sum() + h.sum()).backward()
        results.append([out.detach(), x.grad, h0.grad, cell.weight_ih.grad.clone(),
                        cell.bias_ih.grad.clone()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
