"""Bad input raises an exception naming the argument, the value received and what was expected
(ValueError for values, TypeError for types). The important message fragments are pinned."""
from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit.nn
from rnnkit.cells import LSTMCell
from rnnkit.core import Recurrent, RecurrentStack


@pytest.fixture
def lstm():
    return rnnkit.nn.LSTM(3, 4)


X = torch.randn(5, 2, 3)  # (T, B, I)
MASK = torch.ones(2, 5, dtype=torch.bool)

FORWARD_ERRORS = [  # (id, call on an LSTM(3, 4), exception, message fragment)
    ("rank4", lambda m: m(torch.randn(5, 2, 3, 1)), ValueError,
     r"LSTM: expected input with 3 dimensions \(T, B, I\).*got shape \(5, 2, 3, 1\)"),
    ("rank1", lambda m: m(torch.randn(5)), ValueError, r"3 dimensions.*got shape \(5,\)"),
    ("features", lambda m: m(torch.randn(5, 2, 4)), ValueError,
     r"LSTM: expected input of shape \(T, B, I=3\), got \(5, 2, 4\)"),
    ("features_batch_first", lambda m: rnnkit.nn.GRU(3, 4, batch_first=True)(torch.randn(2, 5, 7)),
     ValueError, r"GRU: expected input of shape \(B, T, I=3\), got \(2, 5, 7\)"),
    ("not_a_tensor", lambda m: m([[1.0, 2.0, 3.0]]), TypeError,
     r"expected input to be a torch.Tensor or PackedSequence.*got list"),
    ("integer_input", lambda m: m(torch.ones(5, 2, 3, dtype=torch.int64)), TypeError,
     r"expected a floating-point input.*got dtype torch.int64.*embedding"),
    ("lengths_too_long", lambda m: m(X, lengths=[6, 3]), ValueError,
     r"lengths must not exceed the time axis T=5, got 6 \(at batch index 0\)"),
    ("lengths_zero", lambda m: m(X, lengths=[4, 0]), ValueError,
     r"every length must be >= 1, got 0 \(at batch index 1\)"),
    ("lengths_negative", lambda m: m(X, lengths=torch.tensor([-2, 3])), ValueError,
     r"every length must be >= 1, got -2"),
    ("lengths_shape", lambda m: m(X, lengths=[5, 5, 5]), ValueError,
     r"lengths must have shape \(B=2,\), got \(3,\)"),
    ("lengths_2d", lambda m: m(X, lengths=torch.tensor([[5, 5]])), ValueError,
     r"lengths must have shape \(B=2,\), got \(1, 2\)"),
    ("lengths_float", lambda m: m(X, lengths=torch.tensor([5.0, 3.0])), TypeError,
     r"lengths must hold integers, got dtype torch.float32"),
    ("lengths_str", lambda m: m(X, lengths="55"), TypeError, r"lengths must be a 1-D tensor.*got str"),
    ("h0_shape", lambda m: m(X, (torch.zeros(2, 2, 4), torch.zeros(1, 2, 4))), ValueError,
     r"LSTM: expected h0 of shape \(1, 2, 4\).*got \(2, 2, 4\)"),
    ("c0_shape", lambda m: m(X, (torch.zeros(1, 2, 4), torch.zeros(1, 3, 4))), ValueError,
     r"expected c0 of shape \(1, 2, 4\).*got \(1, 3, 4\)"),
    ("state_count", lambda m: m(X, torch.zeros(1, 2, 4)), ValueError,
     r"expected the initial state as 2 tensor\(s\) \('h0', 'c0'\), got 1"),
    ("state_dtype", lambda m: m(X, (torch.zeros(1, 2, 4, dtype=torch.float64), torch.zeros(1, 2, 4))),
     TypeError, r"h0 has dtype torch.float64 but the input has torch.float32"),
    ("dtype_mismatch", lambda m: m(X.double()), TypeError,
     r"input dtype torch.float64 does not match the parameters' dtype torch.float32"),
    ("packed_with_lengths", lambda m: m(pack_padded_sequence(X, [5, 3]), lengths=[5, 3]),
     ValueError, r"PackedSequence already carries its lengths"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in FORWARD_ERRORS],
                         ids=[c[0] for c in FORWARD_ERRORS])
def test_forward_rejects_bad_input(lstm, call, exc, match):
    with pytest.raises(exc, match=match):
        call(lstm)


