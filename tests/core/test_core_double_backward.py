"""Second derivatives through every kernel are exact (issue 13): ``torch.autograd.gradgradcheck`` in
float64 against finite differences for every cell and kernel, and the gradient-penalty gradients of
the stock modules against ``torch.nn`` with the same weights.

The hand-written backward passes (rnnkit's C++ kernels, the Python BPTT, the scans) are not
differentiable themselves; with ``create_graph=True`` they recompute the layer with the cell's own
step (`rnnkit.core.higher_order`). Before that, the C++ GRU/RNN kernels silently dropped the
higher-order terms (errors of 2.0 / 2.7 against ``torch.nn``)."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck

import rnnkit.nn
from rnnkit.core import RecurrentStack, native

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

D = torch.float64
T, B, I, H = 3, 2, 2, 3


def _rand_params(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) - 0.5)


def _as_function(module, n_state: int):
    """``f(x, *states, *params) -> (out, *final states)`` with the module's parameters as inputs."""
    names = [n for n, _ in module.named_parameters()]

    def f(x, *rest):
        states, params = rest[:n_state], rest[n_state:]
        hx = None if not states else (states[0] if n_state == 1 else tuple(states))
        out, final = torch.func.functional_call(module, dict(zip(names, params)), (x, hx))
        final = final if isinstance(final, tuple) else (final,)
        return (out, *final)
    return f


def _inputs(module, n_state: int, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, module.input_size, generator=g, dtype=D, requires_grad=True)
    LD = module.num_layers * (2 if module.bidirectional else 1)
    widths = [s[0] for s in module.cells[0].state_shapes]
    states = [torch.randn(LD, B, w, generator=g, dtype=D, requires_grad=True) for w in widths][:n_state]
    params = [p.detach().clone().requires_grad_() for p in module.parameters()]
    return (x, *states, *params)


STOCK = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("GRU", {}), ("LSTM", {}),
         ("LSTM", {"proj_size": 2}), ("GRU", {"reset_after": False})]
STOCK_IDS = ["rnn_tanh", "rnn_relu", "gru", "lstm", "lstm_proj", "gru_reset_before"]


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("name,kw", STOCK, ids=STOCK_IDS)
def test_gradgradcheck_stock_modules(name, kw, bidirectional):
    torch.manual_seed(0)
    module = getattr(rnnkit.nn, name)(I, H, 2, bidirectional=bidirectional, dtype=D, **kw)
    _rand_params(module)
    if name in ("GRU", "RNN") and kw.get("reset_after") is not False and native.unavailable() is None:
        assert module.fast_path_unavailable("native") is None  # rnnkit's C++ kernel is the one checked
    n_state = 2 if name == "LSTM" else 1
    f, inputs = _as_function(module, n_state), _inputs(module, n_state)
    assert gradcheck(f, inputs)
    assert gradgradcheck(f, inputs, fast_mode=True)


@pytest.mark.parametrize("name,kw", STOCK[:5], ids=STOCK_IDS[:5])
def test_gradient_penalty_gradients_match_torch_nn(name, kw, assert_close):
    """``d/dθ |dL/d(θ, x)|²`` (a gradient penalty) equals torch.nn's with the same weights."""
    torch.manual_seed(0)
    ours = getattr(rnnkit.nn, name)(I, H, 2, bidirectional=True, dtype=D, **kw)
    ref = getattr(nn, name)(I, H, 2, bidirectional=True, dtype=D, **kw)
    _rand_params(ours)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(T, B, I, dtype=D, generator=torch.Generator().manual_seed(3), requires_grad=True)
    results = []
    for m in (ours, ref):
        params = list(m.parameters())
        out = m(x)[0]
        grads = torch.autograd.grad((out ** 2).sum(), params + [x], create_graph=True)
        penalty = sum((g ** 2).sum() for g in grads)
        results.append(torch.autograd.grad(penalty, params + [x]))
    for (pname, _), a, b in zip(list(ours.named_parameters()) + [("input", None)], *results):
        assert_close(a, b, f"second-order gradient of {pname}")


@pytest.mark.parametrize("cell", ["RNNCell", "LSTMCell", "GRUCell"])
def test_gradgradcheck_cells_against_torch_nn(cell, assert_close):
    torch.manual_seed(0)
    ours = getattr(rnnkit.nn, cell)(I, H, dtype=D)
    ref = getattr(nn, cell)(I, H, dtype=D)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(B, I, dtype=D, requires_grad=True)
    h = torch.randn(B, H, dtype=D, requires_grad=True)
    hx = (h, h * 0.5) if cell == "LSTMCell" else h
    assert gradgradcheck(lambda x, h: ours(x, (h, h * 0.5) if cell == "LSTMCell" else h), (x, h))
    second = []
    for m in (ours, ref):
        out = m(x, hx)
        out = out[0] if isinstance(out, tuple) else out
        (g,) = torch.autograd.grad(out.sin().sum(), x, create_graph=True)
        second.append(torch.autograd.grad((g ** 2).sum(), list(m.parameters())))
    for a, b in zip(*second):
        assert_close(a, b, f"{cell} second-order gradient")


