"""Property-based: for random shapes and lengths, rnnkit.nn agrees with torch.nn (float64).

torch.nn gets the lengths as a PackedSequence, rnnkit as ``lengths=``; padded outputs are zero in
both. Small example counts keep this fast; hypothesis shrinks any failure to a minimal case."""
from __future__ import annotations

import torch
from hypothesis import given, settings, strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit.nn


@st.composite
def problems(draw):
    T = draw(st.integers(1, 7))
    B = draw(st.integers(1, 5))
    lengths = draw(st.none() | st.lists(st.integers(1, T), min_size=B, max_size=B))
    return dict(T=T, B=B, I=draw(st.integers(1, 6)), H=draw(st.integers(1, 6)), lengths=lengths,
                name=draw(st.sampled_from(["RNN", "LSTM", "GRU"])),
                layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()),
                kernel=draw(st.sampled_from(["auto", "loop"])), seed=draw(st.integers(0, 2 ** 16)))


@settings(max_examples=40, deadline=None)
@given(p=problems())
def test_random_shapes_and_lengths_match_torch(p, assert_close):
    torch.manual_seed(p["seed"])
    kw = dict(num_layers=p["layers"], bidirectional=p["bidirectional"], dtype=torch.float64)
    theirs = getattr(torch.nn, p["name"])(p["I"], p["H"], **kw)
    ours = getattr(rnnkit.nn, p["name"])(p["I"], p["H"], kernel=p["kernel"], **kw)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(p["T"], p["B"], p["I"], dtype=torch.float64)
    if p["lengths"] is None:
        out_t, h_t = theirs(x)
        out_o, h_o = ours(x)
    else:
        packed = pack_padded_sequence(x, torch.tensor(p["lengths"]), enforce_sorted=False)
        out_t, h_t = theirs(packed)
        out_t = pad_packed_sequence(out_t, total_length=p["T"])[0]
        out_o, h_o = ours(x, lengths=p["lengths"])
    assert out_o.shape == out_t.shape
    assert_close(out_o, out_t, "output")
    h_t, h_o = (h_t, h_o) if isinstance(h_t, tuple) else ((h_t,), (h_o,))
    for i, (a, b) in enumerate(zip(h_o, h_t)):
        assert_close(a, b, f"final state {i}")
