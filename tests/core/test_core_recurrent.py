"""`Recurrent(cell)`, the one-layer one-direction engine: each direction of a stack, Keras-style masks
against a hand-written step loop, and masks in a whole stack against composed layers."""
from __future__ import annotations

import pytest
import torch

from rnnkit.cells import GRUCell, LSTMCell, SimpleRNNCell
from rnnkit.core import Recurrent, RecurrentStack

# torch.nn itself warns that oneDNN has no LSTM projection (it falls back); not our concern here
pytestmark = pytest.mark.filterwarnings(
    "ignore:LSTM with projections is not supported with oneDNN")

CELLS = [("rnn", SimpleRNNCell, {}), ("lstm", LSTMCell, {}), ("lstm", LSTMCell, {"proj_size": 2}),
         ("gru", GRUCell, {}), ("gru", GRUCell, {"reset_after": False})]
CELL_IDS = ["rnn", "lstm", "lstm_proj", "gru", "gru_reset_before"]


@pytest.mark.parametrize("stack_kernel", ["auto", "loop"])
@pytest.mark.parametrize("layer_kernel", ["auto", "loop"])
@pytest.mark.parametrize("name,cell_cls,kw", CELLS, ids=CELL_IDS)
def test_each_direction_of_a_stack_is_a_recurrent_layer(name, cell_cls, kw, layer_kernel,
                                                        stack_kernel, assert_close):
    torch.manual_seed(0)
    stack = RecurrentStack(name, 3, 4, bidirectional=True, kernel=stack_kernel,
                           dtype=torch.float64, **kw)
    H_out = stack.output_size
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 3, 1, 4])
    g = torch.Generator().manual_seed(3)
    h0 = tuple(torch.randn((2, 4) + s, generator=g, dtype=torch.float64)
               for s in stack.cells[0].state_shapes)
    out, states = stack(x, h0, lengths=lengths)
    for d, reverse in ((0, False), (1, True)):
        layer = Recurrent(stack.cells[d], reverse=reverse, kernel=layer_kernel)
        out_d, state_d = layer(x, tuple(s[d] for s in h0), lengths=lengths)
        assert_close(out_d, out[..., d * H_out:(d + 1) * H_out], f"output of direction {d}")
        for i, s in enumerate(state_d):
            assert_close(s, states[i][d], f"final state {i} of direction {d}")


def _hand_loop(cell, x, state, mask, masked_output, reverse):
    """Keras semantics written out step by step: a masked step keeps the state and emits zero or
    the carried output; ``reverse`` walks the time axis backwards (mask included)."""
    T = x.shape[0]
    outs = [None] * T
    for t in (reversed(range(T)) if reverse else range(T)):
        out_t, new = cell(x[t], state)  # (B, H_out)
        m = mask[:, t].unsqueeze(1)  # (B, 1)
        state = tuple(torch.where(m, n, s) for n, s in zip(new, state))
        held = state[0] if masked_output == "hold" else torch.zeros_like(out_t)
        outs[t] = torch.where(m, out_t, held)
    return torch.stack(outs), state


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masked_output", ["zero", "hold"])
@pytest.mark.parametrize("name,cell_cls,kw", CELLS, ids=CELL_IDS)
def test_mask_keeps_state_like_a_hand_written_loop(name, cell_cls, kw, masked_output, reverse,
                                                   assert_close):
    torch.manual_seed(1)
    cell = cell_cls(3, 4, **kw).double()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 7, 3, generator=g, dtype=torch.float64)  # (B, T, I)
    mask = torch.rand(4, 7, generator=g) < 0.6
    mask[1] = False  # a sequence that is masked throughout keeps its initial state
    mask[2, :3] = False  # leading masked steps (Keras "hold" then emits the initial state)
    state0 = tuple(torch.randn((4,) + s, generator=g, dtype=torch.float64) for s in cell.state_shapes)
    layer = Recurrent(cell, batch_first=True, reverse=reverse)
    xl = x.clone().requires_grad_()
    out, state = layer(xl, state0, mask=mask, masked_output=masked_output)
    xr = x.clone().requires_grad_()
    ref_out, ref_state = _hand_loop(cell, xr.transpose(0, 1), state0, mask, masked_output, reverse)
    assert_close(out, ref_out.transpose(0, 1), "output")
    for i, (a, b) in enumerate(zip(state, ref_state)):
        assert_close(a, b, f"final state {i}")
    assert_close(state[0][1], state0[0][1], "state of a fully masked sequence")
    w = torch.randn(out.shape, generator=g, dtype=torch.float64)
    (out * w).sum().backward()
    (ref_out.transpose(0, 1) * w).sum().backward()
    assert_close(xl.grad, xr.grad, "gradient of the input")


@pytest.mark.parametrize("reverse", [False, True])
def test_prefix_mask_with_zero_output_equals_lengths_forward(reverse, assert_close):
    """For a forward layer a prefix mask is the same as lengths; reversed, lengths start each
    sequence at its own end while a mask reverses the whole (padded) axis, so the final states of
    padded sequences agree only when the mask starts from the initial state (zeros here)."""
    torch.manual_seed(2)
    cell = LSTMCell(3, 4).double()
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 4])
    mask = (torch.arange(5).unsqueeze(0) < lengths.unsqueeze(1))  # (B, T)
    layer = Recurrent(cell, reverse=reverse)
    out_l, st_l = layer(x, lengths=lengths)
    out_m, st_m = layer(x, mask=mask)
    for i, (a, b) in enumerate(zip(st_l, st_m)):
        assert_close(a, b, f"final state {i}")
    assert_close(out_m, out_l, "output")


def test_all_true_mask_equals_no_mask(assert_close):
    torch.manual_seed(3)
    stack = RecurrentStack("gru", 3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    out, (h,) = stack(x)
    out_m, (h_m,) = stack(x, mask=torch.ones(2, 5, dtype=torch.bool))
    assert_close(out_m, out, "output")
    assert_close(h_m, h, "h_n")


@pytest.mark.parametrize("masked_output", ["zero", "hold"])
def test_masked_stack_composes_masked_layers(masked_output, assert_close):
    """A masked bidirectional stack is layers of masked `Recurrent`s, directions concatenated."""
    torch.manual_seed(4)
    stack = RecurrentStack("lstm", 3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    mask = torch.rand(3, 6) < 0.7
    out, (h, c) = stack(x, mask=mask, masked_output=masked_output)
    layer_in, hs, cs = x, [], []
    for k in range(2):
        outs = []
        for d in range(2):
            o, (hk, ck) = Recurrent(stack.cells[2 * k + d], reverse=d == 1)(
                layer_in, mask=mask, masked_output=masked_output)
            outs.append(o)
            hs.append(hk)
            cs.append(ck)
        layer_in = torch.cat(outs, 2)
    assert_close(out, layer_in, "output")
    assert_close(h, torch.stack(hs), "h_n")
    assert_close(c, torch.stack(cs), "c_n")
