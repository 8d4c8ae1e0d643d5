"""`rnnkit.decode.Sampler` against the plain step loop: ``torch.nn``'s own module called one token
at a time, tokens drawn by the same `rnnkit.decode.sample_next` with a generator seeded alike."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit.nn
from rnnkit.decode import Sampler, sample_next

V, E, H = 11, 5, 7


def model(kind: str, dtype, one_hot: bool = False, **kw):
    torch.manual_seed(0)
    cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind]
    emb = None if one_hot else nn.Embedding(V, E).to(dtype)
    stack = cls(V if one_hot else E, H, 2, **kw).to(dtype)
    return emb, stack, nn.Linear(H, V).to(dtype)


def plain_loop(emb, stack, head, prompt, length, generator, **sampling):
    """The textbook generation loop: the module's forward on one token per call."""
    def inputs(ids):  # (T, B) -> (T, B, I)
        if emb is None:
            return nn.functional.one_hot(ids, V).to(head.weight.dtype)
        return emb(ids)
    toks, probs = [], []
    with torch.inference_mode():
        out, state = stack(inputs(prompt.t()))
        logits = head(out[-1])
        for i in range(length):
            probs.append(logits.softmax(-1))
            tok = sample_next(logits, generator=generator, **sampling)
            toks.append(tok)
            if i + 1 < length:
                out, state = stack(inputs(tok.unsqueeze(0)), state)
                logits = head(out[0])
    return torch.stack(toks, 1), torch.stack(probs, 1)


SAMPLINGS = [dict(temperature=1.0), dict(temperature=0.7, top_k=4), dict(temperature=1.3, top_p=0.8)]


@pytest.mark.parametrize("sampling", SAMPLINGS, ids=["t1", "topk", "topp"])
@pytest.mark.parametrize("kind,kw", [("lstm", {}), ("gru", {}), ("rnn", {}),
                                     ("rnn", {"nonlinearity": "relu"})], ids=["lstm", "gru", "tanh", "relu"])
def test_same_tokens_as_the_plain_loop_in_float64(kind, kw, sampling):
    emb, stack, head = model(kind, torch.float64, **kw)
    sampler = Sampler(stack, emb, head)
    assert sampler.fast_path_unavailable() is None
    prompt = torch.randint(0, V, (3, 4), generator=torch.Generator().manual_seed(1))
    ours = sampler.generate(40, prompt=prompt, generator=torch.Generator().manual_seed(5), **sampling)
    theirs, _ = plain_loop(emb, stack, head, prompt, 40, torch.Generator().manual_seed(5), **sampling)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("one_hot", [False, True], ids=["embedding", "one-hot"])
def test_float32_probabilities_agree_and_greedy_text_is_identical(kind, one_hot):
    emb, stack, head = model(kind, torch.float32, one_hot=one_hot)
    sampler = Sampler(stack, emb, head)
    prompt = torch.tensor([[1, 2, 3]])
    greedy, probs = plain_loop(emb, stack, head, prompt, 30, None, temperature=0)
    assert torch.equal(sampler.generate(30, prompt=prompt, temperature=0), greedy)
    logits, state = sampler.prime(prompt)
    for t in range(30):  # the sampler's own step, fed the plain loop's tokens
        assert float((logits.softmax(-1) - probs[:, t]).abs().max()) < 1e-6, f"step {t}"
        logits, state = sampler.step(greedy[:, t], state)


def test_rnnkit_stack_and_batched_generation():
    torch.manual_seed(0)
    emb, head = nn.Embedding(V, E).double(), nn.Linear(H, V).double()
    ours = rnnkit.nn.LSTM(E, H, 2, dtype=torch.float64)
    theirs = nn.LSTM(E, H, 2).double()
    theirs.load_state_dict(ours.state_dict())
    got = Sampler(ours, emb, head).generate(25, batch=5, generator=torch.Generator().manual_seed(3))
    start = torch.zeros(5, 1, dtype=torch.long)
    want, _ = plain_loop(emb, theirs, head, start, 25, torch.Generator().manual_seed(3))
    assert got.shape == (5, 25) and torch.equal(got, want)


def test_cells_without_a_fast_step_use_the_stack_forward():
    torch.manual_seed(0)
    stack = rnnkit.nn.GRU(E, H, 2, reset_after=False, dtype=torch.float64)
    emb, head = nn.Embedding(V, E).double(), nn.Linear(H, V).double()
    sampler = Sampler(stack, emb, head)
    assert "not a stack of stock cells" in sampler.fast_path_unavailable()
    prompt = torch.tensor([[4, 2]])
    got = sampler.generate(15, prompt=prompt, generator=torch.Generator().manual_seed(2))
    want, _ = plain_loop(emb, stack, head, prompt, 15, torch.Generator().manual_seed(2))
    assert torch.equal(got, want)


def test_bad_arguments():
    emb, stack, head = model("lstm", torch.float32)
    with pytest.raises(ValueError, match="bidirectional"):
        Sampler(nn.LSTM(E, H, bidirectional=True), emb, head)
    with pytest.raises(TypeError, match="head must be an nn.Linear"):
        Sampler(stack, emb, nn.Identity())
    with pytest.raises(ValueError, match="length must be an int >= 1, got 0"):
        Sampler(stack, emb, head).generate(0)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("kind,kw", [("lstm", {}), ("gru", {}), ("rnn", {}),
                                     ("rnn", {"nonlinearity": "relu"})], ids=["lstm", "gru", "tanh", "relu"])
