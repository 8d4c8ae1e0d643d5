"""Sentence pairs for translation: reading, the textbook normalisation, word vocabularies per side,
a length filter, a split that keeps every source sentence in one part, and padded batches.

File format: one pair per line, ``source<TAB>target[<TAB>attribution]`` (UTF-8; the Tatoeba /
manythings.org files, e.g. ``fra-eng.txt``). ``reverse`` swaps the sides.

Normalisation (the d2l textbook's): non-breaking spaces (U+202F, U+00A0, which French puts before
``! ? ;``) become spaces, the text is lower-cased, and a space is put before ``, . ! ?`` that follow a
word; tokens are then the space-separated pieces (``"Va !"`` -> ``["va", "!"]``,
``"j'ai"`` stays one word).

Each side has its own `rnnkit.data.WordVocab` (``<unk> <pad> <bos> <eos>`` = ids 0-3, then the
training split's words seen ``min_freq`` times). A source is encoded as its words then ``<eos>``; a
target as ``<bos>`` + words (the decoder's input) and words + ``<eos>`` (what it must predict).

Shapes: B pairs, S source length, T target length (both with their ``<eos>``/``<bos>``).
"""
from __future__ import annotations

import random
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.data import WordVocab

_SPACE_BEFORE = re.compile(r"(?<=\S)([,.!?])")
_NBSP = str.maketrans({"\u202f": " ", "\u00a0": " "})


def normalize_sentence(text: str) -> str:
    """The textbook normalisation: non-breaking spaces to spaces, lower case, a space before
    ``, . ! ?`` that follow a character, runs of spaces to one."""
    return " ".join(_SPACE_BEFORE.sub(r" \1", text.translate(_NBSP).lower()).split())


def tokenize_sentence(text: str) -> list[str]:
    return normalize_sentence(text).split()


@dataclass
class Pair:
    src: list[str]
    tgt: list[str]
    line: int                   # 1-based line in the file


def read_pairs(path: str | Path, *, reverse: bool = False, encoding: str = "utf-8") -> list[Pair]:
    """Every pair of ``path``, tokenised; a line without a tab or with an empty side is a
    ``ValueError`` naming the file and line."""
    pairs = list(iter_pairs(path, reverse=reverse, encoding=encoding))
    if not pairs:
        raise ValueError(f"data: {path} holds no sentence pairs")
    return pairs


def iter_pairs(path: str | Path, *, reverse: bool = False, encoding: str = "utf-8") -> Iterator[Pair]:
    """`read_pairs` one pair at a time (a reader can stop early)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data: {str(path)!r} is not a file (expected tab-separated sentence "
                                f"pairs, e.g. ../shared/data/fra-eng.txt)")
    with open(path, encoding=encoding, newline="") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2:
                raise ValueError(f"{path}, line {n}: expected 'source<TAB>target[<TAB>attribution]', "
                                 f"found no tab in {line[:80]!r}")
            src, tgt = tokenize_sentence(fields[0]), tokenize_sentence(fields[1])
            for side, toks in (("source", src), ("target", tgt)):
                if not toks:
                    raise ValueError(f"{path}, line {n}: the {side} side is empty in {line[:80]!r}")
            yield Pair(tgt, src, n) if reverse else Pair(src, tgt, n)


def split_pairs(pairs: list[Pair], dev: float, test: float, seed: int) -> tuple[list[Pair], ...]:
    """``(train, dev, test)``: the distinct source sentences are shuffled with ``seed`` and cut by the
    fractions; every translation of one source goes where its source goes, so no test source is
    seen in training. Each part keeps the file's order."""
    groups: dict[str, int] = {}
    for p in pairs:
        groups.setdefault(" ".join(p.src), len(groups))
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    n_test = max(1, round(test * len(order))) if test > 0 else 0
    n_dev = max(1, round(dev * len(order))) if dev > 0 else 0
    part = {}
    for rank, g in enumerate(order):
        part[g] = 2 if rank < n_test else 1 if rank < n_test + n_dev else 0
    out: tuple[list[Pair], ...] = ([], [], [])
    for p in pairs:
        out[part[groups[" ".join(p.src)]]].append(p)
    return out


def build_vocab(sentences: list[list[str]], min_freq: int) -> WordVocab:
    """The words of ``sentences`` seen at least ``min_freq`` times, most frequent first."""
    counts: dict[str, int] = {}
    for s in sentences:
        for w in s:
            counts[w] = counts.get(w, 0) + 1
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    return WordVocab(words, lower=True, min_freq=min_freq)


def encode_words(vocab: WordVocab, words: list[str]) -> list[int]:
    get = vocab.index.get
    return [get(w, vocab.unk_id) for w in words]


@dataclass
class TranslationData:
    """The split pairs and both vocabularies."""

    train: list[Pair]
    dev: list[Pair]
    test: list[Pair]
    src_vocab: WordVocab
    tgt_vocab: WordVocab
    dropped_long: int = 0
    name: str = ""
    notes: list[str] = field(default_factory=list)


