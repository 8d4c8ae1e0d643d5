"""The Keras-style layers against the engine (`rnnkit.nn`) and the NumPy reference, with the same
weights converted by hand here (Keras (I, G*H) kernels -> PyTorch (G*H, I); GRU z,r,h -> r,z,n),
and masks against the brute-force rule "a masked step is skipped"."""
import numpy as np
import pytest
import torch

import rnnkit.nn as rnn
from rnnkit import reference
from rnnkit.keras import layers as L
from rnnkit.keras.layers import fast_path_unavailable


def torch_params(kind, kernel, rec, bias, H):
    """Keras weights -> PyTorch names (independent of rnnkit.keras's own converter)."""
    w_ih, w_hh = kernel.T.copy(), rec.T.copy()
    if bias.ndim == 2:
        b_ih, b_hh = bias[0].copy(), bias[1].copy()
    else:
        b_ih, b_hh = bias.copy(), np.zeros_like(bias)
    if kind == "gru":
        order = np.r_[np.arange(H, 2 * H), np.arange(0, H), np.arange(2 * H, 3 * H)]
        w_ih, w_hh, b_ih, b_hh = w_ih[order], w_hh[order], b_ih[order], b_hh[order]
    return {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}


CASES = [("rnn", L.SimpleRNN, rnn.RNN), ("lstm", L.LSTM, rnn.LSTM), ("gru", L.GRU, rnn.GRU)]


@pytest.mark.parametrize("kind,keras_cls,nn_cls", CASES)
def test_same_weights_same_outputs_as_engine_and_reference(kind, keras_cls, nn_cls):
    rng = np.random.default_rng(1)
    B, T, I, H = 3, 6, 4, 5
    x = rng.standard_normal((B, T, I))
    layer = keras_cls(H, return_sequences=True)
    layer(torch.zeros(1, T, I))
    weights = [w + 0.2 * rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(weights)
    params = torch_params(kind, *weights, H)

    engine = nn_cls(I, H, batch_first=True)
    engine.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    ours = layer(torch.from_numpy(x).float()).detach().numpy()
    theirs = engine(torch.from_numpy(x).float())[0].detach().numpy()
    assert np.abs(ours - theirs).max() < 1e-5

    ref_out = reference.rnn_forward(x.transpose(1, 0, 2),
                                    {k: v.astype(np.float64) for k, v in params.items()},
                                    mode=kind, hidden_size=H)[0].transpose(1, 0, 2)
    layer.double()
    ours64 = layer(torch.from_numpy(x)).detach().numpy()
    assert np.abs(ours64 - ref_out).max() < 1e-10


@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("mask_row", [[1, 1, 1, 0, 0, 0], [0, 1, 0, 1, 1, 0], [1, 0, 0, 0, 0, 1]])
def test_masked_steps_are_skipped(cls, mask_row):
    """Keras: a masked step keeps the state. So the final state equals running on the valid steps
    only, and (return_sequences) each output equals the last valid one so far (zero before any)."""
    torch.manual_seed(0)
    x = torch.randn(1, 6, 3)
    mask = torch.tensor([mask_row], dtype=torch.bool)
    layer = cls(4, return_sequences=True, return_state=True)
    out, h, *_ = layer(x, mask=mask)
    compact, hc, *_ = layer(x[:, mask[0]])
    assert torch.allclose(h, hc, atol=1e-6)
    k = 0
    for t in range(6):
        if mask_row[t]:
            assert torch.allclose(out[0, t], compact[0, k], atol=1e-6)
            k += 1
        else:
            expected = compact[0, k - 1] if k else torch.zeros(4)
            assert torch.allclose(out[0, t], expected, atol=1e-6)


def test_masks_flow_from_embedding_and_masking():
    ids = np.array([[4, 2, 7, 0, 0]])
    emb = L.Embedding(9, 3, mask_zero=True)
    rnn_layer = L.GRU(4)
    y_masked = rnn_layer(emb(ids))
    y_short = rnn_layer(emb(ids[:, :3]))
    assert torch.allclose(y_masked, y_short, atol=1e-6)
    x = torch.randn(1, 5, 3)
    x[0, 3:] = 0.0
    masking = L.Masking(0.0)
    assert torch.allclose(rnn_layer(masking(x)), rnn_layer(x[:, :3]), atol=1e-6)


def test_kernel_choice_follows_keras_conditions():
    def layer(**kw):
        l = L.LSTM(3, **kw)
        l(torch.zeros(1, 2, 2))
        return l
    assert fast_path_unavailable(layer(), step_mask=False, training=True) is None
    assert "recurrent_dropout" in fast_path_unavailable(layer(recurrent_dropout=0.2), step_mask=False,
                                                        training=True)
    assert fast_path_unavailable(layer(recurrent_dropout=0.2), step_mask=False, training=False) is None
    assert "sigmoid" in fast_path_unavailable(layer(recurrent_activation="hard_sigmoid"), step_mask=False,
                                              training=False)
    assert "unroll" in fast_path_unavailable(layer(unroll=True), step_mask=False, training=False)
    assert "right-padded" in fast_path_unavailable(layer(), step_mask=True, training=False)
    gru = L.GRU(3, reset_after=False)
    gru(torch.zeros(1, 2, 2))
    assert "reset_after" in fast_path_unavailable(gru, step_mask=False, training=False)
    with pytest.raises(ValueError, match="use_cudnn=True but the fused kernel cannot serve: unroll"):
        layer(unroll=True, use_cudnn=True)


@pytest.mark.parametrize("cls", [L.LSTM, L.GRU, L.SimpleRNN])
def test_fused_and_loop_kernels_agree(cls):
    torch.manual_seed(0)
    x = torch.randn(4, 7, 3)
    mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 2 + [0] * 5, [1] * 7], dtype=torch.bool)
    fast, slow = cls(5, return_sequences=True), cls(5, return_sequences=True, unroll=True)  # the loop
    fast(x)
    slow(x)
    slow.set_weights(fast.get_weights())
    for kw in ({}, {"mask": mask}):
        assert torch.allclose(fast(x, **kw), slow(x, **kw), atol=1e-6)


def test_recurrent_dropout_and_stateful():
    layer = L.LSTM(4, dropout=0.3, recurrent_dropout=0.3, return_sequences=True)
    x = torch.randn(8, 5, 3)
    layer(x)
    assert torch.equal(layer(x), layer(x))  # inference: no dropout
    layer.train()
    assert not torch.equal(layer(x), layer(x))
    stateful = L.GRU(4, stateful=True)
    whole = L.GRU(4)
    stateful(x[:, :2])
    whole(x)
    whole.set_weights(stateful.get_weights())
    stateful.reset_states()
    stateful(x[:, :2])
    assert torch.allclose(stateful(x[:, 2:]), whole(x), atol=1e-6)  # state carried across calls
    with pytest.raises(ValueError, match="batch size must stay 8"):
        stateful(x[:3])
