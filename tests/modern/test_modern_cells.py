"""The modern cells against hand-written per-step loops of their papers' equations (plain torch ops,
`torch.nn.LayerNorm` for the layer norm), forward and gradients, in float64."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rnnkit.cells import (CELLS, IndRNNCell, LayerNormGRUCell, LayerNormLSTMCell, MinGRUCell,
                          MinLSTMCell)
from rnnkit.core import RecurrentStack, fast_path_unavailable

D = torch.float64
T, B, I, H = 6, 3, 5, 4


def _layer_norm(gain, shift, eps=1e-5):
    """`torch.nn.LayerNorm`'s own forward, run with the given gain and shift (None = no shift)."""
    ln = nn.LayerNorm(gain.shape[0], eps=eps, dtype=D)
    params = {"weight": gain, "bias": shift if shift is not None else torch.zeros_like(gain)}
    return lambda v: torch.func.functional_call(ln, params, (v,))


def _perturb(module, seed=1):
    """Random values in every parameter, so gains and shifts are not their trivial 1 and 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) - 0.5)


def ref_lnlstm(p, x, h, c, eps=1e-5):
    """Ba et al. 2016: gates = LN(W_hh h) + LN(W_ih x); h = σ(o) tanh(LN(c))."""
    ln_ih = _layer_norm(p["ln_ih_weight"], p.get("bias_ih"), eps)
    ln_hh = _layer_norm(p["ln_hh_weight"], p.get("bias_hh"), eps)
    ln_c = _layer_norm(p["ln_c_weight"], p.get("ln_c_bias"), eps)
    outs = []
    for t in range(x.shape[0]):
        gates = ln_hh(h @ p["weight_hh"].T) + ln_ih(x[t] @ p["weight_ih"].T)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(ln_c(c))
        outs.append(h)
    return torch.stack(outs), h, c


def ref_lngru(p, x, h, eps=1e-5):
    """The authors' lngru_layer: [r, z] and [n] blocks normalised apart, reset after the product."""
    def lns(gain, shift):
        s = shift if shift is not None else None
        return (_layer_norm(gain[:2 * H], None if s is None else s[:2 * H], eps),
                _layer_norm(gain[2 * H:], None if s is None else s[2 * H:], eps))
    x_rz, x_n = lns(p["ln_ih_weight"], p.get("bias_ih"))
    h_rz, h_n = lns(p["ln_hh_weight"], p.get("bias_hh"))
    Wi, Wh = p["weight_ih"], p["weight_hh"]
    outs = []
    for t in range(x.shape[0]):
        rz = torch.sigmoid(x_rz(x[t] @ Wi[:2 * H].T) + h_rz(h @ Wh[:2 * H].T))
        r, z = rz[:, :H], rz[:, H:]
        n = torch.tanh(x_n(x[t] @ Wi[2 * H:].T) + r * h_n(h @ Wh[2 * H:].T))
        h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs), h


def _g(v):
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def ref_mingru(p, x, h):
    """Feng et al. 2024, sequential mode: z = σ(Lin_z x), h~ = g(Lin_h x), h = (1-z) h + z h~."""
    Wz, Wh = p["weight_ih"][:H], p["weight_ih"][H:]
    bz, bh = p["bias_ih"][:H], p["bias_ih"][H:]
    outs = []
    for t in range(x.shape[0]):
        z = torch.sigmoid(x[t] @ Wz.T + bz)
        h = (1 - z) * h + z * _g(x[t] @ Wh.T + bh)
        outs.append(h)
    return torch.stack(outs), h


def ref_minlstm(p, x, h):
    """Feng et al. 2024: f' = f / (f + i), i' = i / (f + i), h = f' h + i' g(Lin_h x)."""
    W, b = p["weight_ih"], p["bias_ih"]
    outs = []
    for t in range(x.shape[0]):
        f = torch.sigmoid(x[t] @ W[:H].T + b[:H])
        i = torch.sigmoid(x[t] @ W[H:2 * H].T + b[H:2 * H])
        h = f / (f + i) * h + i / (f + i) * _g(x[t] @ W[2 * H:].T + b[2 * H:])
        outs.append(h)
    return torch.stack(outs), h


