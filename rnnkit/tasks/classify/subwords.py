"""Hashed character n-grams of words (fastText-style subword features) for the word-level classifier.

A word is read as ``<word>`` (the brackets mark its start and end, so a prefix n-gram differs from the
same letters inside a word) and cut into its character n-grams of ``MIN_N`` to ``MAX_N`` characters;
each n-gram is hashed (CRC-32: stable across processes and machines, unlike Python's salted ``hash``)
into one of ``buckets`` rows of an embedding table. The model adds the mean of a word's n-gram vectors
to its word vector, so a rare word shares what its spelling shares with others ("disappointing",
"disappointed"), and a word never seen in training (``<unk>`` in the word vocabulary) still gets a
vector from its spelling: training texts, validation texts and new texts are all cut the same way.

Ids: 0 is padding (a text's words have different numbers of n-grams); n-gram ``g`` has id
``1 + crc32(g) % buckets``. A text of ``T`` words becomes a ``(T, K)`` array, ``K`` its longest word's
n-gram count (at most `MAX_PER_WORD`: a very long "word", a URL, keeps its first ones).
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch

MIN_N, MAX_N = 3, 5
MAX_PER_WORD = 48


def word_ngrams(word: str, min_n: int = MIN_N, max_n: int = MAX_N) -> list[str]:
    """The character n-grams of ``<word>``, shortest first (``"ab"`` -> ``["<ab", "ab>", "<ab>"]``)."""
    w = f"<{word}>"
    return [w[i:i + n] for n in range(min_n, max_n + 1) for i in range(len(w) - n + 1)]


def bucket_id(text: str, buckets: int) -> int:
    """The id in ``1..buckets`` of an n-gram ``text``: ``1 + crc32(its UTF-8 bytes) % buckets`` (0 is
    padding). The one hashing rule of the classifier's subword and word n-gram features."""
    return 1 + zlib.crc32(text.encode("utf-8", "surrogatepass")) % buckets


def ngram_ids(word: str, buckets: int, cache: dict | None = None) -> list[int]:
    """``word``'s n-gram ids in ``1..buckets`` (module docstring); ``cache`` memoises by word."""
    if cache is not None and word in cache:
        return cache[word]
    ids = [bucket_id(g, buckets) for g in word_ngrams(word)][:MAX_PER_WORD]
    if cache is not None:
        cache[word] = ids
    return ids


def encode_subwords(tokens: Sequence[str], buckets: int, cache: dict | None = None) -> np.ndarray:
    """A text's words -> ``(T, K)`` int64 n-gram ids, right-padded with 0."""
    rows = [ngram_ids(t, buckets, cache) for t in tokens]
    out = np.zeros((len(rows), max((len(r) for r in rows), default=1) or 1), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def pad_subwords(arrays: Sequence[np.ndarray], length: int | None = None) -> torch.Tensor:
    """``(T_b, K_b)`` arrays -> one ``(B, T, K)`` tensor padded with 0 (``T``: ``length`` or the
    longest)."""
    T = length if length is not None else max(a.shape[0] for a in arrays)
    K = max(a.shape[1] for a in arrays)
    out = np.zeros((len(arrays), T, K), dtype=np.int64)
    for b, a in enumerate(arrays):
        out[b, :a.shape[0], :a.shape[1]] = a[:T]
    return torch.from_numpy(out)
