"""Layer shapes, parameter counts (Keras's published rules), weight layout and bad input."""
import numpy as np
import pytest
import torch

from rnnkit import keras
from rnnkit.keras import layers as L


def built(layer, shape):
    keras.Sequential([keras.Input(shape), layer])
    return layer


# Keras's rules: SimpleRNN H(I+H+1); LSTM 4H(I+H+1); GRU 3H(I+H+1) (+3H with reset_after);
# no bias: drop the +1 terms.
@pytest.mark.parametrize("I,H", [(5, 3), (10, 10), (1, 7)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_recurrent_parameter_counts_follow_keras_rules(I, H, use_bias):
    b = 1 if use_bias else 0
    expected = {
        "SimpleRNN": H * (I + H + b), "LSTM": 4 * H * (I + H + b),
        "GRU": 3 * H * (I + H + 2 * b), "GRU_before": 3 * H * (I + H + b),
    }
    for name, count in expected.items():
        cls = getattr(L, name.split("_")[0])
        extra = {"reset_after": False} if name == "GRU_before" else {}
        layer = built(cls(H, use_bias=use_bias, **extra), (4, I))
        assert layer.count_params() == count, name
        assert layer.count_params() == sum(w.size for w in layer.get_weights())
    bi = built(L.Bidirectional(L.LSTM(H, use_bias=use_bias)), (4, I))
    assert bi.count_params() == 2 * expected["LSTM"]


def test_issue_examples_counts():
    model = keras.Sequential([L.SimpleRNN(3, input_shape=(1, 5)), L.Dense(5, activation="softmax")])
    assert [l.count_params() for l in model.layers] == [27, 20]
    assert built(L.LSTM(10), (7, 10)).count_params() == 840


@pytest.mark.parametrize("cls,G", [(L.SimpleRNN, 1), (L.LSTM, 4), (L.GRU, 3)])
def test_weight_layout_is_keras(cls, G):
    layer = built(cls(6), (3, 4))
    shapes = [w.shape for w in layer.get_weights()]
    bias = (2, 3 * 6) if cls is L.GRU else (G * 6,)
    assert shapes == [(4, G * 6), (6, G * 6), bias]
    lstm = built(L.LSTM(6), (3, 4))  # unit_forget_bias: forget block (i, f, c, o) starts at one
    np.testing.assert_array_equal(lstm.get_weights()[2], np.r_[np.zeros(6), np.ones(6), np.zeros(12)])
    rec = lstm.get_weights()[1]  # (H, 4H) orthogonal: orthonormal rows, as Keras's Orthogonal()
    np.testing.assert_allclose(rec @ rec.T, np.eye(6), atol=1e-5)


@pytest.mark.parametrize("opts,expected", [
    ({}, [(2, 4)]), ({"return_sequences": True}, [(2, 7, 4)]),
    ({"return_state": True}, [(2, 4), (2, 4), (2, 4)]),
    ({"return_sequences": True, "return_state": True}, [(2, 7, 4), (2, 4), (2, 4)]),
])
def test_lstm_output_shapes(opts, expected):
    layer = L.LSTM(4, **opts)
    out = layer(np.zeros((2, 7, 3), "float32"))
    out = list(out) if isinstance(out, tuple) else [out]
    assert [tuple(o.shape) for o in out] == expected
    symbolic = L.LSTM(4, **opts)(keras.Input((7, 3)))
    symbolic = symbolic if isinstance(symbolic, list) else [symbolic]
    assert [t.shape[1:] for t in symbolic] == [e[1:] for e in expected]


@pytest.mark.parametrize("merge,width", [("concat", 10), ("sum", 5), ("mul", 5), ("ave", 5)])
def test_bidirectional_shapes_and_merge(merge, width):
    x = torch.randn(2, 6, 3)
    bi = L.Bidirectional(L.GRU(5, return_sequences=True), merge_mode=merge)
    y = bi(x)
    assert tuple(y.shape) == (2, 6, width)
    fwd = bi.forward_layer(x)
    bwd = bi.backward_layer(x).flip(1)  # the backward layer's outputs come in reversed time order
    ref = {"concat": torch.cat([fwd, bwd], -1), "sum": fwd + bwd, "mul": fwd * bwd,
           "ave": (fwd + bwd) / 2}[merge]
    assert torch.allclose(y, ref, atol=1e-6)
    outs = L.Bidirectional(L.LSTM(5, return_state=True))(x)
    assert [tuple(o.shape) for o in outs] == [(2, 10)] + [(2, 5)] * 4


def test_core_layers_shapes():
    x = torch.randn(2, 4)
    assert tuple(L.RepeatVector(3)(x).shape) == (2, 3, 4)
    assert tuple(L.Flatten()(torch.randn(2, 3, 4)).shape) == (2, 12)
    assert tuple(L.Concatenate()([torch.randn(2, 3, 4), torch.randn(2, 3, 2)]).shape) == (2, 3, 6)
    td = L.TimeDistributed(L.Dense(5))
    seq = torch.randn(2, 3, 4)
    y = td(seq)
    per_step = torch.stack([td.layer(seq[:, t]) for t in range(3)], 1)
    assert torch.allclose(y, per_step, atol=1e-6)
    assert td.count_params() == 4 * 5 + 5
    emb = L.Embedding(10, 3)
    assert tuple(emb(np.array([[1, 2, 9]])).shape) == (1, 3, 3)
    assert emb.count_params() == 30


def test_set_weights_roundtrip_and_errors():
    a, b = built(L.GRU(4), (3, 2)), built(L.GRU(4), (3, 2))
    b.set_weights(a.get_weights())
    x = torch.randn(5, 3, 2)
    assert torch.equal(a(x), b(x))
    with pytest.raises(ValueError, match=r"expected a list of 3 arrays"):
        b.set_weights(a.get_weights()[:2])
    with pytest.raises(ValueError, match=r"weight 0 must have shape \(2, 12\)"):
        b.set_weights([np.zeros((3, 12))] + a.get_weights()[1:])
    with pytest.raises(ValueError, match="not built yet"):
        L.LSTM(3).set_weights([np.zeros((2, 12))])


def test_bad_input_errors_are_clear():
    with pytest.raises(ValueError, match=r"expected input with 3 dimensions \(B, T, I\)"):
        keras.Sequential([L.LSTM(4, input_shape=(5,))])
    layer = built(L.LSTM(4), (7, 3))
    with pytest.raises(ValueError, match=r"expected input of shape \(B, T, I=3\), got \(2, 7, 5\)"):
        layer(torch.randn(2, 7, 5))
    with pytest.raises(TypeError, match="Embedding layer first"):
        layer(torch.ones(2, 7, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="units must be a positive int"):
        L.GRU(0)
    with pytest.raises(TypeError, match="unknown keyword argument"):
        L.SimpleRNN(3, recurrent_activation="sigmoid")
    with pytest.raises(ValueError, match="unknown activation 'tanhh'"):
        L.Dense(3, activation="tanhh")
    with pytest.raises(ValueError, match="token id 10 is out of range for input_dim=10"):
        L.Embedding(10, 2)(np.array([[1, 10]]))
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        L.Bidirectional(L.LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="kernel_regularizer is not supported"):
        L.LSTM(2, kernel_regularizer="l2")


def test_layers_are_torch_modules_and_mix_with_pytorch():
    model = torch.nn.Sequential(L.LSTM(8, return_sequences=True), L.GRU(4), torch.nn.Linear(4, 1))
    x, y = torch.randn(16, 5, 3), torch.randn(16, 1)
    model(x)  # builds the Keras layers
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = None
    for _ in range(20):
        loss = torch.nn.functional.mse_loss(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    names = [n for n, _ in model.named_parameters()][:3]
    assert names == ["0.kernel", "0.recurrent_kernel", "0.bias"]


def test_keras_layers_start_in_inference_mode():
    d = L.Dropout(0.5)
    x = torch.ones(100, 10)
    assert torch.equal(d(x), x)  # like Keras: a direct call is inference
    d.train()
    assert (d(x) == 0).any()