def ref_indrnn(p, x, h, act=torch.relu, bound=None):
    """Li et al. 2018: h = act(W x + b + u ⊙ h), u clipped to [-bound, bound]."""
    u = p["weight_hh"] if bound is None else p["weight_hh"].clamp(-bound, bound)
    outs = []
    for t in range(x.shape[0]):
        h = act(x[t] @ p["weight_ih"].T + p["bias_ih"] + u * h)
        outs.append(h)
    return torch.stack(outs), h


def _compare(assert_close, stack, ref, x, states, what):
    """Run the stack and the reference from the same parameters; compare outputs and gradients."""
    _perturb(stack)
    params = {k[:-3]: v for k, v in stack.named_parameters()}  # "weight_ih_l0" -> "weight_ih"
    out, finals = stack(x, tuple(s.unsqueeze(0) for s in states))
    ref_out, *ref_finals = ref(params, x, *states)
    assert_close(out, ref_out, f"{what} output")
    for k, (a, b) in enumerate(zip(finals, ref_finals)):
        assert_close(a[0], b, f"{what} final state {k}")
    w = torch.randn_like(out)
    grads = torch.autograd.grad((out * w).sum() + finals[-1].sum(), list(params.values()))
    ref_grads = torch.autograd.grad((ref_out * w).sum() + ref_finals[-1].sum(), list(params.values()))
    for name, a, b in zip(params, grads, ref_grads):
        assert_close(a, b, f"{what} gradient of {name}")


@pytest.mark.parametrize("bias", [True, False])
def test_lnlstm_matches_paper_loop(assert_close, bias):
    torch.manual_seed(0)
    m = RecurrentStack("lnlstm", I, H, bias=bias, dtype=D)
    x, h0, c0 = torch.randn(T, B, I, dtype=D), torch.randn(B, H, dtype=D), torch.randn(B, H, dtype=D)
    _compare(assert_close, m, ref_lnlstm, x, (h0, c0), f"lnlstm bias={bias}")


@pytest.mark.parametrize("bias", [True, False])
def test_lngru_matches_authors_loop(assert_close, bias):
    torch.manual_seed(0)
    m = RecurrentStack("lngru", I, H, bias=bias, dtype=D)
    x, h0 = torch.randn(T, B, I, dtype=D), torch.randn(B, H, dtype=D)
    _compare(assert_close, m, ref_lngru, x, (h0,), f"lngru bias={bias}")


@pytest.mark.parametrize("kernel", ["scan", "loop"])
@pytest.mark.parametrize("name,ref", [("mingru", ref_mingru), ("minlstm", ref_minlstm)])
def test_min_cells_match_paper_loop(assert_close, name, ref, kernel):
    torch.manual_seed(0)
    m = RecurrentStack(name, I, H, kernel=kernel, dtype=D)
    assert m.kernel == kernel
    x, h0 = torch.randn(T, B, I, dtype=D), torch.randn(B, H, dtype=D)
    _compare(assert_close, m, ref, x, (h0,), f"{name} kernel={kernel}")


@pytest.mark.parametrize("nonlinearity,bound", [("relu", None), ("tanh", None), ("relu", 0.3)])
def test_indrnn_matches_paper_loop(assert_close, nonlinearity, bound):
    torch.manual_seed(0)
    m = RecurrentStack("indrnn", I, H, dtype=D, nonlinearity=nonlinearity, recurrent_max_abs=bound)
    x, h0 = torch.randn(T, B, I, dtype=D), torch.rand(B, H, dtype=D)
    act = torch.relu if nonlinearity == "relu" else torch.tanh

    def ref(p, x, h):
        return ref_indrnn(p, x, h, act, bound)
    _compare(assert_close, m, ref, x, (h0,), f"indrnn {nonlinearity} bound={bound}")


def test_min_cells_step_by_step_equals_paper_log_space_parallel(assert_close):
    """The paper's own parallel algorithm (appendix B: log-space coefficients, cumsum and
    logcumsumexp, h0 > 0 folded into the values) against our step-by-step mode."""
    torch.manual_seed(0)
    x, h0 = torch.randn(T, B, I, dtype=D), torch.rand(B, H, dtype=D) + 0.1
    F = nn.functional
    for cls in (MinGRUCell, MinLSTMCell):
        cell = cls(I, H).to(D)
        xp = cell.project_inputs(x)
        if cls is MinGRUCell:
            k, v = xp.chunk(2, -1)
            log_coeffs, log_values = -F.softplus(k), -F.softplus(-k)
        else:
            kf, ki, v = xp.chunk(3, -1)
            diff = F.softplus(-kf) - F.softplus(-ki)
            log_coeffs, log_values = -F.softplus(diff), -F.softplus(-diff)
        log_tilde = torch.where(v >= 0, (F.relu(v) + 0.5).log(), -F.softplus(-v))
        values = torch.cat((h0.log().unsqueeze(0), log_values + log_tilde))
        a_star = F.pad(torch.cumsum(log_coeffs, 0), (0, 0, 0, 0, 1, 0))
        paper = torch.exp(a_star + torch.logcumsumexp(values - a_star, 0))[1:]
        h, steps = (h0,), []
        for xp_t in xp.unbind(0):
            out, h = cell.step(xp_t, h)
            steps.append(out)
        assert_close(torch.stack(steps), paper, f"{cls.__name__} step-by-step vs paper parallel", 1e-9)


