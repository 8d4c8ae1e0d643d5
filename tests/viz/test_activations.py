"""`rnnkit.viz.activations`: the recorded states against torch.nn run on the same weights, the gates
against the cells' equations, the text properties against brute-force definitions, the correlations
against NumPy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.vocab import CharVocab, WordVocab
from rnnkit.tasks.lm import LanguageModel
from rnnkit.viz import activations
from rnnkit.viz.activations import correlate, text_properties

TEXT = 'def f(x):\n    return "a(b)" + [x, {1: 2}]\n\tpass\n"""doc"""\n'


def model_and_vocab(cell: str, layers: int = 2, embedding: int = 0):
    torch.manual_seed(0)
    vocab = CharVocab.from_text(TEXT + "xyz")
    return LanguageModel(len(vocab), cell=cell, hidden=12, layers=layers, embedding=embedding), vocab


def torch_layers(model, cls, x):
    """Each layer's outputs and final states from torch.nn, loaded with the stack's weights."""
    outs, finals = [], []
    sd = model.rnn.state_dict()
    for k in range(model.layers):
        ref = cls(x.shape[-1], model.hidden).double()
        ref.load_state_dict({f"{n}_l0": sd[f"{n}_l{k}"].double() for n in
                             ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
        x, final = ref(x)
        outs.append(x[:, 0])
        finals.append(final)
    return outs, finals


@pytest.mark.parametrize("embedding", [0, 6])
def test_lstm_states_and_gates_match_torch(embedding):
    model, vocab = model_and_vocab("lstm", embedding=embedding)
    acts = activations(model, TEXT, vocab=vocab)
    ids = torch.from_numpy(acts.ids)
    assert acts.text == TEXT and acts.unit_names()[:2] == ["L1 h0", "L1 h1"]
    x = model.inputs(ids.view(-1, 1)).double().detach()                      # (N, 1, I)
    outs, finals = torch_layers(model, torch.nn.LSTM, x)
    for k, layer in enumerate(acts.layers):
        np.testing.assert_allclose(layer.hidden, outs[k].detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(layer.cell[-1], finals[k][1][0, 0].detach().numpy(), atol=1e-5)
        # the recorded gates explain the recorded states: h = o * tanh(c), and c = f c_prev + i g
        i, f, o = layer.gates["i"], layer.gates["f"], layer.gates["o"]
        np.testing.assert_allclose(layer.hidden, o * np.tanh(layer.cell), atol=1e-5)
        c_prev = np.vstack([np.zeros((1, model.hidden)), layer.cell[:-1]])
        g = (layer.cell - f * c_prev) / np.where(np.abs(i) > 1e-3, i, np.nan)
        assert np.nanmax(np.abs(g)) <= 1 + 1e-3     # the candidate is a tanh
    logits, _ = model(ids[None])
    np.testing.assert_allclose(acts.probs, torch.softmax(logits[0], -1).detach().numpy(), atol=1e-5)


def test_gru_gates_reproduce_the_step():
    model, vocab = model_and_vocab("gru", layers=1)
    acts = activations((model, vocab), TEXT)
    layer = acts.layers[0]
    assert layer.cell is None and set(layer.gates) == {"r", "z"}
    x = model.inputs(torch.from_numpy(acts.ids).view(-1, 1)).double().detach()[:, 0]   # (N, V)
    outs, _ = torch_layers(model, torch.nn.GRU, x[:, None])
    np.testing.assert_allclose(layer.hidden, outs[0].detach().numpy(), atol=1e-5)
    c = model.rnn.cells[0]
    H = model.hidden
    W_ih, W_hh = c.weight_ih.double().detach(), c.weight_hh.double().detach()
    b_ih, b_hh = c.bias_ih.double().detach(), c.bias_hh.double().detach()
    h_prev = np.vstack([np.zeros((1, H)), layer.hidden[:-1]])
    r, z = layer.gates["r"], layer.gates["z"]
    n = np.tanh((x @ W_ih[2 * H:].T + b_ih[2 * H:]).numpy()
                + r * (h_prev @ W_hh[2 * H:].T.numpy() + b_hh[2 * H:].numpy()))
    np.testing.assert_allclose(layer.hidden, (1 - z) * n + z * h_prev, atol=1e-5)


def test_cells_without_recorded_gates_still_give_states():
    model, vocab = model_and_vocab("rnn", layers=1)
    acts = activations((model, vocab), TEXT)
    assert acts.layers[0].gates == {} and acts.layers[0].cell is None
    outs, _ = torch_layers(model, torch.nn.RNN, model.inputs(torch.from_numpy(acts.ids).view(-1, 1))
                           .double().detach())
    np.testing.assert_allclose(acts.layers[0].hidden, outs[0].detach().numpy(), atol=1e-5)
    assert acts.saturation() == [{}]


def test_saturation_fractions():
    model, vocab = model_and_vocab("lstm", layers=1)
    acts = activations((model, vocab), TEXT)
    left, right = acts.saturation()[0]["f"]
    f = acts.layers[0].gates["f"]
    for j in range(model.hidden):
        assert left[j] == sum(v < 0.1 for v in f[:, j]) / len(f)
        assert right[j] == sum(v > 0.9 for v in f[:, j]) / len(f)


def brute_properties(text: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in ("inside quotes", "inside brackets", "position in line",
                                                   "after newline", "indentation depth")}
    for t, ch in enumerate(text):
        before = text[:t]
        out["inside quotes"].append(float(before.count('"') % 2 == 1 or ch == '"'))
        depth = 0
        for c in before:   # closing brackets never take the depth below zero
            depth = depth + 1 if c in "([{" else max(0, depth - 1) if c in ")]}" else depth
        out["inside brackets"].append(float(depth > 0 or ch in "([{"))
        start = before.rfind("\n") + 1
        out["position in line"].append(float(t - start))
        out["after newline"].append(float(t > 0 and text[t - 1] == "\n"))
        line = text[start:].split("\n")[0]
        lead = line[:len(line) - len(line.lstrip(" \t"))]
        out["indentation depth"].append(float(lead.count(" ") + 4 * lead.count("\t")))
    return out


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet='ab "()[]{}\n\t', min_size=1, max_size=60))
def test_text_properties_match_brute_force(text):
    got = text_properties(text)
    for name, values in brute_properties(text).items():
        assert got[name].tolist() == values, name


def test_correlations_match_numpy():
    rng = np.random.default_rng(0)
    units = rng.standard_normal((50, 4))
    units[:, 3] = 1.0                                   # a constant unit
    prop = rng.standard_normal(50)
    r = correlate(units, {"p": prop, "flat": np.zeros(50)})
    for j in range(3):
        assert abs(r["p"][j] - np.corrcoef(units[:, j], prop)[0, 1]) < 1e-12
    assert np.isnan(r["p"][3]) and np.all(np.isnan(r["flat"]))


def test_bad_inputs_are_named():
    model, vocab = model_and_vocab("lstm", layers=1)
    with pytest.raises(ValueError, match="character-level"):
        activations(model, "a b", vocab=WordVocab.from_text("a b a b"))
    with pytest.raises(ValueError, match="non-empty"):
        activations(model, "", vocab=vocab)
    with pytest.raises(TypeError, match="vocab"):
        activations(model, "abc")