def load_translation_data(path: str, *, reverse: bool = False, max_len: int = 10,
                          max_pairs: int | None = None, min_freq: int = 2, dev: float = 0.02,
                          test: float = 0.05, seed: int = 0,
                          vocabs: tuple[WordVocab, WordVocab] | None = None) -> TranslationData:
    """Read, filter (both sides at most ``max_len`` words), keep the first ``max_pairs`` left, split,
    and build the vocabularies on the training part (or use ``vocabs`` = (source, target), a run's)."""
    kept: list[Pair] = []
    dropped = 0
    for p in iter_pairs(path, reverse=reverse):       # stops reading at max_pairs
        if len(p.src) > max_len or len(p.tgt) > max_len:
            dropped += 1
            continue
        kept.append(p)
        if max_pairs is not None and len(kept) >= max_pairs:
            break
    if not kept:
        raise ValueError(f"data: no pair of {path} has both sides within max_len={max_len} words")
    train, dv, ts = split_pairs(kept, dev, test, seed)
    if not train:
        raise ValueError(f"data: {len(kept)} pairs leave nothing to train on after the dev/test split")
    if vocabs is None:
        vocabs = (build_vocab([p.src for p in train], min_freq),
                  build_vocab([p.tgt for p in train], min_freq))
    return TranslationData(train, dv, ts, *vocabs, dropped_long=dropped, name=Path(path).name)


def encode_sources(vocab: WordVocab, sentences: list[list[str]], max_len: int | None = None,
                   *, warn: bool = False) -> tuple[Tensor, Tensor, int]:
    """Sources ``(S, B)`` (words, ``<eos>``, then ``<pad>``), their lengths ``(B,)`` and the count of
    words the vocabulary lacks (encoded as ``<unk>``). With ``max_len``, a longer sentence is cut to
    its first ``max_len`` words, with a warning when ``warn``."""
    ids, unknown, cut = [], 0, []
    for i, words in enumerate(sentences):
        if max_len is not None and len(words) > max_len:
            cut.append((i + 1, len(words)))
            words = words[:max_len]
        enc = encode_words(vocab, words)
        unknown += sum(1 for w, e in zip(words, enc) if e == vocab.unk_id and w != "<unk>")
        ids.append(enc + [vocab.eos_id])
    if cut and warn:
        warnings.warn(f"{len(cut)} sentence(s) longer than the model's limit of {max_len} words (max_len, "
                      f"from training) cut to their first {max_len} words; the first: sentence "
                      f"{cut[0][0]}, {cut[0][1]} words", stacklevel=3)
    return (*pad_time_major(ids, vocab.pad_id), unknown)


def pad_time_major(seqs: list[list[int]], pad: int) -> tuple[Tensor, Tensor]:
    """``(T, B)`` int64 padded with ``pad`` and the lengths ``(B,)``."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((int(lengths.max()), len(seqs)), pad, dtype=torch.long)
    for b, s in enumerate(seqs):
        out[:len(s), b] = torch.tensor(s, dtype=torch.long)
    return out, lengths


@dataclass
class Batch:
    src: Tensor          # (S, B)
    src_len: Tensor      # (B,)
    tgt_in: Tensor       # (T, B): <bos> w1 .. wn, then <pad>
    tgt_out: Tensor      # (T, B): w1 .. wn <eos>, then <pad>

    def to(self, device) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in (self.src, self.src_len, self.tgt_in,
                                                                  self.tgt_out)))


def make_batch(pairs: list[Pair], src_vocab: WordVocab, tgt_vocab: WordVocab) -> Batch:
    src, src_len, _ = encode_sources(src_vocab, [p.src for p in pairs])
    tgt = [encode_words(tgt_vocab, p.tgt) for p in pairs]
    tgt_in, _ = pad_time_major([[tgt_vocab.bos_id, *t] for t in tgt], tgt_vocab.pad_id)
    tgt_out, _ = pad_time_major([[*t, tgt_vocab.eos_id] for t in tgt], tgt_vocab.pad_id)
    return Batch(src, src_len, tgt_in, tgt_out)


class PairBatcher:
    """Shuffled batches of ``batch_size`` pairs, a new seeded order each epoch; resumable
    (``state_dict`` is the epoch and the position in it)."""

    def __init__(self, pairs: list[Pair], batch_size: int, src_vocab: WordVocab, tgt_vocab: WordVocab,
                 seed: int):
        self.pairs, self.batch_size, self.seed = pairs, batch_size, seed
        self.vocabs = (src_vocab, tgt_vocab)
        self.epoch, self.position = 0, 0
        self._order = self._shuffle()

    def __len__(self) -> int:
        return max(1, len(self.pairs) // self.batch_size)

    def _shuffle(self) -> list[int]:
        order = list(range(len(self.pairs)))
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return order

    def next(self) -> Batch:
        if self.position >= len(self):
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._shuffle()
        i = self.position * self.batch_size
        self.position += 1
        return make_batch([self.pairs[j] for j in self._order[i:i + self.batch_size]], *self.vocabs)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, d: dict) -> None:
        self.epoch, self.position = int(d["epoch"]), int(d["position"])
        self._order = self._shuffle()
