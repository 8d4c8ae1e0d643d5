"""Recurrent dropout, zoneout and weight drop against hand-written loops over `torch.nn`'s own cells,
with the same seed (so the same random draws), in training and in evaluation."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import rnnkit.nn as rnn
from rnnkit.core import RecurrentStack

D = torch.float64
T, B, I, H = 7, 3, 4, 5


def _torch_cell(stack, cls):
    """A `torch.nn` cell holding the stack's layer-0 weights (the independent implementation)."""
    cell = cls(I, H, dtype=D)
    cell.load_state_dict({k[:-3]: v for k, v in stack.state_dict().items() if k.endswith("_l0")})
    return cell


def _hand_loop(step, x, state, *, drop_mask=None, zoneout=0.0, training=True):
    """Gal's mask on h where it feeds the recurrent product; Krueger's zoneout per unit and step
    (one ``rand`` per state tensor, h first), or its expectation at evaluation."""
    outs = []
    for t in range(x.shape[0]):
        new = step(x[t], state, drop_mask)
        if zoneout and training:
            new = tuple(torch.where(torch.rand(n.shape, dtype=D) < zoneout, s, n)
                        for n, s in zip(new, state))
        elif zoneout:
            new = tuple(zoneout * s + (1 - zoneout) * n for n, s in zip(new, state))
        state = new
        outs.append(state[0])
    return torch.stack(outs), state


def lstm_step(cell):
    def step(x_t, state, m):
        h, c = state
        return cell(x_t, (h if m is None else h * m, c))  # c is never dropped
    return step


def gru_step(cell):
    """torch.nn.GRUCell's equations with the dropped h only inside the products (Keras/Gal)."""
    def step(x_t, state, m):
        (h,) = state
        hr = h if m is None else h * m
        xr, xz, xn = F.linear(x_t, cell.weight_ih, cell.bias_ih).chunk(3, 1)
        gr, gz, gn = F.linear(hr, cell.weight_hh, cell.bias_hh).chunk(3, 1)
        r, z = torch.sigmoid(xr + gr), torch.sigmoid(xz + gz)
        n = torch.tanh(xn + r * gn)
        return ((1 - z) * n + z * h,)
    return step


def _mask(p):
    return torch.empty(B, H, dtype=D).bernoulli_(1 - p).div_(1 - p)


@pytest.mark.parametrize("name,torch_cls,make_step", [("lstm", nn.LSTMCell, lstm_step),
                                                       ("gru", nn.GRUCell, gru_step)])
def test_recurrent_dropout_reuses_one_mask_across_time(assert_close, name, torch_cls, make_step):
    torch.manual_seed(0)
    m = RecurrentStack(name, I, H, recurrent_dropout=0.4, dtype=D)
    x = torch.randn(T, B, I, dtype=D)
    step = make_step(_torch_cell(m, torch_cls))
    state = tuple(torch.zeros(B, H, dtype=D) for _ in range(2 if name == "lstm" else 1))
    torch.manual_seed(7)
    out, _ = m(x)
    torch.manual_seed(7)
    mask = _mask(0.4)
    expect, _ = _hand_loop(step, x, state, drop_mask=mask)
    assert_close(out, expect, f"{name} recurrent_dropout output")
    per_step = []  # a fresh mask each step is a different model: the test can tell them apart
    torch.manual_seed(7)
    h = state
    for t in range(T):
        h = step(x[t], h, _mask(0.4))
        per_step.append(h[0])
    assert (torch.stack(per_step) - out).abs().max() > 1e-3
    m.eval()
    ref, _ = _hand_loop(step, x, state)
    assert_close(m(x)[0], ref, f"{name} recurrent_dropout in eval = no dropout")


@pytest.mark.parametrize("training", [True, False])
def test_zoneout_per_unit_per_step_and_expectation_at_eval(assert_close, training):
    torch.manual_seed(0)
    m = rnn.LSTM(I, H, zoneout=0.3, dtype=D)
    m.train(training)
    x = torch.randn(T, B, I, dtype=D)
    state = (torch.zeros(B, H, dtype=D), torch.zeros(B, H, dtype=D))
    step = lstm_step(_torch_cell(m, nn.LSTMCell))
    torch.manual_seed(3)
    out, (h_n, c_n) = m(x)
    torch.manual_seed(3)
    expect, (h, c) = _hand_loop(step, x, state, zoneout=0.3, training=training)
    assert_close(out, expect, f"zoneout output training={training}")
    assert_close(c_n[0], c, f"zoneout c_n training={training}")


def test_zoneout_applies_to_scan_cells_through_the_loop(assert_close):
    torch.manual_seed(0)
    m = rnn.MinGRU(I, H, zoneout=0.5, dtype=D).eval()
    assert m.kernel == "loop"  # zoneout inside the step: the scan cannot serve
    x = torch.randn(T, B, I, dtype=D)
    cell = m.cells[0]

    def step(x_t, state, _):
        return cell.step(cell.project_inputs(x_t), state)[1]
    expect, _ = _hand_loop(step, x, (torch.zeros(B, H, dtype=D),), zoneout=0.5, training=False)
    assert_close(m(x)[0], expect, "minGRU zoneout expectation")


