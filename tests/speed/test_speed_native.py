"""rnnkit's C++ GRU / Elman-RNN kernel (`rnnkit.core.fused_rnn`) against torch.nn and the NumPy
reference, its bf16 mode, and its clean fallback when it cannot be built.

The kernel is built once per machine (cached in the torch extensions folder); these tests need it
built, since serving the GRU and the RNN is what it is for."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit.nn
from rnnkit.core import fast_path_unavailable, native
from rnnkit.reference import rnn_backward, rnn_forward


@pytest.fixture(scope="module", autouse=True)
def built():
    reason = native.unavailable()
    assert reason is None, f"the C++ kernels did not build here: {reason}"


CASES = [  # (class, kwargs, layers, bidirectional, T, B, I, H)
    ("GRU", {}, 1, False, 7, 3, 5, 6),
    ("GRU", {"bias": False}, 2, True, 5, 2, 4, 3),
    ("GRU", {"batch_first": True}, 2, False, 4, 96, 3, 256),  # large enough to split rows over threads
    ("RNN", {}, 1, False, 6, 4, 3, 5),
    ("RNN", {"nonlinearity": "relu"}, 2, True, 5, 3, 4, 6),
    ("RNN", {"bias": False, "nonlinearity": "relu"}, 1, False, 3, 80, 2, 300),
]


def _pair(cls, kw, L, bi, I, H, dtype, precision="fp32"):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, cls)(I, H, L, bidirectional=bi, dtype=dtype, **kw)
    ours = getattr(rnnkit.nn, cls)(I, H, L, bidirectional=bi, dtype=dtype, precision=precision, **kw)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-L{c[2]}{'-bi' * c[3]}-B{c[5]}")
def test_matches_torch_nn_with_gradients(case, dtype, assert_close, assert_grads_close):
    cls, kw, L, bi, T, B, I, H = case
    ours, theirs = _pair(cls, kw, L, bi, I, H, dtype)
    assert ours.kernel == "fused" and ours.fast_path_unavailable("native") is None  # the C++ kernel serves
    g = torch.Generator().manual_seed(1)
    shape = (B, T, I) if kw.get("batch_first") else (T, B, I)
    x = torch.randn(shape, generator=g, dtype=dtype)
    h0 = torch.randn(L * (2 if bi else 1), B, H, generator=g, dtype=dtype)
    results = []
    for m in (ours, theirs):
        xi, hi = x.clone().requires_grad_(), h0.clone().requires_grad_()
        out, h_n = m(xi, hi)
        w_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
        w_h = torch.randn(h_n.shape, generator=torch.Generator().manual_seed(3), dtype=dtype)
        ((out * w_out).sum() + (h_n * w_h).sum()).backward()
        results.append((out, h_n, xi.grad, hi.grad))
    for what, a, b in zip(("output", "h_n", "d input", "d h0"), *results):
        assert_close(a, b, f"{cls} {what}")
    assert_grads_close(ours, theirs)


@pytest.mark.parametrize("mode", ["gru", "rnn"])
def test_matches_numpy_reference_float64(mode, assert_close):
    """The independent oracle: forward and BPTT written out in NumPy."""
    T, B, I, H = 6, 3, 4, 5
    cls = "GRU" if mode == "gru" else "RNN"
    model = getattr(rnnkit.nn, cls)(I, H, 2, bidirectional=True, dtype=torch.float64)
    params = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((T, B, I)), rng.standard_normal((4, B, H))
    d_out, d_h = rng.standard_normal((T, B, 2 * H)), rng.standard_normal((4, B, H))
    out_r, h_r, _, cache = rnn_forward(x, params, mode=mode, num_layers=2, bidirectional=True,
                                       hidden_size=H, h0=h0)
    grads = rnn_backward(d_out, d_h, None, cache)
    xt, ht = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out, h_n = model(xt, ht)
    ((out * torch.tensor(d_out)).sum() + (h_n * torch.tensor(d_h)).sum()).backward()
    assert_close(out, torch.tensor(out_r), "output")
    assert_close(h_n, torch.tensor(h_r), "h_n")
    assert_close(xt.grad, torch.tensor(grads["x"]), "d x")
    assert_close(ht.grad, torch.tensor(grads["h0"]), "d h0")
    for name, p in model.named_parameters():
        assert_close(p.grad, torch.tensor(grads[name]), f"d {name}")


@pytest.mark.parametrize("cls", ["GRU", "RNN", "LSTM"])
def test_bf16_precision_is_close_to_fp32_and_keeps_fp32_tensors(cls):
    """bf16 products (8-bit mantissa) move results by ~1e-2 relative, never more."""
    I, H, T, B = 16, 64, 12, 8
    ours16, theirs = _pair(cls, {}, 2, False, I, H, torch.float32, precision="bf16")
    x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(0))
    out16, _ = ours16(x)
    out32, _ = theirs(x)
    assert out16.dtype == torch.float32
    err = float((out16 - out32).detach().abs().max())
    assert 0 < err < 5e-2, f"bf16 output differs from fp32 by {err:.2e}"
    out16.sum().backward()
    out32.sum().backward()
    for (name, p16), p32 in zip(ours16.named_parameters(), theirs.parameters()):
        assert p16.grad.dtype == torch.float32
        rel = float((p16.grad - p32.grad).norm() / p32.grad.norm())
        assert rel < 5e-2, f"{cls} bf16 gradient of {name} off by {rel:.2e} (relative norm)"


def test_autocast_context_runs_the_stack_in_bf16():
    from rnnkit.core.precision import autocast
    model = rnnkit.nn.GRU(8, 32)
    x = torch.randn(5, 4, 8)
    with autocast("bf16"):
        inside, _ = model(x)
    with autocast("fp32"):
        plain, _ = model(x)
    reference, _ = model(x)
    assert torch.equal(plain, reference)
    assert 0 < float((inside - reference).detach().abs().max()) < 5e-2


def test_reasons_the_cpp_kernel_does_not_serve():
    lstm = rnnkit.nn.LSTM(3, 4)
    assert "oneDNN" in lstm.fast_path_unavailable("native")
    gru = rnnkit.nn.GRU(3, 4)
    assert "lengths" in fast_path_unavailable(gru.cells, "native", lengths=True)
    assert "float16" in fast_path_unavailable(gru.cells, "native", dtype=torch.float16)
    assert fast_path_unavailable(gru.cells, "native", dtype=torch.float32) is None


def test_lengths_fall_back_to_torch_fused_and_still_match(assert_close):
    ours, theirs = _pair("GRU", {}, 1, True, 3, 4, torch.float64)
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 4])
    out, h = ours(x, lengths=lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    ref, h_ref = theirs(packed)
    assert_close(out, torch.nn.utils.rnn.pad_packed_sequence(ref, total_length=5)[0], "output")
    assert_close(h, h_ref, "h_n")


def test_turned_off_by_environment(monkeypatch, assert_close):
    monkeypatch.setenv("RNNKIT_NATIVE", "0")
    ours, theirs = _pair("RNN", {}, 1, False, 3, 4, torch.float64)
    assert "RNNKIT_NATIVE=0" in ours.fast_path_unavailable("native")
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    assert_close(ours(x)[0], theirs(x)[0], "output on PyTorch's fused kernel")


def test_build_failures_are_reported_not_swallowed(monkeypatch, tmp_path):
    """A compiler error and a missing compiler each give a reason quoting what went wrong."""
    for name in native.SOURCES + native.HEADERS:
        (tmp_path / name).write_text((native.CSRC / name).read_text())
    (tmp_path / "recurrence.cpp").write_text('#error "broken on purpose"\n')
    monkeypatch.setattr(native, "CSRC", tmp_path)
    reason = native._build()
    assert reason is not None and "failed" in reason and "broken on purpose" in reason
    monkeypatch.setenv("CXX", "no-such-compiler-rnnkit")
    assert "no C++ compiler" in native._build()