def test_registry_and_parameter_names():
    for name in ("lnlstm", "lngru", "indrnn", "mingru", "minlstm"):
        assert name in CELLS
    assert [n for n, _ in LayerNormLSTMCell(I, H).named_parameters()] == [
        "weight_ih", "weight_hh", "bias_ih", "bias_hh", "ln_ih_weight", "ln_hh_weight",
        "ln_c_weight", "ln_c_bias"]
    assert [n for n, _ in LayerNormGRUCell(I, H).named_parameters()] == [
        "weight_ih", "weight_hh", "bias_ih", "bias_hh", "ln_ih_weight", "ln_hh_weight"]
    assert {n: tuple(p.shape) for n, p in IndRNNCell(I, H).named_parameters()} == {
        "weight_ih": (H, I), "weight_hh": (H,), "bias_ih": (H,)}
    assert {n: tuple(p.shape) for n, p in MinGRUCell(I, H).named_parameters()} == {
        "weight_ih": (2 * H, I), "bias_ih": (2 * H,)}
    assert {n: tuple(p.shape) for n, p in MinLSTMCell(I, H).named_parameters()} == {
        "weight_ih": (3 * H, I), "bias_ih": (3 * H,)}
    assert "ln_c_weight_l1_reverse" in dict(RecurrentStack("lnlstm", I, H, 2, bidirectional=True)
                                            .named_parameters())


def test_initialisations_follow_the_papers():
    torch.manual_seed(0)
    for cls in (LayerNormLSTMCell, LayerNormGRUCell):  # Ba et al.: gains 1, shifts 0
        c = cls(I, 64)
        assert torch.equal(c.ln_ih_weight, torch.ones_like(c.ln_ih_weight))
        assert torch.equal(c.ln_hh_weight, torch.ones_like(c.ln_hh_weight))
        assert torch.equal(c.bias_ih, torch.zeros_like(c.bias_ih))
        assert torch.equal(c.bias_hh, torch.zeros_like(c.bias_hh))
        assert float(c.weight_hh.detach().abs().max()) <= 1 / 8  # PyTorch's U(-1/sqrt(H), 1/sqrt(H)), H=64
    lstm = LayerNormLSTMCell(I, H, forget_bias=1.0)
    assert torch.equal(lstm.bias_ih[H:2 * H], torch.ones(H))
    u = IndRNNCell(I, 1000).weight_hh.detach()  # Li et al.: u ~ U(0, 1)
    assert 0 <= float(u.min()) < 0.01 and 0.99 < float(u.max()) <= 1
    assert float(IndRNNCell(I, 100, recurrent_max_abs=0.5).weight_hh.detach().max()) <= 0.5
    long_memory = IndRNNCell(I, 100, recurrent_init=(0.5 ** (1 / 100), 1.0)).weight_hh.detach()
    assert float(long_memory.min()) >= 0.5 ** (1 / 100)
    for cls in (MinGRUCell, MinLSTMCell):  # nn.Linear's default: U(-1/sqrt(I), 1/sqrt(I))
        c = cls(100, 300)
        bound = 1 / math.sqrt(100)
        assert 0.9 * bound < float(c.weight_ih.detach().abs().max()) <= bound
        assert 0.9 * bound < float(c.bias_ih.detach().abs().max()) <= bound
        o = cls(100, 30, init="orthogonal")
        assert torch.equal(o.bias_ih, torch.zeros_like(o.bias_ih))


def test_indrnn_constrain_projects_stored_weights():
    cell = IndRNNCell(I, H, recurrent_max_abs=0.5)
    with torch.no_grad():
        cell.weight_hh.fill_(3.0)
    cell.constrain_()
    assert torch.equal(cell.weight_hh, torch.full((H,), 0.5))


