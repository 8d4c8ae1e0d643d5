"""`rnnkit.nn` (both kernels) against the NumPy reference `rnnkit.reference` in float64.

The reference is an independent forward pass and hand-written backpropagation through time; it also
covers what torch.nn lacks (the GRU with ``reset_after=False``). Outputs, final states and the
gradients of every parameter, the input and the initial states must agree to 1e-10."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import rnnkit.nn
from rnnkit.reference import rnn_backward, rnn_forward

# torch.nn itself warns that oneDNN has no LSTM projection (it falls back); not our concern here
pytestmark = pytest.mark.filterwarnings(
    "ignore:LSTM with projections is not supported with oneDNN")

VARIANTS = [  # (rnnkit.nn class, reference mode, constructor/reference keyword arguments)
    ("RNN", "rnn", {"nonlinearity": "tanh"}),
    ("RNN", "rnn", {"nonlinearity": "relu"}),
    ("LSTM", "lstm", {}),
    ("LSTM", "lstm", {"proj_size": 2}),
    ("GRU", "gru", {"reset_after": True}),
    ("GRU", "gru", {"reset_after": False}),
]


def make_config(i: int) -> dict:
    rng = random.Random(500 + i)
    name, mode, extra = VARIANTS[i % len(VARIANTS)]
    return dict(i=i, name=name, mode=mode, extra=extra, layers=rng.randint(1, 2),
                bidirectional=(i // len(VARIANTS)) % 2 == 1, lengths=(i // 12) % 2 == 1,
                bias=rng.random() < 0.8, given_state=rng.random() < 0.5,
                T=rng.randint(2, 6), B=rng.randint(1, 4), I=rng.randint(1, 4), H=rng.randint(3, 5))


CONFIGS = [make_config(i) for i in range(24)]


def config_id(c):
    extra = "-".join(f"{k}={v}" for k, v in c["extra"].items())
    return (f"{c['i']}-{c['name']}-{extra}-L{c['layers']}" + "-bi" * c["bidirectional"]
            + "-lengths" * c["lengths"] + "-nobias" * (not c["bias"]) + "-h0" * c["given_state"])


@pytest.mark.parametrize("kernel", ["auto", "loop"])
@pytest.mark.parametrize("c", CONFIGS, ids=config_id)
def test_matches_numpy_reference(c, kernel, assert_close, assert_grads_close):
    torch.manual_seed(c["i"])
    g = torch.Generator().manual_seed(c["i"])
    D = 2 if c["bidirectional"] else 1
    H_out = c["extra"].get("proj_size") or c["H"]
    model = getattr(rnnkit.nn, c["name"])(c["I"], c["H"], num_layers=c["layers"], bias=c["bias"],
                                          bidirectional=c["bidirectional"], kernel=kernel,
                                          dtype=torch.float64, **c["extra"])
    T, B = c["T"], c["B"]
    x = torch.randn(T, B, c["I"], generator=g, dtype=torch.float64, requires_grad=True)
    lengths = torch.randint(1, T + 1, (B,), generator=g) if c["lengths"] else None
    h0 = c0 = None
    if c["given_state"]:
        h0 = torch.randn(c["layers"] * D, B, H_out, generator=g, dtype=torch.float64,
                         requires_grad=True)
        if c["mode"] == "lstm":
            c0 = torch.randn(c["layers"] * D, B, c["H"], generator=g, dtype=torch.float64,
                             requires_grad=True)
    hx = None if h0 is None else ((h0, c0) if c["mode"] == "lstm" else h0)
    out, hn = model(x, hx, lengths=lengths)
    hn = hn if isinstance(hn, tuple) else (hn,)

    params = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    ref_kw = {k: v for k, v in c["extra"].items()}
    ref_out, ref_h, ref_c, cache = rnn_forward(
        x.detach().numpy(), params, mode=c["mode"], num_layers=c["layers"],
        bidirectional=c["bidirectional"], hidden_size=c["H"], bias=c["bias"],
        h0=None if h0 is None else h0.detach().numpy(),
        c0=None if c0 is None else c0.detach().numpy(),
        lengths=None if lengths is None else lengths.numpy(), **ref_kw)
    assert_close(out, ref_out, "output")
    assert_close(hn[0], ref_h, "h_n")
    if c["mode"] == "lstm":
        assert_close(hn[1], ref_c, "c_n")

    d_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
    d_h = torch.randn(hn[0].shape, generator=g, dtype=torch.float64)
    d_c = torch.randn(hn[1].shape, generator=g, dtype=torch.float64) if len(hn) == 2 else None
    loss = (out * d_out).sum() + (hn[0] * d_h).sum()
    if d_c is not None:
        loss = loss + (hn[1] * d_c).sum()
    loss.backward()
    grads = rnn_backward(d_out.numpy(), d_h.numpy(), None if d_c is None else d_c.numpy(), cache)

    for name, p in model.named_parameters():
        assert name in grads, f"the reference has no gradient named {name}"
        assert_close(p.grad, grads[name], f"gradient of {name}")
    assert_close(x.grad, grads["x"], "gradient of the input")
    if h0 is not None:
        assert_close(h0.grad, grads["h0"], "gradient of h0")
    if c0 is not None:
        assert_close(c0.grad, grads["c0"], "gradient of c0")
    if lengths is not None:  # padded outputs are exactly zero, as in the reference
        steps = torch.arange(T).unsqueeze(1)
        assert bool((out[steps >= lengths.unsqueeze(0)] == 0).all())
    assert np.isfinite(grads["x"]).all()
