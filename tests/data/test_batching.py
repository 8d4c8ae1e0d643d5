"""LM batchers: coverage of every target once per epoch, contiguous streams, no copies, exact resume.

The ids are ``arange(N)`` so each id is its own position in the text.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit.data.batching import RandomBatcher, SequentialBatcher


def _epoch(batcher):
    return [(x.clone(), y.clone()) for x, y in batcher]


def _targets(batches):
    return np.sort(np.concatenate([y.numpy().ravel() for _, y in batches]))


@pytest.mark.parametrize("n,B,T,offset,drop_last", [
    (1000, 4, 7, 0, False), (1000, 4, 7, 0, True), (1001, 5, 10, 3, False), (97, 8, 12, 0, False),
    (57, 7, 8, 0, False)])
def test_sequential_covers_every_target_once_and_streams_are_contiguous(n, B, T, offset, drop_last):
    ids = np.arange(n, dtype=np.int32)
    b = SequentialBatcher(ids, B, T, offset=offset, drop_last=drop_last)
    batches = _epoch(b)
    assert len(batches) == len(b)
    L = (n - offset - 1) // B
    for i, (x, y) in enumerate(batches):
        assert x.dtype == torch.int64 and x.shape == y.shape and x.shape[0] == B
        assert x.shape[1] == T or (i == len(batches) - 1 and not drop_last and x.shape[1] == L % T)
        assert torch.equal(y, x + 1)
        if i:  # row b continues row b of the previous batch
            assert torch.equal(x[:, 0], batches[i - 1][0][:, -1] + 1)
    targets = _targets(batches)
    assert len(targets) == b.num_targets and len(np.unique(targets)) == len(targets)
    if not drop_last:
        np.testing.assert_array_equal(targets, np.arange(offset + 1, offset + 1 + B * L))
        assert n - 1 - offset - len(targets) < B                 # only the ragged end is left out
    assert np.shares_memory(b._x, ids) and np.shares_memory(b._y, ids)   # views, not copies


@pytest.mark.parametrize("n,B,T,drop_last", [(1000, 4, 7, False), (1000, 4, 7, True),
                                             (301, 3, 10, False), (41, 4, 10, False)])
def test_random_covers_every_target_once_per_epoch(n, B, T, drop_last):
    ids = np.arange(n, dtype=np.int64)
    b = RandomBatcher(ids, B, T, seed=1, drop_last=drop_last)
    S = (n - 1) // T
    seen_orders = []
    for _ in range(3):
        batches = _epoch(b)
        assert len(batches) == len(b)
        for x, y in batches:
            assert x.shape[1] == T and 1 <= x.shape[0] <= B and torch.equal(y, x + 1)
            assert torch.all(x[:, 0] % T == 0)                   # pieces start at 0, T, 2T, ...
        targets = _targets(batches)
        assert len(targets) == b.num_targets and len(np.unique(targets)) == len(targets)
        if not drop_last:
            np.testing.assert_array_equal(targets, np.arange(1, 1 + S * T))
        seen_orders.append(torch.cat([x[:, 0] for x, _ in batches]).tolist())
    assert b.epoch == 2
    assert seen_orders[0] != seen_orders[1]                       # reshuffled each epoch
    again = RandomBatcher(ids, B, T, seed=1, drop_last=drop_last)
    assert torch.cat([x[:, 0] for x, _ in again]).tolist() == seen_orders[0]   # same seed, same order
    assert np.shares_memory(b._pieces, ids)


@pytest.mark.parametrize("make", [
    lambda ids: SequentialBatcher(ids, 3, 5, offset=2),
    lambda ids: RandomBatcher(ids, 3, 5, seed=7),
])
@pytest.mark.parametrize("stop_after", [0, 4, 13, 17])
def test_state_dict_resume_gives_the_same_remaining_batches(make, stop_after):
    ids = np.arange(250, dtype=np.int16)
    reference = make(ids)
    stream = [(x.clone(), y.clone()) for _ in range(3) for x, y in reference]   # 3 epochs
    run = make(ids)
    it, taken = iter(run), 0
    while taken < stop_after:                                     # crash after `stop_after` batches
        try:
            next(it)
            taken += 1
        except StopIteration:
            it = iter(run)
    state = json.loads(json.dumps(run.state_dict()))              # survives a JSON checkpoint
    resumed = make(ids)
    resumed.load_state_dict(state)
    rest = []
    while len(rest) < len(stream) - stop_after:
        rest.extend((x.clone(), y.clone()) for x, y in resumed)
    for (x0, y0), (x1, y1) in zip(stream[stop_after:], rest):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_epochs_roll_over_without_empty_epochs():
    b = SequentialBatcher(np.arange(100), 2, 5)
    first = _epoch(b)
    assert (b.epoch, b.position) == (0, len(b))
    state = b.state_dict()
    assert len(_epoch(b)) == len(first) and b.epoch == 1
    c = SequentialBatcher(np.arange(100), 2, 5)
    c.load_state_dict(state)                                      # saved at an epoch's very end
    assert len(_epoch(c)) == len(first) and c.epoch == 1


def test_too_short_text_says_how_many_tokens_are_needed():
    with pytest.raises(ValueError, match=r"has 100 tokens; one batch needs at least batch_size\*"
                                         r"num_steps \+ 1 \+ offset = 8\*35 \+ 1 \+ 0 = 281"):
        SequentialBatcher(np.arange(100), 8, 35)
    with pytest.raises(ValueError, match=r"has 20 tokens; .* = 4\*5 \+ 1 = 21"):
        RandomBatcher(np.arange(20), 4, 5)
    RandomBatcher(np.arange(21), 4, 5)                            # exactly one batch is fine


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        SequentialBatcher(np.arange(100), 0, 5)
    with pytest.raises(TypeError, match="num_steps must be an int, got 2.5"):
        RandomBatcher(np.arange(100), 2, 2.5)
    with pytest.raises(ValueError, match=r"1-D array of token ids \(N,\), got shape \(10, 10\)"):
        SequentialBatcher(np.zeros((10, 10), dtype=np.int64), 2, 2)
    with pytest.raises(TypeError, match="integer dtype, got float32"):
        RandomBatcher(np.zeros(100, dtype=np.float32), 2, 2)
    b = SequentialBatcher(torch.arange(100), 2, 5)                # a CPU tensor works too
    with pytest.raises(ValueError, match="saved with batch_size=3, this batcher has batch_size=2"):
        b.load_state_dict({**b.state_dict(), "batch_size": 3})
    with pytest.raises(ValueError, match="expected a state_dict of kind 'sequential'"):
        b.load_state_dict(RandomBatcher(np.arange(100), 2, 5).state_dict())
    with pytest.raises(IndexError, match="batch index 99 out of range"):
        b.batch(99)
