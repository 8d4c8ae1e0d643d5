"""Initialisation schemes against their published rules: PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``,
Keras's Glorot-uniform input kernel (bound ``sqrt(6 / (fan_in + fan_out))``), orthogonal recurrent
kernel and zero biases, and the LSTM forget-gate bias."""
from __future__ import annotations

import math

import pytest
import torch

import rnnkit.nn
from rnnkit.cells import GRUCell, LSTMCell, SimpleRNNCell

CELLS = {"rnn": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}  # the stock cells, PyTorch's layout
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _uniform_stats_ok(values: torch.Tensor, bound: float, what: str) -> None:
    """All values inside [-bound, bound], reaching close to it, with the std of U(-b, b)."""
    v = values.detach().double().flatten()
    assert float(v.abs().max()) <= bound, f"{what}: value outside the bound {bound}"
    assert float(v.abs().max()) > 0.97 * bound, f"{what}: never comes near the bound {bound}"
    std, want = float(v.std()), bound / math.sqrt(3)
    # the sample std of n uniform draws has a relative spread of about 0.9/sqrt(n) (< 1% here)
    assert abs(std / want - 1) < 0.04, f"{what}: std {std:.5f}, expected {want:.5f}"
    assert abs(float(v.mean())) < 4 * want / math.sqrt(v.numel()), f"{what}: mean {float(v.mean())}"


@pytest.mark.parametrize("name", sorted(CELLS))
def test_default_init_is_uniform_one_over_sqrt_hidden(name):
    torch.manual_seed(0)
    cell = CELLS[name](48, 64)
    bound = 1 / math.sqrt(64)
    for pname, p in cell.named_parameters():
        if p.numel() > 1000:  # the biases are too short for a std estimate; checked together below
            _uniform_stats_ok(p, bound, f"{name} {pname}")
        assert float(p.detach().abs().max()) <= bound, f"{name} {pname} outside the bound"
    _uniform_stats_ok(torch.cat([p.flatten() for p in cell.parameters()]), bound, name)


def test_default_init_of_a_stack_and_projection():
    torch.manual_seed(1)
    model = rnnkit.nn.LSTM(10, 64, num_layers=2, bidirectional=True, proj_size=16)
    bound = 1 / math.sqrt(64)  # torch.nn uses the hidden size, not the projection size
    for pname, p in model.named_parameters():
        assert float(p.detach().abs().max()) <= bound, pname
    _uniform_stats_ok(torch.cat([p.flatten() for p in model.parameters()]), bound, "stack")


@pytest.mark.parametrize("name,proj", [("rnn", 0), ("lstm", 0), ("lstm", 12), ("gru", 0)])
def test_orthogonal_init_follows_keras(name, proj):
    torch.manual_seed(2)
    I, H, G = 40, 32, GATES[name]
    kw = {"proj_size": proj} if proj else {}
    cell = CELLS[name](I, H, init="orthogonal", **kw)
    W = cell.weight_hh.detach().double()  # (G*H, H_out): Keras's (H_out, G*H) kernel transposed
    H_out = proj or H
    assert torch.allclose(W.T @ W, torch.eye(H_out, dtype=torch.float64), atol=1e-5), \
        "recurrent kernel is not one orthogonal matrix (W_hh^T W_hh != I)"
    if G == 1:
        assert torch.allclose(W @ W.T, torch.eye(H, dtype=torch.float64), atol=1e-5)
    xavier = math.sqrt(6 / (I + G * H))  # Glorot uniform: fan_in = I, fan_out = G*H
    _uniform_stats_ok(cell.weight_ih, xavier, f"{name} weight_ih")
    assert torch.count_nonzero(cell.bias_ih) == 0 and torch.count_nonzero(cell.bias_hh) == 0
    if proj:
        _uniform_stats_ok(cell.weight_hr, math.sqrt(6 / (H + proj)), "weight_hr")


def test_orthogonal_init_reaches_every_layer_of_a_stack():
    torch.manual_seed(3)
    model = rnnkit.nn.GRU(5, 16, num_layers=2, bidirectional=True, init="orthogonal")
    for k in range(2):
        for sfx in ("", "_reverse"):
            W = getattr(model, f"weight_hh_l{k}{sfx}").detach().double()
            assert torch.allclose(W.T @ W, torch.eye(16, dtype=torch.float64), atol=1e-5)
            assert torch.count_nonzero(getattr(model, f"bias_ih_l{k}{sfx}")) == 0
    # layer 1 reads both directions: Glorot's fan_in is 2H there
    _uniform_stats_ok(model.weight_ih_l1, math.sqrt(6 / (32 + 48)), "weight_ih_l1")


@pytest.mark.parametrize("init", ["uniform", "orthogonal"])
def test_forget_bias_sets_the_effective_forget_gate_bias(init):
    torch.manual_seed(4)
    H = 8
    cell = LSTMCell(3, H, init=init, forget_bias=1.0)
    plain = LSTMCell(3, H, init=init)
    total = (cell.bias_ih + cell.bias_hh).detach()
    assert torch.equal(total[H:2 * H], torch.ones(H))
    bound = 1 / math.sqrt(H)
    for block in (0, 2, 3):  # i, g, o keep the scheme's values
        sl = slice(block * H, (block + 1) * H)
        if init == "orthogonal":
            assert torch.count_nonzero(total[sl]) == 0
        else:
            assert float(cell.bias_ih[sl].detach().abs().max()) <= bound
            assert torch.count_nonzero(cell.bias_ih[sl]) == H
    assert plain.bias_ih[H:2 * H].abs().max() < 1  # without it, no forget bias of 1
    model = rnnkit.nn.LSTM(3, H, num_layers=2, bidirectional=True, forget_bias=2.5)
    for k in range(2):
        for sfx in ("", "_reverse"):
            b = getattr(model, f"bias_ih_l{k}{sfx}") + getattr(model, f"bias_hh_l{k}{sfx}")
            assert torch.equal(b[H:2 * H].detach(), torch.full((H,), 2.5))


def test_forget_bias_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match=r"forget_bias needs bias=True"):
        LSTMCell(3, 4, bias=False, forget_bias=1.0)
    with pytest.raises(ValueError, match=r"GRUCell: forget_bias=1.0 applies to an LSTM"):
        GRUCell(3, 4, forget_bias=1.0)
    with pytest.raises(ValueError, match=r"SimpleRNNCell: forget_bias=1.0 applies to an LSTM"):
        SimpleRNNCell(3, 4, forget_bias=1.0)
    with pytest.raises(ValueError, match=r"init must be one of \('uniform', 'orthogonal'\), got 'he'"):
        rnnkit.nn.LSTM(3, 4, init="he")


def test_init_is_reproducible_under_a_seed():
    torch.manual_seed(5)
    a = rnnkit.nn.LSTM(3, 4, num_layers=2, init="orthogonal")
    torch.manual_seed(5)
    b = rnnkit.nn.LSTM(3, 4, num_layers=2, init="orthogonal")
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
