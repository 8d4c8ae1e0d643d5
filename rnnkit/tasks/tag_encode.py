"""Sentences -> ids -> padded batches for the tagger: its three vocabularies (words, characters,
tags), the encoding of a split and the batches (`make_batch`; which sentences go together is
`rnnkit.data.padded.BucketBatcher`'s choice, shared with the classifier).

Word ids look words up (lower-cased with ``lower``) among the training words seen ``min_freq`` times
or more; the character encoder spells every form as written, between a begin and an end mark, so an
unseen word still has a representation. Training replaces a word by ``<unk>`` with probability
``alpha / (alpha + count)`` (word dropout, Kiperwasser & Goldberg 2016): rare words most often, so the
model learns what to do with ``<unk>`` from the words it is most like.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from rnnkit.data.atomic import atomic_write
from rnnkit.tasks.tag_data import Sentence
from rnnkit.tasks.tag_model import BOW, EOW, PAD, UNK, TagBatch

FORMAT, VERSION = "rnnkit.tag-vocab", 1
WORD_SPECIALS = ("<pad>", "<unk>")
CHAR_SPECIALS = ("<pad>", "<unk>", "<bow>", "<eow>")


@dataclass
class TagVocabs:
    words: list[str]            # id -> word; WORD_SPECIALS first
    counts: list[int]           # id -> training count (0 for the specials)
    chars: list[str]            # id -> character; CHAR_SPECIALS first
    tags: list[str]             # id -> tag
    lower: bool

    def __post_init__(self):
        self.word_id = {w: i for i, w in enumerate(self.words)}
        self.char_id = {c: i for i, c in enumerate(self.chars)}
        self.tag_id = {t: i for i, t in enumerate(self.tags)}

    @classmethod
    def build(cls, sentences: list[Sentence], *, min_freq: int = 1, lower: bool = True) -> TagVocabs:
        words = Counter(w.lower() if lower else w for s in sentences for w in s.words)
        chars = Counter(c for s in sentences for w in s.words for c in w)
        tags = Counter(t for s in sentences for t in s.tags)
        kept = sorted((w for w, n in words.items() if n >= min_freq), key=lambda w: (-words[w], w))
        return cls(words=[*WORD_SPECIALS, *kept], counts=[0, 0, *(words[w] for w in kept)],
                   chars=[*CHAR_SPECIALS, *sorted(chars, key=lambda c: (-chars[c], c))],
                   tags=sorted(tags), lower=lower)

    def to_json(self, path) -> None:
        d = {"format": FORMAT, "version": VERSION, "lower": self.lower, "tags": self.tags,
             "chars": self.chars, "words": self.words, "counts": self.counts}
        atomic_write(path, json.dumps(d, ensure_ascii=False))

    @classmethod
    def from_json(cls, path) -> TagVocabs:
        try:
            d = json.loads(open(path, encoding="utf-8").read())
            if d.get("format") != FORMAT or d.get("version") != VERSION:
                raise ValueError(f"format {d.get('format')!r} version {d.get('version')!r}, expected "
                                 f"{FORMAT!r} version {VERSION}")
            return cls(words=d["words"], counts=d["counts"], chars=d["chars"], tags=d["tags"],
                       lower=d["lower"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a tagger's vocabulary file ({exc})") from None

    def unk_probability(self, alpha: float) -> torch.Tensor:
        """Word dropout's probability per word id ``(V,)``: ``alpha / (alpha + count)``, 0 for specials."""
        counts = torch.tensor(self.counts, dtype=torch.float32)
        p = alpha / (alpha + counts) if alpha > 0 else torch.zeros_like(counts)
        p[:len(WORD_SPECIALS)] = 0.0
        return p


@dataclass
class EncodedSplit:
    """A split's sentences as ids; ``forms`` index the split's distinct forms, spelled in
    ``form_chars (N, C)`` with ``form_lengths (N,)``."""

    words: list[np.ndarray]
    tags: list[np.ndarray] | None
    forms: list[np.ndarray]
    form_chars: np.ndarray
    form_lengths: np.ndarray
    unknown_tags: Counter

    def __len__(self) -> int:
        return len(self.words)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(w) for w in self.words])