@pytest.mark.parametrize("batch", [1, 3])
def test_native_step_equals_the_pytorch_step(kind, kw, batch, dtype, tol):
    from rnnkit.core import native
    if native.unavailable() is not None:
        pytest.skip(native.unavailable())   # the PyTorch step is then the only one, tested above
    emb, stack, head = model(kind, dtype, **kw)
    fast = Sampler(stack, emb, head)
    assert fast._native is not None          # the C++ step is the one the other tests exercise
    slow = Sampler(stack, emb, head)
    slow._native = None
    state = tuple(torch.randn(2, batch, H, dtype=dtype) for _ in range(2 if kind == "lstm" else 1))
    s_fast, s_slow = [tuple(s.clone() for s in state) for _ in range(2)]
    for t in range(5):
        ids = torch.randint(0, V, (batch,))
        a, b = fast._fast_step(ids, s_fast), slow._fast_step(ids, s_slow)
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
        for x, y in zip(s_fast, s_slow):
            torch.testing.assert_close(x, y, rtol=tol, atol=tol)


def _bf16(t):
    return t.to(torch.bfloat16).double()


def _reference_bf16_step(kind, kw, emb, stack, head, ids, state):
    """One step in float64 from the operands the bf16 step multiplies: every recurrent, stacked and
    head weight and every state fed to a product rounded to bf16 (to nearest even); layer 0's input
    part (the folded table) from the unrounded embedding and W_ih, as the sampler folds it in fp32."""
    cell_cls = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}[kind]
    h_all = state[0].double()
    c_all = state[1].double() if kind == "lstm" else None
    x = emb(ids).double()
    new_h, new_c = [], []
    for k in range(stack.num_layers):
        cell = cell_cls(x.shape[1], H, **kw).double()
        w_ih = getattr(stack, f"weight_ih_l{k}").double()
        with torch.no_grad():
            cell.weight_ih.copy_(w_ih if k == 0 else _bf16(w_ih))
            cell.weight_hh.copy_(_bf16(getattr(stack, f"weight_hh_l{k}")))
            cell.bias_ih.copy_(getattr(stack, f"bias_ih_l{k}").double())
            cell.bias_hh.copy_(getattr(stack, f"bias_hh_l{k}").double())
            xin = x if k == 0 else _bf16(x)
            if kind == "lstm":
                h, c = cell(xin, (_bf16(h_all[k]), c_all[k]))
                new_c.append(c)
            elif kind == "gru":   # the products read the rounded h; the interpolation the exact one
                gi = xin @ cell.weight_ih.t() + cell.bias_ih
                gh = _bf16(h_all[k]) @ cell.weight_hh.t() + cell.bias_hh
                r, z = torch.sigmoid(gi[:, :H] + gh[:, :H]), torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
                n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
                h = (1 - z) * n + z * h_all[k]
            else:
                h = cell(xin, _bf16(h_all[k]))
        new_h.append(h)
        x = h
    with torch.no_grad():
        logits = head.bias.double() + _bf16(x) @ _bf16(head.weight).t()
    return logits, torch.stack(new_h), (torch.stack(new_c) if new_c else None)


@pytest.mark.parametrize("kind,kw", [("lstm", {}), ("gru", {}), ("rnn", {}),
                                     ("rnn", {"nonlinearity": "relu"})], ids=["lstm", "gru", "tanh", "relu"])
@pytest.mark.parametrize("batch", [1, 3, 12])     # 12: past the streaming kernel's few rows (MKL's GEMM)
@pytest.mark.parametrize("native_step", [True, False])
def test_bf16_step_is_the_float64_step_of_the_bf16_operands(kind, kw, batch, native_step):
    emb, stack, head = model(kind, torch.float32, **kw)
    sampler = Sampler(stack, emb, head, precision="bf16")
    if not native_step:
        sampler._native = None
    elif sampler._native is None:
        from rnnkit.core import native
        pytest.skip(native.unavailable())
    state = tuple(torch.randn(2, batch, H) for _ in range(2 if kind == "lstm" else 1))
    for t in range(4):
        ids = torch.randint(0, V, (batch,))
        ref_logits, ref_h, ref_c = _reference_bf16_step(kind, kw, emb, stack, head, ids, state)
        logits, new = sampler.step(ids, state)
        assert logits.dtype == torch.float32 and new[0].dtype == torch.float32
        torch.testing.assert_close(logits.double(), ref_logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(new[0].double(), ref_h, rtol=1e-5, atol=1e-5)
        if ref_c is not None:
            torch.testing.assert_close(new[1].double(), ref_c, rtol=1e-5, atol=1e-5)
        state = new
    full = Sampler(stack, emb, head)               # and bf16 is close to fp32, as rounding allows
    a, _ = full.step(ids, state)
    b, _ = sampler.step(ids, state)
    assert (a - b).abs().max() < 0.05


def test_bf16_is_refused_where_it_cannot_apply():
    emb, stack, head = model("lstm", torch.float64)
    with pytest.raises(ValueError, match="bf16' needs a float32 model"):
        Sampler(stack, emb, head, precision="bf16")
    emb, stack, head = model("lstm", torch.float32, proj_size=3)
    with pytest.raises(ValueError, match="bf16' needs the fast step"):
        Sampler(stack, emb, nn.Linear(3, V), precision="bf16")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        Sampler(stack, emb, nn.Linear(3, V), precision="fp16")
