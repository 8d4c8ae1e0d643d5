"""Padded batches of variable-length id sequences, bucketed by length (for N→1 and N→N tasks).

A classifier or a tagger sees one sequence per example (a sentence as word or character ids). Batching
them means padding each batch to its longest sequence and passing the lengths, so the recurrent engine
masks the padding (``lengths=``). Sequences of similar length in one batch waste little padding:

- :class:`BucketBatcher` hands out batches of example *indices*. Each epoch it shuffles the examples
  (``numpy.random.default_rng(seed)``), cuts the shuffled order into pools of ``pool`` batches, sorts
  each pool by length (stable), cuts it into batches and shuffles the order of all the batches. With
  ``shuffle=False`` (evaluation) it sorts everything by length once: the batches are deterministic,
  and the caller puts results back in input order with the indices. Like the language-model batchers
  (`rnnkit.data.batching`) it resumes exactly from ``state_dict()``.
- :func:`pad_batch` turns a list of sequences into ``(ids (B, T), lengths (B,))`` int64 tensors, ``T``
  the longest length in the list (the pad value fills the rest of each row).
- :func:`truncate` cuts sequences to a maximum length and counts how many it cut (for the caller's
  warning).
- :func:`word_vocab_from_tokens` / :func:`encode_tokens`: a `rnnkit.data.vocab.WordVocab` from
  already-tokenized sequences (a tagger's words), and their ids. For raw text use
  ``WordVocab.from_text`` / ``vocab.encode``.

The indices a batcher yields index the caller's own lists (texts, labels, tag sequences, character
ids...), so one batcher serves every task whatever travels with the sequences.
"""
from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from rnnkit.data.vocab import WORD_SPECIALS, WordVocab, normalize

#: batches per pool sorted by length: big enough that neighbours have similar lengths, small enough
#: that a batch's examples still differ from epoch to epoch
DEFAULT_POOL = 50


