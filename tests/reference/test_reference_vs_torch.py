"""The NumPy reference against torch.nn.RNN / LSTM / GRU in float64 (forward and gradients).

torch has no reset_after=False GRU; that variant is covered by test_reference_gradcheck.py and
by the hand-written formula in test_reference_api.py.
"""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.reference import init_params, param_shapes, rnn_backward, rnn_forward

RTOL = 1e-10

VARIANTS = {  # name -> (mode, torch class, extra kwargs)
    "rnn_tanh": ("rnn", torch.nn.RNN, dict(nonlinearity="tanh")),
    "rnn_relu": ("rnn", torch.nn.RNN, dict(nonlinearity="relu")),
    "lstm": ("lstm", torch.nn.LSTM, dict()),
    "lstm_proj": ("lstm", torch.nn.LSTM, dict(proj_size=2)),
    "gru": ("gru", torch.nn.GRU, dict()),
}


def _assert_close(ours, theirs, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != torch {theirs.shape}"
    scale = max(np.abs(theirs).max(initial=0.0), 1e-300)
    err = np.abs(ours - theirs).max(initial=0.0) / scale
    assert err <= RTOL, f"{what}: relative error {err:.3e} > {RTOL}"


def _compare(variant, *, T, B, I, H, L, bidirectional, bias, lengths, given_states, seed):
    mode, cls, extra = VARIANTS[variant]
    torch.manual_seed(seed)
    m = cls(I, H, num_layers=L, bias=bias, bidirectional=bidirectional, **extra).double()
    params = {k: v.detach().double().numpy() for k, v in m.state_dict().items()}
    rng = np.random.default_rng(seed)
    D, H_out = (2 if bidirectional else 1), extra.get("proj_size", 0) or H
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L * D, B, H_out)) if given_states else None
    c0 = rng.standard_normal((L * D, B, H)) if given_states and mode == "lstm" else None

    # --- torch
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0 if h0 is not None else np.zeros((L * D, B, H_out)), requires_grad=True)
    c0t = torch.tensor(c0 if c0 is not None else np.zeros((L * D, B, H)), requires_grad=True)
    inp = xt if lengths is None else pack_padded_sequence(
        xt, torch.tensor(lengths, dtype=torch.int64), enforce_sorted=False)
    out_t, state_t = m(inp, (h0t, c0t) if mode == "lstm" else h0t)
    if lengths is not None:
        out_t, _ = pad_packed_sequence(out_t, total_length=T)
    h_n_t, c_n_t = state_t if mode == "lstm" else (state_t, None)
    R_out = rng.standard_normal(tuple(out_t.shape))
    R_h = rng.standard_normal(tuple(h_n_t.shape))
    R_c = rng.standard_normal(tuple(c_n_t.shape)) if mode == "lstm" else None
    loss = (out_t * torch.tensor(R_out)).sum() + (h_n_t * torch.tensor(R_h)).sum()
    if mode == "lstm":
        loss = loss + (c_n_t * torch.tensor(R_c)).sum()
    loss.backward()

    # --- reference
    out, h_n, c_n, cache = rnn_forward(
        x, params, mode=mode, num_layers=L, bidirectional=bidirectional, hidden_size=H,
        bias=bias, h0=h0, c0=c0, lengths=None if lengths is None else np.array(lengths), **extra)
    grads = rnn_backward(R_out, R_h, R_c, cache)

    _assert_close(out, out_t, "out")
    _assert_close(h_n, h_n_t, "h_n")
    if mode == "lstm":
        _assert_close(c_n, c_n_t, "c_n")
    else:
        assert c_n is None and "c0" not in grads
    if lengths is not None:
        valid = np.arange(T)[:, None] < np.array(lengths)[None, :]
        assert np.all(out[~valid] == 0.0)
    tparams = dict(m.named_parameters())
    assert set(grads) == set(tparams) | {"x", "h0"} | ({"c0"} if mode == "lstm" else set())
    for name, p in tparams.items():
        _assert_close(grads[name], p.grad, f"grad {name}")
    _assert_close(grads["x"], xt.grad, "grad x")
    _assert_close(grads["h0"], h0t.grad, "grad h0")
    if mode == "lstm":
        _assert_close(grads["c0"], c0t.grad, "grad c0")


GRID = list(itertools.product(VARIANTS, (1, 2), (False, True), (False, True), (None, (5, 2, 5, 1))))


@pytest.mark.parametrize("variant,L,bidirectional,bias,lengths", GRID,
                         ids=[f"{v}-L{L}-{'bi' if b else 'uni'}-{'bias' if bi else 'nobias'}-"
                              f"{'packed' if ln else 'dense'}" for v, L, b, bi, ln in GRID])
def test_matches_torch(variant, L, bidirectional, bias, lengths):
    _compare(variant, T=5, B=4, I=3, H=4, L=L, bidirectional=bidirectional, bias=bias,
             lengths=lengths, given_states=bias, seed=L + 2 * bidirectional)


@settings(max_examples=25, deadline=None)
@given(variant=st.sampled_from(sorted(VARIANTS)), T=st.integers(1, 6), B=st.integers(1, 4),
       I=st.integers(1, 4), H=st.integers(3, 5), L=st.integers(1, 3), bidirectional=st.booleans(),
       bias=st.booleans(), packed=st.booleans(), given_states=st.booleans(), seed=st.integers(0, 2**16),
       data=st.data())
def test_matches_torch_random_configs(variant, T, B, I, H, L, bidirectional, bias, packed,
                                      given_states, seed, data):
    lengths = data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B)) if packed else None
    _compare(variant, T=T, B=B, I=I, H=H, L=L, bidirectional=bidirectional, bias=bias,
             lengths=lengths, given_states=given_states, seed=seed)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_param_layout_matches_state_dict(variant):
    mode, cls, extra = VARIANTS[variant]
    for L, bidirectional, bias in itertools.product((1, 3), (False, True), (False, True)):
        m = cls(3, 4, num_layers=L, bias=bias, bidirectional=bidirectional, **extra)
        want = [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
        args = (mode, 3, 4, L, bidirectional, extra.get("proj_size", 0), bias)
        assert list(param_shapes(*args).items()) == want
        assert [(k, v.shape) for k, v in init_params(*args).items()] == want
