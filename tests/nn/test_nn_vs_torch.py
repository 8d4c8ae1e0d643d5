"""`rnnkit.nn.RNN/LSTM/GRU` against `torch.nn.RNN/LSTM/GRU` with the same weights.

Many configurations (cell, layers, directions, batch_first, projection, lengths / packed / plain /
unbatched input, initial state, dtype, bias), each run by both models through a loss that weighs
every output and final state; outputs, final states and the gradients of every parameter, the input
and the initial state must agree. Done for ``kernel="auto"`` (fused) and ``kernel="loop"``."""
from __future__ import annotations

import random

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnnkit.nn

# torch.nn itself warns that oneDNN has no LSTM projection (it falls back); not our concern here
pytestmark = pytest.mark.filterwarnings(
    "ignore:LSTM with projections is not supported with oneDNN")

CELL_KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
INPUT_KINDS = ("plain", "lengths", "packed", "unbatched")


def make_config(i: int) -> dict:
    """Configuration ``i``: cell and input kind cycle systematically, dtype by blocks of 16 (so all
    combinations appear), everything else is drawn at random from a seed of ``i``."""
    rng = random.Random(1000 + i)
    cell, kind = CELL_KINDS[i % 4], INPUT_KINDS[(i // 4) % 4]
    return dict(
        i=i, cell=cell, input=kind,
        dtype=(torch.float64, torch.float32)[(i // 16) % 2],
        layers=rng.randint(1, 3), bidirectional=rng.random() < 0.5,
        batch_first=rng.random() < 0.5, bias=rng.random() < 0.75,
        proj=rng.choice((0, 2, 3)) if cell == "lstm" else 0,
        given_state=rng.random() < 0.5, T=rng.randint(1, 6), B=rng.randint(1, 4),
        I=rng.randint(1, 5), H=rng.randint(4, 6), seed=i,
        lengths_as_list=rng.random() < 0.5, enforce_sorted=rng.random() < 0.5,
        torch_to_ours=rng.random() < 0.5,
    )


CONFIGS = [make_config(i) for i in range(64)]


def config_id(c: dict) -> str:
    parts = [f"{c['i']}", c["cell"], c["input"], str(c["dtype"]).split(".")[-1], f"L{c['layers']}"]
    parts += ["bi"] * c["bidirectional"] + ["bf"] * c["batch_first"] + ["nobias"] * (not c["bias"])
    parts += [f"proj{c['proj']}"] * bool(c["proj"]) + ["h0"] * c["given_state"]
    return "-".join(parts)


def build_pair(c: dict, kernel: str):
    """Equal-weight ``(ours, torch)`` modules for configuration ``c``."""
    kw = dict(num_layers=c["layers"], bias=c["bias"], batch_first=c["batch_first"],
              bidirectional=c["bidirectional"], dtype=c["dtype"])
    if c["cell"] == "lstm":
        kw["proj_size"] = c["proj"]
    if c["cell"].startswith("rnn"):
        kw["nonlinearity"] = c["cell"][4:]
    name = {"lstm": "LSTM", "gru": "GRU"}.get(c["cell"], "RNN")
    torch.manual_seed(c["seed"])
    theirs = getattr(torch.nn, name)(c["I"], c["H"], **kw)
    ours = getattr(rnnkit.nn, name)(c["I"], c["H"], kernel=kernel, **kw)
    if c["torch_to_ours"]:
        ours.load_state_dict(theirs.state_dict())
    else:
        theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def make_inputs(c: dict):
    """Input tensor (leaf), lengths or None, initial states (leaves) or None."""
    g = torch.Generator().manual_seed(c["seed"] + 7)
    T, B, I, dt = c["T"], c["B"], c["I"], c["dtype"]
    D = 2 if c["bidirectional"] else 1
    H_out = c["proj"] or c["H"]
    unbatched = c["input"] == "unbatched"
    shape = (T, I) if unbatched else ((B, T, I) if c["batch_first"] else (T, B, I))
    x = torch.randn(shape, generator=g, dtype=dt)
    lengths = None
    if c["input"] in ("lengths", "packed"):
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        if c["enforce_sorted"] and c["input"] == "packed":
            lengths = lengths.sort(descending=True).values
    states = None
    if c["given_state"]:
        lead = (c["layers"] * D,) if unbatched else (c["layers"] * D, B)
        states = [torch.randn(lead + (H_out,), generator=g, dtype=dt)]
        if c["cell"] == "lstm":
            states.append(torch.randn(lead + (c["H"],), generator=g, dtype=dt))
    return x, lengths, states


def leaf(t):
    return None if t is None else t.clone().requires_grad_(True)


def run_torch(model, c, x, lengths, states):
    hx = None if states is None else (tuple(states) if c["cell"] == "lstm" else states[0])
    if c["input"] == "lengths":
        seq = pack_padded_sequence(x, lengths, batch_first=c["batch_first"], enforce_sorted=False)
        out, hn = model(seq, hx)
        out = pad_packed_sequence(out, batch_first=c["batch_first"], total_length=c["T"])[0]
    elif c["input"] == "packed":
        out, hn = model(pack_padded_sequence(x, lengths, batch_first=c["batch_first"],
                                             enforce_sorted=c["enforce_sorted"]), hx)
    else:
        out, hn = model(x, hx)
    return out, (hn if isinstance(hn, tuple) else (hn,))


def run_ours(model, c, x, lengths, states):
    hx = None if states is None else (tuple(states) if c["cell"] == "lstm" else states[0])
    if c["input"] == "lengths":
        arg = lengths.tolist() if c["lengths_as_list"] else lengths
        out, hn = model(x, hx, lengths=arg)
    elif c["input"] == "packed":
        out, hn = model(pack_padded_sequence(x, lengths, batch_first=c["batch_first"],
                                             enforce_sorted=c["enforce_sorted"]), hx)
    else:
        out, hn = model(x, hx)
    return out, (hn if isinstance(hn, tuple) else (hn,))


def weighted_loss(out, states, seed):
    """A loss that weighs every element differently, so every gradient path is exercised."""
    g = torch.Generator().manual_seed(seed)
    data = out.data if isinstance(out, PackedSequence) else out
    loss = (data * torch.randn(data.shape, generator=g, dtype=data.dtype)).sum()
    for s in states:
        loss = loss + (s * torch.randn(s.shape, generator=g, dtype=s.dtype)).sum()
    return loss


@pytest.mark.parametrize("kernel", ["auto", "loop"])
@pytest.mark.parametrize("c", CONFIGS, ids=config_id)
def test_matches_torch_nn(c, kernel, assert_close, assert_grads_close):
    ours, theirs = build_pair(c, kernel)
    assert ours.kernel == ("loop" if kernel == "loop" else "fused")
    x, lengths, states = make_inputs(c)
    xo, xt = leaf(x), leaf(x)
    so = None if states is None else [leaf(s) for s in states]
    st = None if states is None else [leaf(s) for s in states]
    out_o, fin_o = run_ours(ours, c, xo, lengths, so)
    out_t, fin_t = run_torch(theirs, c, xt, lengths, st)

    if c["input"] == "packed":
        assert isinstance(out_o, PackedSequence)
        assert torch.equal(out_o.batch_sizes, out_t.batch_sizes)
        for a, b in ((out_o.sorted_indices, out_t.sorted_indices),
                     (out_o.unsorted_indices, out_t.unsorted_indices)):
            assert (a is None and b is None) or torch.equal(a, b)
        assert_close(out_o.data, out_t.data, "output (packed data)")
    else:
        assert_close(out_o, out_t, "output")
    assert len(fin_o) == len(fin_t)
    for name, a, b in zip(("h_n", "c_n"), fin_o, fin_t):
        assert_close(a, b, name)

    weighted_loss(out_o, fin_o, c["seed"]).backward()
    weighted_loss(out_t, fin_t, c["seed"]).backward()
    assert_grads_close(ours, theirs)
    assert_close(xo.grad, xt.grad, "gradient of the input")
    if states is not None:
        for name, a, b in zip(("h0", "c0"), so, st):
            assert_close(a.grad, b.grad, f"gradient of {name}")


@pytest.mark.parametrize("name,kw", [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("GRU", {}),
                                     ("LSTM", {}), ("LSTM", {"proj_size": 2})])
@pytest.mark.parametrize("layers,bidirectional,bias", [(1, False, True), (3, True, True), (2, True, False)])
def test_state_dict_keys_and_loading_both_ways(name, kw, layers, bidirectional, bias):
    theirs = getattr(torch.nn, name)(3, 4, num_layers=layers, bidirectional=bidirectional,
                                     bias=bias, **kw)
    ours = getattr(rnnkit.nn, name)(3, 4, num_layers=layers, bidirectional=bidirectional,
                                    bias=bias, **kw)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        assert ours.state_dict()[k].shape == v.shape, k
    theirs.load_state_dict(ours.state_dict())  # strict: same keys, same shapes
    for k, v in ours.state_dict().items():
        assert torch.equal(theirs.state_dict()[k], v), k
    fresh = getattr(torch.nn, name)(3, 4, num_layers=layers, bidirectional=bidirectional,
                                    bias=bias, **kw)
    ours.load_state_dict(fresh.state_dict())
    for k, v in fresh.state_dict().items():
        assert torch.equal(ours.state_dict()[k], v), k
    # the cells the engine runs see the loaded weights (not stale copies)
    x = torch.randn(5, 2, 3)
    assert torch.allclose(ours(x)[0], fresh(x)[0], atol=1e-6)
    loop = getattr(rnnkit.nn, name)(3, 4, num_layers=layers, bidirectional=bidirectional,
                                    bias=bias, kernel="loop", **kw)
    loop.load_state_dict(fresh.state_dict())
    assert torch.allclose(loop(x)[0], fresh(x)[0], atol=1e-6)


def test_to_dtype_and_parameter_updates_reach_the_engine(assert_close):
    """Module-level ``.double()`` and in-place optimiser steps must be seen by both kernels."""
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(3, 4, num_layers=2).double()
    for kernel in ("auto", "loop"):
        ours = rnnkit.nn.LSTM(3, 4, num_layers=2, kernel=kernel).double()
        ours.load_state_dict(theirs.state_dict())
        opt = torch.optim.SGD(ours.parameters(), lr=0.1)
        x = torch.randn(4, 2, 3, dtype=torch.float64)
        ours(x)[0].sum().backward()
        opt.step()
        ref = torch.nn.LSTM(3, 4, num_layers=2).double()
        ref.load_state_dict(ours.state_dict())
        assert_close(ours(x)[0], ref(x)[0], f"output after an optimiser step ({kernel})")
