"""rnnkit.data.padded: padding against torch's pad_sequence, the bucketing batcher's coverage, order
and exact resumption, and the word vocabulary from tokens against a plain Counter."""
from collections import Counter

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pad_sequence

from rnnkit.data.padded import BucketBatcher, encode_tokens, pad_batch, truncate, word_vocab_from_tokens


def test_pad_batch_matches_torch_pad_sequence():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 50, size=n) for n in (3, 7, 1, 5)]
    ids, lengths = pad_batch(seqs, pad_value=9)
    ref = pad_sequence([torch.from_numpy(s) for s in seqs], batch_first=True, padding_value=9)
    assert torch.equal(ids, ref)
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert lengths.tolist() == [3, 7, 1, 5]


def test_pad_batch_refuses_empty_and_2d():
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        pad_batch([[1, 2], []])
    with pytest.raises(ValueError, match="must be 1-D"):
        pad_batch([np.zeros((2, 2), dtype=int)])
    with pytest.raises(ValueError, match="at least one sequence"):
        pad_batch([])


def test_truncate_counts_the_cut_ones():
    out, cut = truncate([[1, 2, 3], [1], [1, 2, 3, 4]], 2)
    assert out == [[1, 2], [1], [1, 2]] and cut == 2
    assert truncate([[1, 2, 3]], None) == ([[1, 2, 3]], 0)


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_example_once_per_epoch_and_similar_lengths(shuffle):
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 60, size=1003)
    b = BucketBatcher(lengths, 16, seed=3, shuffle=shuffle, pool=8)
    for _ in range(2):
        batches = list(b)
        seen = np.concatenate(batches)
        assert sorted(seen.tolist()) == list(range(len(lengths)))
        assert all(len(x) <= 16 for x in batches) and len(batches) == len(b)
    # sorting within pools leaves far less padding than random batches would
    random_pad = np.mean([1 - lengths[c].sum() / (len(c) * lengths[c].max())
                          for c in np.array_split(rng.permutation(len(lengths)), len(b))])
    assert b.padded_fraction < random_pad / 3


def test_shuffled_epochs_differ_and_seed_repeats():
    lengths = np.arange(1, 201) % 17 + 1
    a, b = BucketBatcher(lengths, 8, seed=5), BucketBatcher(lengths, 8, seed=5)
    e1 = [x.tolist() for x in a]
    e2 = [x.tolist() for x in a]
    assert e1 != e2
    assert [x.tolist() for x in b] == e1


def test_resume_mid_epoch_gives_the_remaining_batches():
    lengths = np.random.default_rng(2).integers(1, 30, size=300)
    a = BucketBatcher(lengths, 10, seed=7, pool=4)
    list(a)                       # one whole epoch
    it = iter(a)
    head = [next(it) for _ in range(5)]
    state = a.state_dict()
    rest = [x.tolist() for x in it]
    b = BucketBatcher(lengths, 10, seed=7, pool=4)
    b.load_state_dict(state)
    assert [x.tolist() for x in b] == rest and head
    assert [x.tolist() for x in a] == [x.tolist() for x in b]   # the next epoch too
    with pytest.raises(ValueError, match="batch_size=10"):
        BucketBatcher(lengths, 11, seed=7, pool=4).load_state_dict(state)


def test_word_vocab_from_tokens_against_counter():
    sents = [["The", "cat", "sat"], ["the", "dog", "sat", "<unk>"], ["A", "cat"]]
    v = word_vocab_from_tokens(sents, min_freq=2, lower=True)
    counts = Counter(t.lower() for s in sents for t in s if t != "<unk>")
    expected = sorted((w for w, c in counts.items() if c >= 2), key=lambda w: (-counts[w], w))
    assert v.tokens[4:] == expected
    ids = encode_tokens(v, ["CAT", "zebra", "sat"])
    assert ids.tolist() == [v.index["cat"], v.unk_id, v.index["sat"]]
