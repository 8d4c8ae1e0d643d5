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
from collections.abc import Sequence
from dataclasses import dataclass, field

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
    aux_names: list[str] = field(default_factory=list)        # the auxiliary columns (--aux-cols)
    aux_tags: list[list[str]] = field(default_factory=list)   # each one's values: id -> value

    def __post_init__(self):
        self.word_id = {w: i for i, w in enumerate(self.words)}
        self.char_id = {c: i for i, c in enumerate(self.chars)}
        self.tag_id = {t: i for i, t in enumerate(self.tags)}
        self.aux_id = [{t: i for i, t in enumerate(values)} for values in self.aux_tags]

    @classmethod
    def build(cls, sentences: list[Sentence], *, min_freq: int = 1, lower: bool = True,
              aux_names: Sequence[str] = ()) -> TagVocabs:
        """The vocabularies of training ``sentences``; with ``aux_names``, also the values of each
        sentence's ``aux`` columns (in that order; ``_``, no value, is left out)."""
        words = Counter(w.lower() if lower else w for s in sentences for w in s.words)
        chars = Counter(c for s in sentences for w in s.words for c in w)
        tags = Counter(t for s in sentences for t in s.tags)
        kept = sorted((w for w, n in words.items() if n >= min_freq), key=lambda w: (-words[w], w))
        aux = [sorted({v for s in sentences for v in s.aux[k]} - {"_"}) for k in range(len(aux_names))]
        return cls(words=[*WORD_SPECIALS, *kept], counts=[0, 0, *(words[w] for w in kept)],
                   chars=[*CHAR_SPECIALS, *sorted(chars, key=lambda c: (-chars[c], c))],
                   tags=sorted(tags), lower=lower, aux_names=list(aux_names), aux_tags=aux)

    def to_json(self, path) -> None:
        d = {"format": FORMAT, "version": VERSION, "lower": self.lower, "tags": self.tags,
             "aux_names": self.aux_names, "aux_tags": self.aux_tags,
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
                       lower=d["lower"], aux_names=d.get("aux_names", []), aux_tags=d.get("aux_tags", []))
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
    aux: list[np.ndarray] | None = None   # per sentence (A, n): auxiliary column ids, -100: no value

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
    """Ids of ``sentences``; gold tags outside the vocabulary become -1 and are counted. Sentences
    that carry the vocabulary's auxiliary columns also get their ids (-100 for ``_`` and unseen
    values: no loss)."""
    form_id: dict[str, int] = {}
    spelled: list[list[int]] = []
    words, tags, forms = [], [], []
    unknown: Counter = Counter()
    wid = vocabs.word_id
    A = len(vocabs.aux_tags)
    aux: list[np.ndarray] | None = (
        [] if with_tags and A and all(len(s.aux) == A for s in sentences) else None)
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
        if aux is not None:
            aux.append(np.array([[vocabs.aux_id[k].get(v, -100) for v in s.aux[k]] for k in range(A)],
                                dtype=np.int64).reshape(A, len(s)))
    lengths = np.array([len(c) for c in spelled], dtype=np.int64)
    chars = np.full((len(spelled), int(lengths.max(initial=1))), PAD, dtype=np.int64)
    for i, c in enumerate(spelled):
        chars[i, :len(c)] = c
    return EncodedSplit(words, tags if with_tags else None, forms, chars, lengths, unknown, aux)


def make_batch(split: EncodedSplit, idx) -> TagBatch:
    """The sentences ``idx`` of ``split`` as one padded `TagBatch` (on the CPU)."""
    lengths = np.array([len(split.words[i]) for i in idx])
    B, T = len(idx), int(lengths.max())
    words = np.full((B, T), PAD, dtype=np.int64)
    forms = np.zeros((B, T), dtype=np.int64)
    tags = np.full((B, T), -100, dtype=np.int64) if split.tags is not None else None
    aux = None if split.aux is None else np.full((split.aux[0].shape[0], B, T), -100, dtype=np.int64)
    for r, i in enumerate(idx):
        n = lengths[r]
        words[r, :n] = split.words[i]
        forms[r, :n] = split.forms[i]
        if tags is not None and split.tags is not None:   # (both or neither)
            tags[r, :n] = split.tags[i]
        if aux is not None and split.aux is not None:
            aux[:, r, :n] = split.aux[i]
    # each distinct form of the batch is spelled once; padding points at row 0, a real form
    uniq, inverse = np.unique(forms, return_inverse=True)
    char_lengths = split.form_lengths[uniq]
    chars = split.form_chars[uniq, :int(char_lengths.max())]
    if tags is not None:
        tags[tags == -1] = -100   # a gold tag the run never saw: no loss (evaluation counts it wrong)
    return TagBatch(words=torch.from_numpy(words), lengths=torch.from_numpy(lengths),
                    chars=torch.from_numpy(chars), char_lengths=torch.from_numpy(char_lengths),
                    forms=torch.from_numpy(inverse.reshape(B, T)),
                    tags=None if tags is None else torch.from_numpy(tags),
                    aux=None if aux is None else torch.from_numpy(aux))


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
            out.append(Sentence(s.words[a:a + max_len], s.tags[a:a + max_len], s.rows[a:a + max_len],
                                [col[a:a + max_len] for col in s.aux]))
    return out, cut
