"""`LanguageModel` against the same network built from torch.nn; every registered cell by name;
the evaluation sum against a brute-force computation."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rnnkit.cells import CELLS
from rnnkit.tasks.lm.model import LanguageModel, lm_loss, sum_log_loss

V, H, B, T = 11, 7, 3, 5


def copy_rnn(ours: LanguageModel, theirs: nn.Module) -> None:
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(dict(ours.rnn.named_parameters())[name])


def test_one_hot_model_equals_the_textbook_network():
    """d2l's RNNModel: one-hot(ids) -> torch.nn.LSTM -> Linear, time-major."""
    torch.manual_seed(0)
    ours = LanguageModel(V, "lstm", H, layers=2)
    lstm, head = nn.LSTM(V, H, 2), nn.Linear(H, V)
    copy_rnn(ours, lstm)
    head.load_state_dict(ours.head.state_dict())
    ids = torch.randint(0, V, (B, T))
    logits, (h, c) = ours(ids)
    out, (h2, c2) = lstm(F.one_hot(ids.t(), V).float())
    torch.testing.assert_close(logits, head(out).transpose(0, 1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h, h2)
    torch.testing.assert_close(c, c2)


def test_embedding_model_with_tied_weights_equals_torch_nn():
    torch.manual_seed(1)
    ours = LanguageModel(V, "gru", H, embedding=H, tie_weights=True)
    assert ours.head.weight is ours.embed.weight
    emb, gru = nn.Embedding(V, H), nn.GRU(H, H)
    emb.weight.data.copy_(ours.embed.weight)
    copy_rnn(ours, gru)
    ids = torch.randint(0, V, (B, T))
    out, _ = gru(emb(ids.t()))
    expected = F.linear(out, emb.weight, ours.head.bias).transpose(0, 1)
    torch.testing.assert_close(ours(ids)[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_every_registered_cell_trains_and_steps_like_it_runs(cell):
    """Any cell of the registry by name: a gradient reaches every parameter, and feeding tokens one
    at a time through ``step`` gives the logits of the whole-sequence forward."""
    torch.manual_seed(2)
    model = LanguageModel(V, cell, H, layers=2, embedding=4).eval()
    ids = torch.randint(0, V, (B, T))
    loss, _ = lm_loss(model, ids, ids.roll(-1, 1))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    logits, _ = model(ids)
    state, steps = None, []
    for t in range(T):
        out, state = model.step(ids[:, t], state)
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps, 1), logits, rtol=1e-5, atol=1e-5)


def test_configuration_errors_name_the_problem():
    with pytest.raises(ValueError, match="bidirectional.*backward direction reads the tokens after it"):
        LanguageModel(V, bidirectional=True)
    with pytest.raises(ValueError, match="tie_weights needs embedding == hidden.*embedding=0, hidden=7"):
        LanguageModel(V, hidden=7, tie_weights=True)
    with pytest.raises(ValueError, match=r"unknown cell 'lsmt'; known cells: \["):
        LanguageModel(V, cell="lsmt")
    with pytest.raises(ValueError, match="dropout must be a number in"):
        LanguageModel(V, dropout=1.0)


@pytest.mark.parametrize("n", [2, 9, 50, 123])
def test_sum_log_loss_scores_every_token_once(n):
    """Against a brute force: the same streams run one by one over the whole text, the leftover
    tokens continuing the last stream from its state."""
    torch.manual_seed(3)
    model = LanguageModel(V, "lstm", H, embedding=5).eval()
    ids = torch.randint(0, V, (n,))
    total, count = sum_log_loss(model, ids, max_streams=4, min_stream=10, chunk_elements=V * 4 * 3)
    assert count == n - 1
    S = max(1, min(4, (n - 1) // 10))
    L = (n - 1) // S
    expected, state = 0.0, None
    with torch.no_grad():
        for s in range(S):
            logits, state = model(ids[s * L:(s + 1) * L].view(1, -1))
            expected += F.cross_entropy(logits[0], ids[s * L + 1:(s + 1) * L + 1], reduction="sum")
        if S * L < n - 1:
            logits, _ = model(ids[S * L:n - 1].view(1, -1), state)
            expected += F.cross_entropy(logits[0], ids[S * L + 1:], reduction="sum")
    assert total == pytest.approx(float(expected), rel=1e-5)
    assert math.isfinite(total)


def test_indrnn_language_model_bounds_its_recurrent_weights_and_keeps_the_bound():
    """Unbounded, a relu IndRNN diverged with the default recipe; the LM bounds |u| by
    2^(1/seq_len) unless told otherwise, and config() carries the bound so a loaded model equals it."""
    from rnnkit.tasks.lm.config import LMConfig
    kw = LMConfig(cell="indrnn", seq_len=35, layers=1).model_kwargs()
    assert kw["recurrent_max_abs"] == pytest.approx(2 ** (1 / 35))
    assert "recurrent_max_abs" not in LMConfig(cell="lstm", layers=1).model_kwargs()
    assert LMConfig(cell="indrnn", layers=1, recurrent_max_abs=1.5).model_kwargs()["recurrent_max_abs"] == 1.5
    m = LanguageModel(20, **{**kw, "dropout": 0.0})
    assert all(c.recurrent_max_abs == pytest.approx(2 ** (1 / 35)) for c in m.rnn.cells)
    again = LanguageModel(**m.config())
    again.load_state_dict(m.state_dict())
    x = torch.randint(0, 20, (3, 9))
    torch.testing.assert_close(again(x)[0], m(x)[0])