def test_check_finite_names_the_first_bad_element():
    x = X.clone()
    x[1, 0, 2] = float("nan")
    with pytest.raises(ValueError, match=r"input contains NaN or inf \(first at index \(1, 0, 2\)\)"):
        rnnkit.nn.LSTM(3, 4, check_finite=True)(x)
    x[1, 0, 2] = 0.0
    x[4, 1, 0] = float("inf")
    with pytest.raises(ValueError, match=r"NaN or inf \(first at index \(4, 1, 0\)\)"):
        rnnkit.nn.GRU(3, 4, check_finite=True, kernel="loop")(x)
    with pytest.raises(ValueError, match=r"NaN or inf"):
        rnnkit.nn.GRU(3, 4, check_finite=True)(pack_padded_sequence(x, [5, 5]))
    rnnkit.nn.GRU(3, 4)(x)  # off by default: no check, no error


@pytest.mark.parametrize("model", [RecurrentStack("lstm", 3, 4), RecurrentStack("gru", 3, 4, kernel="loop")],
                         ids=["stack_fused", "stack_loop"])
def test_mask_errors_in_a_stack(model):
    # lengths that pad nothing are still lengths: asking for both is an error either way
    for lengths in ([5, 5], [5, 2]):
        with pytest.raises(ValueError, match=r"give either lengths= or mask=, not both"):
            model(X, lengths=lengths, mask=MASK)
    with pytest.raises(ValueError, match=r"mask must be a tensor of shape \(B=2, T=5\), got \(2, 4\)"):
        model(X, mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"masked_output must be 'zero' or 'hold', got 'keep'"):
        model(X, mask=MASK, masked_output="keep")


def test_errors_of_the_recurrent_layer():
    layer = Recurrent(LSTMCell(3, 4))
    with pytest.raises(ValueError, match=r"give either lengths= or mask=, not both"):
        layer(X, lengths=[5, 5], mask=MASK)
    with pytest.raises(ValueError, match=r"masked_output must be 'zero' or 'hold', got 'last'"):
        layer(X, mask=MASK, masked_output="last")
    with pytest.raises(TypeError, match=r"input dtype torch.float64 does not match the parameters' "
                                        r"dtype torch.float32"):
        layer(X.double())
    with pytest.raises(ValueError, match=r"expected a state of 2 tensor\(s\), got 1"):
        layer(X, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"expected state\[1\] of shape \(2, 4\).*got \(2, 5\)"):
        layer(X, (torch.zeros(2, 4), torch.zeros(2, 5)))
    with pytest.raises(ValueError, match=r"every length must be >= 1, got 0"):
        layer(X, lengths=[0, 2])
    with pytest.raises(TypeError, match=r"cell must be an rnnkit.cells.Cell, got LSTM"):
        Recurrent(torch.nn.LSTM(3, 4))
    with pytest.raises(ValueError, match=r"kernel must be one of \('auto', 'fused', 'loop'.*\), got 'cuda'"):
        Recurrent(LSTMCell(3, 4), kernel="cuda")


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"unknown cell 'lstmm'; known cells: \[.*'lstm'.*\]"):
        RecurrentStack("lstmm", 3, 4)
    with pytest.raises(TypeError, match=r"cell must be a name in .* or a Cell subclass, got 3"):
        RecurrentStack(3, 3, 4)
    with pytest.raises(ValueError, match=r"LSTM: kernel must be one of \('auto', 'fused', 'loop'.*\), "
                                         r"got 'fast'"):
        rnnkit.nn.LSTM(3, 4, kernel="fast")
    with pytest.raises(ValueError, match=r"num_layers must be an int >= 1, got 0"):
        rnnkit.nn.GRU(3, 4, num_layers=0)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\], got 1.5"):
        rnnkit.nn.GRU(3, 4, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match=r"input_size must be a positive int, got 0"):
        rnnkit.nn.RNN(0, 4)
    with pytest.raises(TypeError, match=r"hidden_size must be an int, got float 4.0"):
        rnnkit.nn.RNN(3, 4.0)
    with pytest.raises(ValueError, match=r"nonlinearity must be one of \('tanh', 'relu'\), got 'sigmoid'"):
        rnnkit.nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"proj_size must be smaller than hidden_size=4, got 4"):
        rnnkit.nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match=r"proj_size must be an int >= 0, got -1"):
        rnnkit.nn.LSTM(3, 4, proj_size=-1)


def test_cell_state_errors():
    with pytest.raises(ValueError, match=r"LSTMCell: expected a state of 2 tensor\(s\), got 1"):
        rnnkit.nn.LSTMCell(3, 4)(torch.randn(2, 3), torch.zeros(2, 4))
    with pytest.raises(TypeError, match=r"GRUCell: input dtype torch.float64 does not match "
                                        r"the parameters' dtype torch.float32"):
        rnnkit.nn.GRUCell(3, 4)(torch.randn(2, 3, dtype=torch.float64))