def _check_int(owner: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")
    return int(value)


def pad_batch(seqs: Sequence[Any], pad_value: int = 0, *, dtype: torch.dtype = torch.long
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad 1-D sequences (lists, arrays or tensors of ids) into ``(ids (B, T), lengths (B,))``.

    ``T = max(lengths)``; row ``b`` holds ``seqs[b]`` then ``pad_value``. ``lengths`` is int64 on the
    CPU (what the engine's ``lengths=`` takes). Every sequence must have at least one element: an empty
    one has no last state to classify and no token to tag.
    """
    if len(seqs) == 0:
        raise ValueError("pad_batch: expected at least one sequence, got none")
    arrays = [np.asarray(s.detach().cpu() if isinstance(s, torch.Tensor) else s) for s in seqs]
    for i, a in enumerate(arrays):
        if a.ndim != 1:
            raise ValueError(f"pad_batch: sequence {i} must be 1-D (N,), got shape {a.shape}")
        if a.size == 0:
            raise ValueError(f"pad_batch: sequence {i} is empty; every sequence needs at least one id")
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    out = torch.full((len(arrays), int(lengths.max())), pad_value, dtype=dtype)   # (B, T)
    for b, a in enumerate(arrays):
        out[b, :len(a)] = torch.from_numpy(np.ascontiguousarray(a)).to(dtype)
    return out, torch.from_numpy(lengths)


def truncate(seqs: Sequence[Any], max_len: int | None) -> tuple[list[Any], int]:
    """``seqs`` with each cut to its first ``max_len`` elements, and how many were cut.

    ``max_len=None`` cuts nothing. The caller warns with the count (its own words: file, option).
    """
    if max_len is None:
        return list(seqs), 0
    max_len = _check_int("truncate", "max_len", max_len, 1)
    out, cut = [], 0
    for s in seqs:
        if len(s) > max_len:
            s = s[:max_len]
            cut += 1
        out.append(s)
    return out, cut


class BucketBatcher:
    """Batches of example indices, each of similar lengths (module docstring).

    ``lengths``: one int per example ``(N,)``. ``batch_size`` examples per batch (the last one of a
    pool may have fewer); ``len(batcher)`` batches per epoch, every example in exactly one of them.
    Iterating yields the rest of the current epoch as int64 index arrays ``(B,)``; a new ``iter()``
    after a finished epoch starts the next one.
    """

    kind = "bucket"

    def __init__(self, lengths: Sequence[int] | np.ndarray, batch_size: int, *, seed: int = 0,
                 shuffle: bool = True, pool: int = DEFAULT_POOL):
        owner = "BucketBatcher"
        self.batch_size = _check_int(owner, "batch_size", batch_size, 1)
        self.seed = _check_int(owner, "seed", seed, 0)
        self.pool = _check_int(owner, "pool", pool, 1)
        if not isinstance(shuffle, bool):
            raise TypeError(f"{owner}: shuffle must be a bool, got {shuffle!r}")
        self.shuffle = shuffle
        lens = np.asarray(lengths)
        if lens.ndim != 1 or lens.size == 0:
            raise ValueError(f"{owner}: lengths must be a non-empty 1-D sequence (N,), got shape "
                             f"{lens.shape}")
        if not np.issubdtype(lens.dtype, np.integer):
            raise TypeError(f"{owner}: lengths must be ints, got dtype {lens.dtype}")
        self.lengths = lens.astype(np.int64)
        self.epoch = 0       # the epoch being handed out (or just finished)
        self.position = 0    # batches of this epoch already handed out
        self._rng = np.random.default_rng(self.seed)
        self._draw()

    @property
    def num_examples(self) -> int:
        return len(self.lengths)

    def __len__(self) -> int:
        return len(self._batches)

    def _draw(self) -> None:
        """This epoch's batches (and the generator state that drew them, for resuming)."""
        self._epoch_rng_state = copy.deepcopy(self._rng.bit_generator.state)
        B, n = self.batch_size, self.num_examples
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            self._batches = [order[i:i + B] for i in range(0, n, B)]
            return
        order = self._rng.permutation(n)
        batches: list[np.ndarray] = []
        span = B * self.pool
        for start in range(0, n, span):
            chunk = order[start:start + span]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i:i + B] for i in range(0, len(chunk), B))
        self._batches = [batches[i] for i in self._rng.permutation(len(batches))]

    def batches(self) -> list[np.ndarray]:
        """All of the current epoch's batches (index arrays), in the order they are handed out."""
        return list(self._batches)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.position >= len(self):
            self.epoch += 1
            self.position = 0
            if self.shuffle:
                self._draw()
        while self.position < len(self):
            i = self.position
            self.position += 1   # counted as handed out as soon as it is yielded
            yield self._batches[i]

    @property
    def padded_fraction(self) -> float:
        """Share of the cells of this epoch's padded batches that are padding (0 = none)."""
        cells = sum(len(b) * int(self.lengths[b].max()) for b in self._batches)
        return 1.0 - float(self.lengths.sum()) / cells

    def state_dict(self) -> dict[str, Any]:
        """Epoch, position and the generator state that drew this epoch's batches (plain values)."""
        return {"kind": self.kind, "epoch": self.epoch, "position": self.position,
                "batch_size": self.batch_size, "seed": self.seed, "pool": self.pool,
                "shuffle": self.shuffle, "num_examples": self.num_examples,
                "rng_state": copy.deepcopy(self._epoch_rng_state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where ``state`` left off; the examples and sizes must match."""
        owner = "BucketBatcher.load_state_dict"
        if not isinstance(state, dict) or state.get("kind") != self.kind:
            raise ValueError(f"{owner}: expected a state_dict of kind {self.kind!r}, got "
                             f"{state.get('kind') if isinstance(state, dict) else state!r}")
        for key in ("batch_size", "seed", "pool", "shuffle", "num_examples"):
            if state.get(key) != getattr(self, key):
                raise ValueError(f"{owner}: the state was saved with {key}={state.get(key)!r}, this "
                                 f"batcher has {key}={getattr(self, key)!r}")
        try:
            self._rng.bit_generator.state = copy.deepcopy(state["rng_state"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{owner}: bad or missing rng_state ({exc})") from None
        self._draw()
        pos = state.get("position")
        if not isinstance(pos, int) or not 0 <= pos <= len(self):
            raise ValueError(f"{owner}: position must be an int in [0, {len(self)}], got {pos!r}")
        self.epoch, self.position = int(state["epoch"]), pos


def word_vocab_from_tokens(sequences: Iterable[Sequence[str]], *, min_freq: int = 1,
                           max_size: int | None = None, lower: bool = False) -> WordVocab:
    """A `WordVocab` of already-tokenized sequences: words seen at least ``min_freq`` times, the most
    frequent first (ties by the word), capped at ``max_size`` entries with the 4 specials.

    ``lower=True`` lower-cases the words (and the vocabulary lower-cases what it encodes later).
    Tokens spelled like a special (``<unk>``) or empty are not counted as words.
    """
    if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
        raise ValueError(f"word_vocab_from_tokens: min_freq must be an int >= 1, got {min_freq!r}")
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                 or max_size < len(WORD_SPECIALS)):
        raise ValueError(f"word_vocab_from_tokens: max_size must be None or an int >= "
                         f"{len(WORD_SPECIALS)}, got {max_size!r}")
    counts: Counter[str] = Counter()
    for seq in sequences:
        counts.update(normalize(t, lower) for t in seq)
    for special in (*WORD_SPECIALS, ""):
        counts.pop(special, None)
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[:max_size - len(WORD_SPECIALS)]
    return WordVocab(words, lower=lower, min_freq=min_freq, max_size=max_size)


def encode_tokens(vocab: WordVocab, tokens: Sequence[str]) -> np.ndarray:
    """Ids ``(N,)`` (int64) of already-tokenized ``tokens`` (normalised as the vocabulary's text is);
    unknown words get ``vocab.unk_id``."""
    get, unk = vocab.index.get, vocab.unk_id
    return np.fromiter((get(vocab.normalize(t), unk) for t in tokens), dtype=np.int64, count=len(tokens))

