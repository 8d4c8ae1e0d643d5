"""The PyTorch-style modules of the modern cells (torch.nn.LSTM's arguments and shapes), the
hand-written backward pass of the loop kernel (against autograd and finite differences), and the
loop's linear cost in T."""
from __future__ import annotations

import time

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit.core.bptt as bptt
import rnnkit.nn as rnn
from rnnkit.core import RecurrentStack

D = torch.float64
MODULES = [rnn.LayerNormLSTM, rnn.LayerNormGRU, rnn.IndRNN, rnn.MinGRU, rnn.MinLSTM]


@pytest.mark.parametrize("cls", MODULES)
@pytest.mark.parametrize("batch_first,bidirectional,layers", [(False, False, 1), (True, True, 2)])
def test_shapes_follow_torch_nn(cls, batch_first, bidirectional, layers):
    """Output and state shapes equal torch.nn.LSTM's (h) for the same arguments."""
    torch.manual_seed(0)
    kw = dict(num_layers=layers, batch_first=batch_first, bidirectional=bidirectional)
    ours, theirs = cls(3, 4, **kw), nn.LSTM(3, 4, **kw)
    x = torch.randn(2, 5, 3) if batch_first else torch.randn(5, 2, 3)
    out, state = ours(x)
    ref_out, (ref_h, ref_c) = theirs(x)
    assert out.shape == ref_out.shape
    if cls is rnn.LayerNormLSTM:
        assert state[0].shape == ref_h.shape and state[1].shape == ref_c.shape
        out2, _ = ours(x, state)  # the state goes back in
    else:
        assert state.shape == ref_h.shape
        out2, _ = ours(x, state)
    assert out2.shape == out.shape
    unbatched, _ = ours(x[0] if batch_first else x[:, 0])
    assert unbatched.shape == (ref_out[0].shape if batch_first else ref_out[:, 0].shape)


@pytest.mark.parametrize("cls", MODULES)
def test_packed_sequence_and_lengths_agree(assert_close, cls):
    torch.manual_seed(0)
    m = cls(3, 4, bidirectional=True, dtype=D)
    x, lengths = torch.randn(6, 3, 3, dtype=D), torch.tensor([6, 2, 4])
    packed_out, packed_state = m(pack_padded_sequence(x, lengths, enforce_sorted=False))
    out, state = m(x, lengths=lengths)
    assert_close(packed_out.data, pack_padded_sequence(out, lengths, enforce_sorted=False).data,
                 f"{cls.__name__} packed output")
    h = state[0] if isinstance(state, tuple) else state
    h_p = packed_state[0] if isinstance(packed_state, tuple) else packed_state
    assert_close(h_p, h, f"{cls.__name__} packed h_n")
    assert torch.all(out[2:, 1] == 0)  # padded outputs are zero


def test_indrnn_signature_like_torch_rnn():
    m = rnn.IndRNN(3, 4, 2, "tanh", recurrent_max_abs=2 ** (1 / 10))
    assert m.nonlinearity == "tanh" and m.cells[1].nonlinearity == "tanh"
    with torch.no_grad():
        m.weight_hh_l1.fill_(5.0)
    m.constrain_()
    assert float(m.weight_hh_l1.detach().max()) == pytest.approx(2 ** (1 / 10))


@pytest.mark.parametrize("name", ["lnlstm", "lngru"])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_handwritten_backward_equals_autograd_loop(assert_close, monkeypatch, name, with_lengths):
    torch.manual_seed(0)
    fast = RecurrentStack(name, 3, 4, 2, bidirectional=True, dtype=D)
    slow = RecurrentStack(name, 3, 4, 2, bidirectional=True, dtype=D)
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(6, 2, 3, dtype=D, requires_grad=True)
    lengths = torch.tensor([6, 3]) if with_lengths else None

    def run(m):
        out, states = m(x, lengths=lengths)
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=D).view_as(out)).sum()
        loss = loss + sum(s.square().sum() for s in states)
        return torch.autograd.grad(loss, [x, *m.parameters()]), out
    (gx, *g_fast), out_fast = run(fast)
    monkeypatch.setattr(bptt, "has_bptt", lambda cell: False)  # force the autograd loop
    (gx_ref, *g_slow), out_slow = run(slow)
    assert_close(out_fast, out_slow, f"{name} output")
    assert_close(gx, gx_ref, f"{name} gradient of x")
    for (n, _), a, b in zip(fast.named_parameters(), g_fast, g_slow):
        assert_close(a, b, f"{name} gradient of {n}")


@pytest.mark.parametrize("name", ["lnlstm", "lngru"])
def test_handwritten_backward_matches_finite_differences(name):
    torch.manual_seed(0)
    cell = RecurrentStack(name, 2, 3, dtype=D).cells[0]
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.3 * torch.randn_like(p))
    xp = torch.randn(4, 2, cell.gates * 3, dtype=D, requires_grad=True)
    state = tuple(torch.randn(2, 3, dtype=D, requires_grad=True) for _ in cell.state_shapes)
    mask = torch.tensor([[1, 1], [1, 0], [1, 1], [0, 1]], dtype=torch.bool).unsqueeze(2)
    params = [p.detach().clone().requires_grad_() for p in cell.pointwise_params()]
    W = cell.recurrent_matrix().detach().clone().requires_grad_()

    def f(W, xp, *rest):
        n = len(state)
        return bptt.BPTT.apply(cell, mask, W, xp, n, *rest[:n], *rest[n:])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # hundreds of tiny evaluations: threads only add stalls
    try:
        assert torch.autograd.gradcheck(f, (W, xp, *state, *params))
    finally:
        torch.set_num_threads(threads)


def _fwd_bwd_seconds(m, T, runs, repeats=3):
    """Seconds of one forward + backward over T steps: the best of ``repeats`` timings of ``runs``
    passes each (other processes only ever add time; equal total work gives equal exposure)."""
    x = torch.randn(T, 16, 8)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(runs):
            out, _ = m(x)
            out.sum().backward()
        best = min(best, time.perf_counter() - start)
    return best / runs


@pytest.mark.parametrize("name", ["lnlstm", "indrnn"])
def test_loop_cost_grows_linearly_with_T(name):
    """8x the steps may cost at most 16x the time (O(T^2) indexing would cost ~64x). One thread,
    so that the measure is the algorithm's, not the scheduling of a busy machine's cores."""
    torch.manual_seed(0)
    m = RecurrentStack(name, 8, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _fwd_bwd_seconds(m, 20, 1, 1)  # warm-up
        ratio = _fwd_bwd_seconds(m, 400, 1) / _fwd_bwd_seconds(m, 50, 8)
    finally:
        torch.set_num_threads(threads)
    assert ratio <= 16, f"{name}: T=400 took {ratio:.1f}x the time of T=50"


@pytest.mark.parametrize("name", ["lnlstm", "lngru", "indrnn", "mingru", "minlstm"])
def test_language_model_by_name_step_by_step_equals_whole_sequence(assert_close, name):
    """The names the CLI's ``--cell`` takes build a language model whose token-by-token generation
    path (the loop step for every cell) gives the whole-sequence path's logits (scan / BPTT)."""
    from rnnkit.tasks.lm.model import LanguageModel
    torch.manual_seed(0)
    model = LanguageModel(28, cell=name, hidden=8, embedding=4).to(D).eval()
    ids = torch.randint(0, 28, (2, 6))
    whole, _ = model(ids)
    state, steps = None, []
    for t in range(ids.shape[1]):
        logits, state = model.step(ids[:, t], state)
        steps.append(logits)
    assert_close(torch.stack(steps, 1), whole, f"{name} step-by-step vs whole sequence")
