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
