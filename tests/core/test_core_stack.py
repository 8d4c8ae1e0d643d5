"""`RecurrentStack` behaviour beyond the numbers: dropout between layers, cells bound to the
module's parameters, unbatched input."""
from __future__ import annotations

import pytest
import torch

from rnnkit.core import RecurrentStack
import rnnkit.nn


@pytest.mark.parametrize("kernel", ["auto", "loop"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_dropout_is_off_in_eval_and_on_in_train(cell, kernel):
    torch.manual_seed(0)
    plain = RecurrentStack(cell, 3, 8, num_layers=2, kernel=kernel)
    dropped = RecurrentStack(cell, 3, 8, num_layers=2, dropout=0.5, kernel=kernel)
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(5, 4, 3)
    plain.eval()
    dropped.eval()
    assert torch.equal(dropped(x)[0], plain(x)[0])
    dropped.train()
    out_a, out_b = dropped(x)[0], dropped(x)[0]
    assert not torch.allclose(out_a, plain(x)[0], atol=1e-3)
    assert not torch.allclose(out_a, out_b, atol=1e-3)  # a fresh dropout mask per call


@pytest.mark.parametrize("kernel", ["auto", "loop"])
def test_dropout_never_touches_the_last_layer(kernel):
    """Dropout sits between layers only: with one layer a training-mode forward is unchanged."""
    torch.manual_seed(1)
    with pytest.warns(UserWarning):
        dropped = RecurrentStack("lstm", 3, 4, dropout=0.9, kernel=kernel)
    plain = RecurrentStack("lstm", 3, 4, kernel=kernel)
    plain.load_state_dict(dropped.state_dict())
    x = torch.randn(5, 2, 3)
    assert torch.allclose(dropped.train()(x)[0], plain(x)[0], atol=1e-6)


@pytest.mark.parametrize("cls", [rnnkit.nn.RNN, rnnkit.nn.LSTM, rnnkit.nn.GRU])
def test_dropout_with_one_layer_warns(cls):
    with pytest.warns(UserWarning, match=r"dropout=0.3 .*num_layers=1"):
        cls(3, 4, dropout=0.3)
    with pytest.warns(UserWarning, match=r"dropout"):
        RecurrentStack("gru", 3, 4, dropout=0.3)


def test_matches_torch_dropout_in_eval(assert_close):
    torch.manual_seed(2)
    theirs = torch.nn.GRU(3, 5, num_layers=3, dropout=0.4).eval()
    ours = rnnkit.nn.GRU(3, 5, num_layers=3, dropout=0.4, kernel="loop").eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(4, 2, 3)
    assert_close(ours(x)[0], theirs(x)[0], "output in eval mode")


def test_cells_follow_the_module_parameters():
    stack = RecurrentStack("lstm", 3, 4, num_layers=2, bidirectional=True)
    cells = stack.cells
    assert len(cells) == 4
    assert cells[3].weight_ih is stack.weight_ih_l1_reverse
    assert cells[3].weight_ih.shape == (16, 8)  # layer 1 reads both directions of layer 0
    stack.double()
    assert stack.cells[0].weight_hh is stack.weight_hh_l0
    assert stack.cells[0].weight_hh.dtype == torch.float64
    assert {id(p) for c in stack.cells for p in c.parameters()} == {id(p) for p in stack.parameters()}


@pytest.mark.parametrize("kernel", ["auto", "loop"])
def test_unbatched_input_equals_a_batch_of_one(kernel, assert_close):
    torch.manual_seed(3)
    stack = RecurrentStack("lstm", 3, 4, num_layers=2, bidirectional=True, batch_first=True,
                           kernel=kernel, dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)  # (T, I)
    h0 = torch.randn(4, 4, dtype=torch.float64), torch.randn(4, 4, dtype=torch.float64)
    out, (h, c) = stack(x, h0)
    out_b, (h_b, c_b) = stack(x.unsqueeze(0), tuple(s.unsqueeze(1) for s in h0))
    assert out.shape == (5, 8) and h.shape == (4, 4)
    assert_close(out, out_b[0], "output")
    assert_close(h, h_b[:, 0], "h_n")
    assert_close(c, c_b[:, 0], "c_n")


@pytest.mark.parametrize("kernel", ["auto", "loop"])
def test_replaced_parameters_reach_the_engine(kernel, assert_close):
    """``load_state_dict(assign=True)`` and assigning a new Parameter swap the parameter objects;
    the next forward must use the new ones (the cells are re-bound, not stale copies)."""
    torch.manual_seed(5)
    theirs = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True)
    ours = rnnkit.nn.GRU(3, 4, num_layers=2, bidirectional=True, kernel=kernel)
    x = torch.randn(5, 2, 3)
    ours(x)  # run once before the swap
    ours.load_state_dict({k: v.clone() for k, v in theirs.state_dict().items()}, assign=True)
    assert_close(ours(x)[0], theirs(x)[0], "output after load_state_dict(assign=True)")
    new = torch.nn.Parameter(torch.randn(12, 8))
    ours.weight_ih_l1_reverse = new
    with torch.no_grad():
        theirs.weight_ih_l1_reverse.copy_(new)
    assert_close(ours(x)[0], theirs(x)[0], "output after assigning a new Parameter")
    assert ours.cells[3].weight_ih is new