MODERN = [("lnlstm", {}, 2), ("lngru", {}, 1), ("indrnn", {}, 1),
          ("indrnn", {"nonlinearity": "tanh", "recurrent_max_abs": 0.9}, 1),
          ("mingru", {}, 1), ("minlstm", {}, 1), ("lnlstm", {"bias": False}, 2)]
MODERN_IDS = ["lnlstm", "lngru", "indrnn_relu", "indrnn_tanh_bounded", "mingru", "minlstm",
              "lnlstm_nobias"]


@pytest.mark.parametrize("native_on", [True, False], ids=["cpp", "python"])
@pytest.mark.parametrize("cell,kw,n_state", MODERN, ids=MODERN_IDS)
def test_gradgradcheck_modern_cells(cell, kw, n_state, native_on, monkeypatch):
    """The C++ kernels (layer-norm BPTT, min scan) and, with them off, the Python BPTT and the
    cell scan."""
    if native_on and native.unavailable() is not None:
        pytest.skip(native.unavailable())
    if not native_on:
        monkeypatch.setenv("RNNKIT_NATIVE", "0")
    kw = dict(kw)
    bias = kw.pop("bias", True)
    torch.manual_seed(0)
    module = RecurrentStack(cell, I, H, 1, bias, bidirectional=True, dtype=D, **kw)
    _rand_params(module)
    f, inputs = _as_function(module, n_state), _inputs(module, n_state)
    assert gradcheck(f, inputs, fast_mode=True)
    assert gradgradcheck(f, inputs, fast_mode=True)


@pytest.mark.parametrize("cell,n_state", [("lnlstm", 2), ("lngru", 1), ("mingru", 1)])
def test_gradgradcheck_with_a_mask(cell, n_state):
    """An arbitrary per-step mask: the Python BPTT (layer-norm cells) and the masked scan."""
    torch.manual_seed(0)
    module = RecurrentStack(cell, I, H, dtype=D)
    _rand_params(module)
    mask = torch.tensor([[True, False, True], [True, True, False]])
    names = [n for n, _ in module.named_parameters()]

    def f(x, *rest):
        states, params = rest[:n_state], rest[n_state:]
        out, final = torch.func.functional_call(module, dict(zip(names, params)), (x, tuple(states)),
                                                {"mask": mask})
        return (out, *final)
    inputs = _inputs(module, n_state)
    assert gradgradcheck(f, inputs, fast_mode=True)


@pytest.mark.parametrize("algorithm", ["sequential", "chunked", "parallel"])
def test_gradgradcheck_scan_algorithms(algorithm):
    from rnnkit.core.scan import linear_scan
    g = torch.Generator().manual_seed(0)
    a = (torch.rand(5, 2, 3, generator=g, dtype=D) * 0.8 + 0.1).requires_grad_()
    b = (torch.rand(5, 2, 3, generator=g, dtype=D) + 0.1).requires_grad_()
    h0 = torch.rand(2, 3, generator=g, dtype=D).requires_grad_()
    assert gradgradcheck(lambda a, b, h0: linear_scan(a, b, h0, algorithm), (a, b, h0))


def test_an_initial_state_from_the_same_weights_counts_once(assert_close):
    """Two calls chained through the state (truncated BPTT without detach): the recomputed
    backward differentiates each call only through its own use of the weights."""
    torch.manual_seed(0)
    ours, ref = rnnkit.nn.GRU(I, H, dtype=D), nn.GRU(I, H, dtype=D)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2 * T, B, I, dtype=D)
    res = []
    for m in (ours, ref):
        out1, h1 = m(x[:T])
        out2, _ = m(x[T:], h1)
        params = list(m.parameters())
        grads = torch.autograd.grad((out2 ** 2).sum() + out1.sum(), params, create_graph=True)
        res.append(torch.autograd.grad(sum((g ** 2).sum() for g in grads), params))
    for a, b in zip(*res):
        assert_close(a, b, "second-order gradient through a chained state")


def test_first_order_backward_stays_the_fast_one(monkeypatch):
    """Without create_graph the C++ backward runs, never the recomputation."""
    if native.unavailable() is not None:
        pytest.skip(native.unavailable())
    from rnnkit.core import higher_order
    calls = []
    real = higher_order.recompute_grads
    monkeypatch.setattr("rnnkit.core.fused_rnn.recompute_grads",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    gru = rnnkit.nn.GRU(I, H, dtype=D)
    x = torch.randn(T, B, I, dtype=D, requires_grad=True)
    gru(x)[0].sum().backward()
    assert calls == []
    (g,) = torch.autograd.grad(gru(x)[0].sum(), x, create_graph=True)
    assert calls == [1] and g.requires_grad