def test_weight_drop_keeps_the_fused_kernel_and_trains_the_raw_weights(assert_close):
    torch.manual_seed(0)
    m = rnn.LSTM(I, H, weight_drop=0.5, dtype=D)
    assert m.kernel == "fused" and m.fast_path_unavailable() is None
    ref = nn.LSTM(I, H, dtype=D)
    ref.load_state_dict(m.state_dict())
    x = torch.randn(T, B, I, dtype=D)
    torch.manual_seed(5)
    out, _ = m(x)
    torch.manual_seed(5)
    raw = ref.weight_hh_l0
    # AWD-LSTM's WeightDrop: a fresh mask per forward, entries 0 or 1/(1-p), drawn as documented
    keep = torch.rand(raw.shape, dtype=torch.promote_types(raw.dtype, torch.float32)) < 0.5
    dropped = torch.where(keep, raw / 0.5, torch.zeros((), dtype=raw.dtype))
    expect, _ = torch.func.functional_call(ref, {**dict(ref.named_parameters()),
                                                 "weight_hh_l0": dropped}, (x,))
    assert_close(out, expect, "weight_drop output")
    plain, _ = ref(x)
    assert (out - plain).abs().max() > 1e-3  # training really changes W
    w = torch.randn_like(out)
    (g,) = torch.autograd.grad((out * w).sum(), [m.weight_hh_l0])
    (g_ref,) = torch.autograd.grad((expect * w).sum(), [raw])
    assert_close(g, g_ref, "weight_drop gradient of the raw weight_hh")
    assert m.cells[0].weight_hh is m.weight_hh_l0  # the raw parameter is back in place
    m.eval()
    assert_close(m(x)[0], plain, "weight_drop in eval = raw weights")


@pytest.mark.parametrize("name", ["lnlstm", "lngru", "indrnn", "rnn"])
def test_eval_mode_equals_the_unregularised_model(assert_close, name):
    torch.manual_seed(0)
    reg = RecurrentStack(name, I, H, 2, recurrent_dropout=0.3, weight_drop=0.3, dtype=D)
    plain = RecurrentStack(name, I, H, 2, dtype=D)
    plain.load_state_dict(reg.state_dict())
    x = torch.randn(T, B, I, dtype=D)
    reg.eval()
    assert_close(reg(x)[0], plain(x)[0], f"{name} eval output")
    reg.train()
    torch.manual_seed(1)
    out, _ = reg(x)
    assert (out - plain(x)[0]).abs().max() > 1e-4
    out.sum().backward()  # the autograd loop serves training with regularisers
    assert all(p.grad is not None for p in reg.parameters())


def test_kernel_choice_and_errors():
    assert "recurrent_dropout" in RecurrentStack("lstm", I, H, recurrent_dropout=0.1).fast_path_unavailable()
    assert RecurrentStack("gru", I, H, zoneout=0.1).kernel == "loop"
    with pytest.raises(ValueError, match="kernel='fused' cannot serve .*zoneout=0.1"):
        rnn.GRU(I, H, zoneout=0.1, kernel="fused")
    with pytest.raises(ValueError, match=r"recurrent_dropout must be a number in \[0, 1\), got 1"):
        rnn.LSTM(I, H, recurrent_dropout=1)
    with pytest.raises(ValueError, match=r"zoneout must be a number in \[0, 1\), got -0.1"):
        rnn.RNN(I, H, zoneout=-0.1)
    with pytest.raises(ValueError, match="weight_drop=0.2 needs a recurrent weight, but MinLSTMCell"):
        rnn.MinLSTM(I, H, weight_drop=0.2)
    with pytest.raises(ValueError, match="recurrent_dropout=0.2 needs a recurrent weight"):
        rnn.MinGRU(I, H, recurrent_dropout=0.2)
    assert "zoneout=0.2" in repr(rnn.LayerNormLSTM(I, H, zoneout=0.2))


def test_recurrent_layer_takes_the_same_regularisers(assert_close):
    from rnnkit.cells import LSTMCell
    from rnnkit.core import Recurrent
    torch.manual_seed(0)
    cell = LSTMCell(I, H).to(D)
    x = torch.randn(T, B, I, dtype=D)
    plain = Recurrent(cell)
    zoned = Recurrent(cell, zoneout=0.25).eval()
    assert (plain.kernel, zoned.kernel) == ("fused", "loop")
    h = (torch.zeros(B, H, dtype=D), torch.zeros(B, H, dtype=D))
    torch_cell = nn.LSTMCell(I, H, dtype=D)
    torch_cell.load_state_dict(cell.state_dict())
    expect, _ = _hand_loop(lstm_step(torch_cell), x, h, zoneout=0.25, training=False)
    assert_close(zoned(x)[0], expect, "Recurrent zoneout expectation")
    dropped = Recurrent(cell, weight_drop=0.5)
    assert (dropped(x)[0] - plain(x)[0]).abs().max() > 1e-3
    assert_close(dropped.eval()(x)[0], plain(x)[0], "Recurrent weight_drop in eval")
    with pytest.raises(ValueError, match="kernel='fused' cannot serve .*recurrent_dropout"):
        Recurrent(cell, kernel="fused", recurrent_dropout=0.1)