def spell(word: str, vocabs: TagVocabs, max_chars: int) -> list[int]:
    """``word``'s character ids between the begin and end marks; a word longer than ``max_chars``
    keeps its first and last ``max_chars // 2`` characters (prefixes and suffixes carry the signal)."""
    if len(word) > max_chars:
        word = word[:max_chars // 2] + word[-(max_chars - max_chars // 2):]
    return [BOW, *(vocabs.char_id.get(c, UNK) for c in word), EOW]


def encode(sentences: list[Sentence], vocabs: TagVocabs, *, max_word_chars: int,
           with_tags: bool = True) -> EncodedSplit:
    """Ids of ``sentences``; gold tags outside the vocabulary become -1 and are counted."""
    form_id: dict[str, int] = {}
    spelled: list[list[int]] = []
    words, tags, forms = [], [], []
    unknown: Counter = Counter()
    wid = vocabs.word_id
    for s in sentences:
        words.append(np.array([wid.get(w.lower() if vocabs.lower else w, UNK) for w in s.words],
                              dtype=np.int64))
        f = []
        for w in s.words:
            if w not in form_id:
                form_id[w] = len(spelled)
                spelled.append(spell(w, vocabs, max_word_chars))
            f.append(form_id[w])
        forms.append(np.array(f, dtype=np.int64))
        if with_tags:
            ids = [vocabs.tag_id.get(t, -1) for t in s.tags]
            unknown.update(t for t, i in zip(s.tags, ids) if i < 0)
            tags.append(np.array(ids, dtype=np.int64))
    lengths = np.array([len(c) for c in spelled], dtype=np.int64)
    chars = np.full((len(spelled), int(lengths.max(initial=1))), PAD, dtype=np.int64)
    for i, c in enumerate(spelled):
        chars[i, :len(c)] = c
    return EncodedSplit(words, tags if with_tags else None, forms, chars, lengths, unknown)


def make_batch(split: EncodedSplit, idx) -> TagBatch:
    """The sentences ``idx`` of ``split`` as one padded `TagBatch` (on the CPU)."""
    lengths = np.array([len(split.words[i]) for i in idx])
    B, T = len(idx), int(lengths.max())
    words = np.full((B, T), PAD, dtype=np.int64)
    forms = np.zeros((B, T), dtype=np.int64)
    tags = np.full((B, T), -100, dtype=np.int64) if split.tags is not None else None
    for r, i in enumerate(idx):
        n = lengths[r]
        words[r, :n] = split.words[i]
        forms[r, :n] = split.forms[i]
        if tags is not None and split.tags is not None:   # (both or neither)
            tags[r, :n] = split.tags[i]
    # each distinct form of the batch is spelled once; padding points at row 0, a real form
    uniq, inverse = np.unique(forms, return_inverse=True)
    char_lengths = split.form_lengths[uniq]
    chars = split.form_chars[uniq, :int(char_lengths.max())]
    if tags is not None:
        tags[tags == -1] = -100   # a gold tag the run never saw: no loss (evaluation counts it wrong)
    return TagBatch(words=torch.from_numpy(words), lengths=torch.from_numpy(lengths),
                    chars=torch.from_numpy(chars), char_lengths=torch.from_numpy(char_lengths),
                    forms=torch.from_numpy(inverse.reshape(B, T)),
                    tags=None if tags is None else torch.from_numpy(tags))


def split_long(sentences: list[Sentence], max_len: int | None) -> tuple[list[Sentence], int]:
    """Sentences longer than ``max_len`` cut into pieces of at most ``max_len`` words; returns the
    pieces and how many sentences were cut."""
    if max_len is None:
        return sentences, 0
    out, cut = [], 0
    for s in sentences:
        if len(s) <= max_len:
            out.append(s)
            continue
        cut += 1
        for a in range(0, len(s), max_len):
            out.append(Sentence(s.words[a:a + max_len], s.tags[a:a + max_len], s.rows[a:a + max_len]))
    return out, cut
