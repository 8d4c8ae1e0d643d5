"""`rnnkit.nn.RNNCell/LSTMCell/GRUCell` against `torch.nn`'s cells with copied weights: the new
state and the gradients of every parameter, the input and the state; batched and unbatched."""
from __future__ import annotations

import pytest
import torch

import rnnkit.nn

CASES = [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("LSTMCell", {}), ("GRUCell", {})]
IDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


@pytest.mark.parametrize("given_state", [False, True])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_cell_matches_torch_cell(name, kw, dtype, bias, batched, given_state, assert_close,
                                 assert_grads_close):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, name)(3, 5, bias=bias, dtype=dtype, **kw)
    ours = getattr(rnnkit.nn, name)(3, 5, bias=bias, dtype=dtype, **kw)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    g = torch.Generator().manual_seed(1)
    lead = (4,) if batched else ()
    x = torch.randn(lead + (3,), generator=g, dtype=dtype)
    n_states = 2 if name == "LSTMCell" else 1
    states = [torch.randn(lead + (5,), generator=g, dtype=dtype) for _ in range(n_states)]
    results = []
    for model in (ours, theirs):
        xl = x.clone().requires_grad_()
        sl = [s.clone().requires_grad_() for s in states]
        hx = None if not given_state else (tuple(sl) if n_states == 2 else sl[0])
        new = model(xl, hx)
        new = new if isinstance(new, tuple) else (new,)
        loss = sum((s * torch.randn(s.shape, generator=torch.Generator().manual_seed(i),
                                    dtype=dtype)).sum() for i, s in enumerate(new))
        loss.backward()
        results.append((new, xl.grad, [s.grad for s in sl]))
    (new_o, gx_o, gs_o), (new_t, gx_t, gs_t) = results
    assert len(new_o) == len(new_t)
    for i, (a, b) in enumerate(zip(new_o, new_t)):
        assert a.shape == b.shape
        assert_close(a, b, f"new state {i}")
    assert_grads_close(ours, theirs)
    assert_close(gx_o, gx_t, "gradient of the input")
    if given_state:
        for i, (a, b) in enumerate(zip(gs_o, gs_t)):
            assert_close(a, b, f"gradient of state {i}")


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_cell_unrolled_over_time_equals_the_layer(name, kw, assert_close):
    """Stepping the cell by hand T times gives the one-layer module's output."""
    torch.manual_seed(2)
    cell = getattr(rnnkit.nn, name)(3, 4, dtype=torch.float64, **kw)
    layer = getattr(torch.nn, name[:-4])(3, 4, dtype=torch.float64, **kw)
    layer.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    state, outs = None, []
    for t in range(6):
        state = cell(x[t], state)
        outs.append(state[0] if isinstance(state, tuple) else state)
    assert_close(torch.stack(outs), layer(x)[0], "unrolled output")


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cell_rejects_bad_input(name):
    cell = getattr(rnnkit.nn, name)(3, 4)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, I=3\).*got \(2, 5\)"):
        cell(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"expected input of shape.*got \(1, 2, 3\)"):
        cell(torch.randn(1, 2, 3))
    with pytest.raises(TypeError, match=r"floating-point input, got dtype torch.int64"):
        cell(torch.ones(2, 3, dtype=torch.int64))
    bad = torch.zeros(3, 4)
    hx = (bad, torch.zeros(2, 4)) if name == "LSTMCell" else bad
    with pytest.raises(ValueError, match=r"expected state 0 of shape \(2, 4\), got \(3, 4\)"):
        cell(torch.randn(2, 3), hx)