def test_min_cells_stay_finite_for_extreme_preactivations():
    for cls in (MinGRUCell, MinLSTMCell):
        cell = cls(I, H)
        xp = torch.tensor([-200.0, -50.0, 0.0, 50.0, 200.0]).repeat(cls.gates * H // 5 + 1)
        xp = xp[:cls.gates * H].expand(2, 1, -1)
        a, b = cell.scan_coefficients(xp)
        la, lb = cell.log_scan_coefficients(xp)
        for v in (a, b, la):
            assert torch.isfinite(v).all(), cls.__name__
        assert torch.allclose(la.exp(), a, atol=1e-6) and torch.allclose(lb.exp(), b, rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("make,match", [
    (lambda: LayerNormLSTMCell(I, H, eps=0), "eps must be a positive number, got 0"),
    (lambda: IndRNNCell(I, H, nonlinearity="sigmoid"), "nonlinearity must be one of"),
    (lambda: IndRNNCell(I, H, recurrent_max_abs=-1.0), "recurrent_max_abs must be a positive"),
    (lambda: IndRNNCell(I, H, recurrent_init=(1.0, 0.0)), r"recurrent_init must be a pair"),
    (lambda: IndRNNCell(I, H, forget_bias=1.0), "forget_bias applies to LSTM cells only"),
    (lambda: MinGRUCell(I, H, forget_bias=1.0), "forget_bias applies to LSTM cells only"),
    (lambda: MinLSTMCell(I, H, init="xavier"), "init must be one of"),
    (lambda: LayerNormGRUCell(I, H, forget_bias=1.0), "forget_bias"),
])
def test_bad_configuration_is_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_g_and_its_slope_equal_the_case_by_case_definition():
    """g is written without torch.where for speed; it must still be the paper's g exactly, with
    the derivative of the v >= 0 branch at v = 0 (as autograd through torch.where gives)."""
    from rnnkit.cells.minimal import g, g_and_slope
    for dtype in (torch.float32, torch.float64):
        v = torch.cat((torch.randn(1000, dtype=dtype) * 6,
                       torch.tensor([0.0, -0.0, 1e-30, -1e-30, -3.0, 3.0, -100.0], dtype=dtype)))
        w = v.clone().requires_grad_()
        ref = torch.where(w >= 0, w + 0.5, torch.sigmoid(w))
        (ref_slope,) = torch.autograd.grad(ref.sum(), w)
        value, slope = g_and_slope(v)
        assert torch.equal(value, ref.detach()) and torch.equal(g(v), ref.detach())
        assert torch.allclose(slope, ref_slope, rtol=0, atol=1e-7), dtype
        mine = v.clone().requires_grad_()
        (auto_slope,) = torch.autograd.grad(g(mine).sum(), mine)
        assert torch.allclose(auto_slope, ref_slope, rtol=0, atol=1e-7), dtype


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("bias", [True, False])
def test_native_lnlstm_equals_the_python_bptt(bias, dtype, tol):
    """The C++ layer-normalised LSTM (`NativeLayerNormLSTM`) against the hand-written Python BPTT
    it replaces: outputs, final states and the gradients of every parameter, input and state."""
    from rnnkit.core import bptt, native
    if native.unavailable() is not None:
        pytest.skip(native.unavailable())   # then the Python BPTT runs, tested above
    torch.manual_seed(5)
    cell = LayerNormLSTMCell(I, H, bias=bias).to(dtype)
    with torch.no_grad():                   # away from the initial gains 1 and shifts 0
        for p in cell.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x0 = torch.randn(T, B, I, dtype=dtype)
    s0 = (torch.randn(B, H, dtype=dtype), torch.randn(B, H, dtype=dtype))
    w = torch.randn(T, B, H, dtype=dtype)
    results = []
    for fast in (True, False):
        cell.zero_grad()
        x = x0.clone().requires_grad_()
        state = tuple(s.clone().requires_grad_() for s in s0)
        xp = cell.project_inputs(x)
        assert fast_path_unavailable([cell], "native_layernorm", dtype=xp.dtype) is None
        if fast:
            out, h, c = bptt.NativeLayerNormLSTM.apply(
                cell, xp, *state, cell.weight_hh, cell.ln_hh_weight, cell.bias_hh, cell.ln_c_weight,
                cell.ln_c_bias, cell.eps)
        else:
            out, (h, c) = bptt.run_bptt(cell, xp, state, None)
        ((out * w).sum() + (h * c).sum()).backward()
        grads = [p.grad.clone() for p in cell.parameters()]
        results.append([out.detach(), h.detach(), c.detach(), x.grad, *(s.grad for s in state), *grads])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_native_lnlstm_gradients_match_finite_differences():
    from rnnkit.core import bptt, native
    if native.unavailable() is not None:
        pytest.skip(native.unavailable())
    torch.manual_seed(6)
    cell = LayerNormLSTMCell(3, 4).to(D)
    xp = torch.randn(5, 2, 16, dtype=D, requires_grad=True)
    h0, c0 = (torch.randn(2, 4, dtype=D, requires_grad=True) for _ in range(2))
    params = [p.detach().clone().add_(0.3 * torch.randn_like(p)).requires_grad_()
              for p in (cell.weight_hh, cell.ln_hh_weight, cell.bias_hh, cell.ln_c_weight,
                        cell.ln_c_bias)]
    assert torch.autograd.gradcheck(
        lambda *a: bptt.NativeLayerNormLSTM.apply(cell, *a, cell.eps), (xp, h0, c0, *params))


def test_stack_uses_the_native_lnlstm_and_matches_the_loop(assert_close):
    from rnnkit.core import native
    if native.unavailable() is not None:
        pytest.skip(native.unavailable())
    torch.manual_seed(7)
    m = RecurrentStack("lnlstm", I, H, num_layers=2, dtype=D)
    x = torch.randn(T, B, I, dtype=D, requires_grad=True)
    out, (h, c) = m(x)
    (out.sum() + c.sum()).backward()
    fast = [out.detach(), h.detach(), c.detach(), x.grad.clone()] + [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    x.grad = None
    ref = RecurrentStack("lnlstm", I, H, num_layers=2, dtype=D)
    ref.load_state_dict(m.state_dict())
    out2, (h2, c2) = ref(x, lengths=torch.full((B,), T))   # a mask: the Python BPTT runs
    (out2.sum() + c2.sum()).backward()
    slow = [out2.detach(), h2.detach(), c2.detach(), x.grad] + [p.grad for p in ref.parameters()]
    for a, b in zip(fast, slow):
        assert_close(a, b, "native lnlstm stack vs Python BPTT")


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("bias", [True, False])
def test_native_lngru_equals_the_python_bptt(bias, dtype, tol):
    from rnnkit.core import bptt, native
    if native.unavailable() is not None:
        pytest.skip(native.unavailable())
    torch.manual_seed(8)
    cell = LayerNormGRUCell(I, H, bias=bias).to(dtype)
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x0, h00 = torch.randn(T, B, I, dtype=dtype), torch.randn(B, H, dtype=dtype)
    w = torch.randn(T, B, H, dtype=dtype)
    results = []
    for fast in (True, False):
        cell.zero_grad()
        x, h0 = x0.clone().requires_grad_(), h00.clone().requires_grad_()
        xp = cell.project_inputs(x)
        assert fast_path_unavailable([cell], "native_layernorm", dtype=xp.dtype) is None
        if fast:
            out, h = bptt.NativeLayerNormGRU.apply(cell, xp, h0, cell.weight_hh, cell.ln_hh_weight,
                                                   cell.bias_hh, cell.eps)
        else:
            out, (h,) = bptt.run_bptt(cell, xp, (h0,), None)
        ((out * w).sum() + h.pow(2).sum()).backward()
        results.append([out.detach(), h.detach(), x.grad, h0.grad,
                        *(p.grad.clone() for p in cell.parameters())])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_native_lngru_gradients_match_finite_differences():
    from rnnkit.core import bptt, native
    if native.unavailable() is not None:
        pytest.skip(native.unavailable())
    torch.manual_seed(9)
    cell = LayerNormGRUCell(3, 4).to(D)
    xp = torch.randn(5, 2, 12, dtype=D, requires_grad=True)
    h0 = torch.randn(2, 4, dtype=D, requires_grad=True)
    params = [p.detach().clone().add_(0.3 * torch.randn_like(p)).requires_grad_()
              for p in (cell.weight_hh, cell.ln_hh_weight, cell.bias_hh)]
    assert torch.autograd.gradcheck(lambda *a: bptt.NativeLayerNormGRU.apply(cell, *a, cell.eps),
                                    (xp, h0, *params))
