"""The Sampler generates from every registered cell, stock or not (regression: it passed only ``h`` to a
layer-norm LSTM's stack, which wants ``(h, c)``, so `rnnkit generate` on an lnlstm run raised).

The oracle is independent of the Sampler's stepping: the stack's whole-sequence forward over the prompt
and the generated tokens (teacher forcing) must pick each generated token as its greedy choice, and give
the same logits the Sampler stepped to.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnkit.cells import CELLS
from rnnkit.core.stack import RecurrentStack
from rnnkit.decode import Sampler

V, E, H, L = 11, 6, 8, 2
LENGTH = 20


def _model(cell: str):
    torch.manual_seed(3)
    stack = RecurrentStack(cell, E, H, num_layers=L).eval()
    return stack, nn.Embedding(V, E), nn.Linear(H, V)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_sampler_generates_from_every_cell(cell):
    stack, embed, head = _model(cell)
    sampler = Sampler(stack, embed, head)
    n_states = len(stack.cells[0].state_shapes)
    assert len(sampler.init_state(3)) == n_states
    prompt = torch.randint(0, V, (3, 4), generator=torch.Generator().manual_seed(1))
    tokens = sampler.generate(LENGTH, prompt=prompt, temperature=0)
    assert tokens.shape == (3, LENGTH)

    # teacher forcing through the stack's own forward: each token is the argmax after what preceded it
    seq = torch.cat([prompt, tokens[:, :-1]], 1)
    with torch.no_grad():
        out, _ = stack(embed(seq.t()))
        logits = head(out).transpose(0, 1)[:, prompt.shape[1] - 1:]     # (3, LENGTH, V)
    # (compared by score, so a near-tie rounded differently by the two kernels cannot flip the test)
    chosen = logits.gather(2, tokens.unsqueeze(2)).squeeze(2)
    gap = float((logits.amax(-1) - chosen).max())
    assert gap <= 1e-5, f"{cell}: a generated token scores {gap:.2e} below the greedy one"

    # the public step takes and returns the whole state, starting from init_state
    state = sampler.init_state(3)
    with torch.no_grad():
        out0, s0 = stack(embed(prompt[:, :1].t()))
    step_logits, s1 = sampler.step(prompt[:, 0], state)
    assert len(s1) == n_states
    for a, b in zip(s1, s0):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(step_logits, head(out0[0]), rtol=1e-5, atol=1e-5)
