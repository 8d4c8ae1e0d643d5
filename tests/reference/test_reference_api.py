"""The NumPy reference: no torch, hand-written formulas, lengths semantics, argument errors."""

import ast
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from rnnkit.reference import (init_params, lstm_step_forward, rnn_backward,
                              rnn_forward, sigmoid)

REF_DIR = pathlib.Path(__file__).resolve().parents[2] / "rnnkit" / "reference"


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


# ------------------------------------------------------------------------------ no torch

def test_reference_sources_never_import_torch():
    files = sorted(REF_DIR.glob("*.py"))
    assert files
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                    "__import__", "import_module"):
                mods = [a.value for a in node.args
                        if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            else:
                continue
            assert not any(m == "torch" or m.startswith("torch.") for m in mods), f"{f.name} imports {mods}"


def test_importing_reference_does_not_load_torch():
    # A stand-in parent package, so that this holds whatever rnnkit/__init__.py imports.
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('rnnkit'); pkg.__path__ = [{str(REF_DIR.parent)!r}]\n"
        "sys.modules['rnnkit'] = pkg\n"
        "import rnnkit.reference as r\n"
        "import numpy as np\n"
        "r.rnn_forward(np.zeros((2, 1, 3)), r.init_params('lstm', 3, 4), mode='lstm', hidden_size=4)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


# ------------------------------------------------------------------------------ formulas

def test_gru_reset_before_single_step_by_hand():
    """reset_after=False: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)."""
    rng = np.random.default_rng(3)
    B, I, H = 2, 3, 4
    p = init_params("gru", I, H, seed=5)
    x, h = rng.standard_normal((1, B, I)), rng.standard_normal((1, B, H))
    Wi, Wh, bi, bh = (p[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    blk = lambda a, j: a[j * H:(j + 1) * H]  # noqa: E731  (gate j: 0 = r, 1 = z, 2 = n)
    xs, hs = x[0], h[0]
    r = _sig(xs @ blk(Wi, 0).T + blk(bi, 0) + hs @ blk(Wh, 0).T + blk(bh, 0))
    z = _sig(xs @ blk(Wi, 1).T + blk(bi, 1) + hs @ blk(Wh, 1).T + blk(bh, 1))
    n_before = np.tanh(xs @ blk(Wi, 2).T + blk(bi, 2) + (r * hs) @ blk(Wh, 2).T + blk(bh, 2))
    n_after = np.tanh(xs @ blk(Wi, 2).T + blk(bi, 2) + r * (hs @ blk(Wh, 2).T + blk(bh, 2)))
    for reset_after, n in ((False, n_before), (True, n_after)):
        want = (1 - z) * n + z * hs
        out, h_n, c_n, _ = rnn_forward(x, p, mode="gru", hidden_size=H, h0=h, reset_after=reset_after)
        np.testing.assert_allclose(out[0], want, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(h_n[0], want, rtol=1e-13, atol=1e-15)
        assert c_n is None
    assert np.abs(n_before - n_after).max() > 1e-3    # the two variants really differ


def test_lstm_and_rnn_single_step_by_hand():
    rng = np.random.default_rng(4)
    B, I, H, P = 2, 3, 4, 2
    x, c = rng.standard_normal((B, I)), rng.standard_normal((B, H))
    p = {k[:-3]: v for k, v in init_params("lstm", I, H, proj_size=P, seed=6).items()}
    h = rng.standard_normal((B, P))
    a = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    i, f, g, o = _sig(a[:, :H]), _sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), _sig(a[:, 3 * H:])
    c_new = f * c + i * g
    h_got, c_got, _ = lstm_step_forward(x, h, c, p)
    np.testing.assert_allclose(c_got, c_new, rtol=1e-13)
    np.testing.assert_allclose(h_got, (o * np.tanh(c_new)) @ p["weight_hr"].T, rtol=1e-13)
    a = np.array([-800.0, -1.0, 0.0, 2.0, 800.0])
    np.testing.assert_allclose(sigmoid(a), [0.0, _sig(-1.0), 0.5, _sig(2.0), 1.0], rtol=1e-15)


# ------------------------------------------------------------------------------ lengths

@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_lengths_equal_running_each_sequence_alone(mode):
    rng = np.random.default_rng(7)
    T, B, I, H, L = 6, 4, 3, 5, 2
    lengths = np.array([6, 2, 4, 1])
    p = init_params(mode, I, H, num_layers=L, bidirectional=True, seed=8)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((2 * L, B, H))
    c0 = rng.standard_normal((2 * L, B, H)) if mode == "lstm" else None
    kw = dict(mode=mode, hidden_size=H, num_layers=L, bidirectional=True)
    out, h_n, c_n, _ = rnn_forward(x, p, h0=h0, c0=c0, lengths=lengths, **kw)
    for b, n in enumerate(lengths):
        o1, h1, c1, _ = rnn_forward(x[:n, b:b + 1], p, h0=h0[:, b:b + 1],
                                    c0=None if c0 is None else c0[:, b:b + 1], **kw)
        close = dict(rtol=1e-13, atol=1e-15)   # batch size changes BLAS rounding, nothing more
        np.testing.assert_allclose(out[:n, b], o1[:, 0], **close)
        assert np.all(out[n:, b] == 0.0)                  # padding is exactly zero
        np.testing.assert_allclose(h_n[:, b], h1[:, 0], **close)
        np.testing.assert_array_equal(h_n[-2, b], out[n - 1, b, :H])   # forward: own last step
        np.testing.assert_array_equal(h_n[-1, b], out[0, b, H:])       # reverse: t = 0
        if mode == "lstm":
            np.testing.assert_allclose(c_n[:, b], c1[:, 0], **close)


def test_none_upstream_gradients_are_zeros():
    rng = np.random.default_rng(9)
    p = init_params("lstm", 2, 3, num_layers=2, bidirectional=True, seed=1)
    out, h_n, c_n, cache = rnn_forward(rng.standard_normal((3, 2, 2)), p, mode="lstm", hidden_size=3,
                                       num_layers=2, bidirectional=True)
    d_out = rng.standard_normal(out.shape)
    g1 = rnn_backward(d_out, None, None, cache)
    g2 = rnn_backward(d_out, np.zeros_like(h_n), np.zeros_like(c_n), cache)
    assert list(g1) == list(p) + ["x", "h0", "c0"]
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


def test_init_params():
    p = init_params("gru", 3, 16, num_layers=2, bidirectional=True, seed=1)
    assert all(v.dtype == np.float64 and np.abs(v).max() <= 0.25 for v in p.values())
    q = init_params("gru", 3, 16, num_layers=2, bidirectional=True, seed=1)
    assert all(np.array_equal(p[k], q[k]) for k in p)
    assert not np.array_equal(p["weight_ih_l0"], init_params("gru", 3, 16, seed=2)["weight_ih_l0"])


# ------------------------------------------------------------------------------ errors

def _call(**over):
    kw = dict(x=np.zeros((3, 2, 4)), params=init_params("lstm", 4, 5), mode="lstm", hidden_size=5)
    kw.update(over)
    x, params = kw.pop("x"), kw.pop("params")
    return rnn_forward(x, params, **kw)


@pytest.mark.parametrize("over,pattern", [
    (dict(x=np.zeros((3, 4))), r"x: expected a 3-D .*\(3, 4\)"),
    (dict(mode="transformer"), r"mode: expected one of .*'transformer'"),
    (dict(lengths=[3, 4]), r"lengths: expected every length in \[0, T=3\], got \[3, 4\]"),
    (dict(lengths=[3, 2, 1]), r"lengths: expected shape \(B,\) = \(2,\), got \(3,\)"),
    (dict(lengths=[2.0, 1.0]), r"lengths: expected integers, got dtype float64"),
    (dict(hidden_size=0), r"hidden_size: expected an int >= 1, got 0"),
    (dict(num_layers=2), r"params: missing key 'weight_ih_l1'"),
    (dict(bias=False), r"params: unexpected keys \['bias_hh_l0', 'bias_ih_l0'\]"),
    (dict(x=np.zeros((3, 2, 6))), r"params\['weight_ih_l0'\]: expected shape \(20, 6\).*got \(20, 4\)"),
    (dict(h0=np.zeros((1, 3, 5))), r"h0: expected shape .*\(1, 2, 5\), got \(1, 3, 5\)"),
    (dict(c0=np.zeros((2, 2, 5))), r"c0: expected shape .*\(1, 2, 5\), got \(2, 2, 5\)"),
    (dict(proj_size=5), r"proj_size: expected a value smaller than hidden_size=5, got 5"),
    (dict(nonlinearity="sigmoid"), r"nonlinearity: expected 'tanh' or 'relu', got 'sigmoid'"),
    (dict(mode="gru", params=init_params("gru", 4, 5), c0=np.zeros((1, 2, 5))), r"c0: expected None"),
    (dict(mode="gru", params=init_params("gru", 4, 5), proj_size=2), r"proj_size: expected 0 for mode='gru'"),
])
def test_errors_name_argument_value_and_expectation(over, pattern):
    with pytest.raises(ValueError, match=pattern):
        _call(**over)


def test_backward_errors():
    out, h_n, c_n, cache = _call()
    with pytest.raises(ValueError, match=r"d_out: expected shape \(3, 2, 5\).*got \(3, 2, 4\)"):
        rnn_backward(np.zeros((3, 2, 4)), None, None, cache)
    with pytest.raises(ValueError, match="cache: expected the cache returned by rnn_forward"):
        rnn_backward(out, None, None, {})
    with pytest.raises(ValueError, match="mode: expected one of"):
        init_params("lstmm", 3, 4)
