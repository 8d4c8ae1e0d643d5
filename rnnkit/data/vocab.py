"""Vocabularies: text <-> token ids, for character- and word-level language models.

- :class:`CharVocab`: one token per Unicode character of the training text, plus ``<unk>`` (id 0);
  the characters follow in code-point order.
- :class:`WordVocab`: the specials ``<unk> <pad> <bos> <eos>`` (ids 0-3), then words by falling
  frequency (ties by the word itself), cut by ``min_freq`` and ``max_size``; see :func:`tokenize`.

Both apply :func:`normalize` (their ``lower`` / ``letters_only`` options) inside ``encode``, so a prompt
is treated as the training text was. ``encode`` returns a 1-D array ``(N,)`` of the smallest integer
dtype that holds every id (uint8 up to 256 tokens, int16 up to 32,767, else int32). A vocabulary is
saved as JSON (``to_json``, written atomically) and read back by :func:`load_vocab` /
``Vocab.from_json``, which dispatch on the file's ``"type"`` field.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnkit.data.atomic import atomic_write
from rnnkit.errors import DataError

UNK, PAD, BOS, EOS = "<unk>", "<pad>", "<bos>", "<eos>"
WORD_SPECIALS = (UNK, PAD, BOS, EOS)
FORMAT = "rnnkit.vocab"
VERSION = 1
_ENCODE_CHUNK = 1 << 20   # characters converted to code points at a time
_NON_LETTERS = re.compile(r"[^A-Za-z]+")
_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
#: a word (letters, digits, _ in any script, with inner apostrophes: "don't"), one punctuation or
#: symbol character (each emoji is one), or a newline; all other whitespace only separates tokens
_WORD_TOKEN = re.compile(r"\n|\w+(?:['\u2019]\w+)*|[^\w\s]")
_NO_SPACE_BEFORE = frozenset(".,;:!?)]}%\n")
_NO_SPACE_AFTER = frozenset("([{\n")


def normalize(text: str, lower: bool = False, letters_only: bool = False) -> str:
    """Normalise ``text`` as a vocabulary does before encoding.

    ``letters_only=True`` is the d2l textbook normalisation: every run of characters other than ASCII
    letters ``[A-Za-z]`` (digits, punctuation, newlines, accented letters) becomes one space, and the
    text is lower-cased (``lower`` is implied). ``lower=True`` alone only lower-cases.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if letters_only:
        return _NON_LETTERS.sub(" ", text).lower()
    return text.lower() if lower else text


def tokenize(text: str) -> list[str]:
    """Split text into word tokens (no normalisation).

    A token is a word -- a run of letters, digits and ``_`` in any script, keeping inner apostrophes
    (``don't``, ``l’homme``) -- or a single punctuation/symbol character (``,`` ``"`` ``-``; each emoji
    is one), or a newline ``"\\n"`` (kept so generated text has lines). Spaces, tabs and other
    whitespace only separate tokens. ``tokenize("Hi, you!\\n") == ["Hi", ",", "you", "!", "\\n"]``.
    """
    return _WORD_TOKEN.findall(text)


def detokenize(tokens: Iterable[str]) -> str:
    """Join word tokens with single spaces, except before ``.,;:!?)]}%``, after ``([{``, around newlines.

    ``detokenize(tokenize(t))`` equals ``t`` up to whitespace around punctuation.
    """
    parts: list[str] = []
    prev = "\n"
    for tok in tokens:
        if parts and tok not in _NO_SPACE_BEFORE and prev not in _NO_SPACE_AFTER:
            parts.append(" ")
        parts.append(tok)
        prev = tok
    return "".join(parts)


def dtype_for(size: int) -> np.dtype:
    """The smallest integer dtype that holds ids ``0 .. size-1``: uint8, int16 or int32."""
    if size <= 256:
        return np.dtype(np.uint8)
    if size <= 32767:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def _check_bool(name: str, value: Any, owner: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a bool, got {value!r}")


class Vocab:
    """Common base: ``tokens[i]`` is the token of id ``i``; id 0 is ``<unk>``. V = ``len(vocab)``."""

    kind: ClassVar[str] = ""

    def __init__(self, tokens: list[str], *, lower: bool, letters_only: bool):
        _check_bool("lower", lower, type(self).__name__)
        _check_bool("letters_only", letters_only, type(self).__name__)
        self.tokens = tokens
        self.lower = lower
        self.letters_only = letters_only
        self.index = {t: i for i, t in enumerate(tokens)}
        if len(self.index) != len(tokens):
            dup = sorted(t for t, c in Counter(tokens).items() if c > 1)
            raise ValueError(f"{type(self).__name__}: tokens must be unique, got duplicates {dup[:10]!r}")

    # -- sizes and ids -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def unk_id(self) -> int:
        """Id of ``<unk>``, the token of every character/word the vocabulary lacks (always 0)."""
        return 0

    @property
    def dtype(self) -> np.dtype:
        """dtype of ``encode``'s result: the smallest integer type that holds every id."""
        return dtype_for(len(self))

    def normalize(self, text: str) -> str:
        """``text`` normalised with this vocabulary's ``lower`` / ``letters_only`` options."""
        return normalize(text, self.lower, self.letters_only)

    def _check_ids(self, ids: Any) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"{type(self).__name__}.decode: expected ids of shape (N,), "
                             f"got shape {tuple(arr.shape)}")
        if arr.size == 0:
            return arr.astype(np.int64)
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{type(self).__name__}.decode: expected integer ids, got dtype {arr.dtype}")
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= len(self):
            bad = lo if lo < 0 else hi
            raise ValueError(f"{type(self).__name__}.decode: id {bad} out of range; expected ids in "
                             f"[0, {len(self)}) for a vocabulary of {len(self)} tokens")
        return arr

    # -- saving and loading --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "type": self.kind, "tokens": list(self.tokens),
                "lower": self.lower, "letters_only": self.letters_only}

    def to_json(self, path: str | os.PathLike) -> None:
        """Save as JSON (ASCII-escaped, so any character survives), atomically."""
        data = json.dumps(self.to_dict(), ensure_ascii=True, indent=1)
        atomic_write(path, (data + "\n").encode("ascii"))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Vocab:
        """Load a vocabulary saved by ``to_json``; ``Vocab.from_json`` picks the class from ``"type"``.

        Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file for one
        that is not a valid vocabulary (or, on a subclass, one of the other type).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vocabulary file {str(path)!r} does not exist")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise DataError(f"vocabulary file {str(path)!r} is not valid JSON: {exc}") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DataError(f"vocabulary file {str(path)!r}: expected a JSON object with "
                             f"\"format\": {FORMAT!r}; this is not an rnnkit vocabulary")
        if d.get("version") != VERSION:
            raise DataError(f"vocabulary file {str(path)!r}: unsupported version "
                             f"{d.get('version')!r}; expected {VERSION}")
        kinds = {c.kind: c for c in (CharVocab, WordVocab)}
        kind = d.get("type")
        if kind not in kinds:
            raise DataError(f"vocabulary file {str(path)!r}: \"type\" is {kind!r}; expected one of "
                             f"{sorted(kinds)}")
        if cls is not Vocab and kinds[kind] is not cls:
            raise DataError(f"vocabulary file {str(path)!r} holds a {kinds[kind].__name__} "
                             f"(\"type\": {kind!r}), not a {cls.__name__}; use load_vocab(path)")
        try:
            return kinds[kind]._from_dict(d)
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            raise DataError(f"vocabulary file {str(path)!r} is corrupt: {exc}") from None

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Vocab:  # pragma: no cover - overridden
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={len(self)}, lower={self.lower}, "
                f"letters_only={self.letters_only})")

    # -- what subclasses provide ---------------------------------------------------------------
    def encode(self, text: str) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def unknown(self, text: str) -> list[str]:  # pragma: no cover - overridden
        """The distinct tokens of ``text`` this vocabulary lacks, sorted (characters or words)."""
        raise NotImplementedError

    def safe_cut(self, text: str) -> int:  # pragma: no cover - overridden
        """An index ``i`` with ``encode(text[:i]) ++ encode(text[i:] + more) == encode(text + more)``."""
        raise NotImplementedError


class CharVocab(Vocab):
    """Character vocabulary: ``<unk>`` (id 0), then each distinct character in code-point order.

    Build one with :meth:`from_text`. ``encode(text) -> (N,)`` ids, N = ``len(normalize(text))``;
    ``decode(ids)`` joins the characters (``<unk>`` is written as the five characters ``<unk>``).
    """

    kind = "char"

    def __init__(self, chars: Iterable[str], *, lower: bool = False, letters_only: bool = False):
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"CharVocab: every token must be a single character, got {c!r}")
        chars = sorted(chars)
        super().__init__([UNK, *chars], lower=lower, letters_only=letters_only)
        # code point -> id lookup table; every code point above the largest known one maps to 0
        top = max((ord(c) for c in chars), default=0) + 1
        self._lut = np.zeros(top + 1, dtype=self.dtype)
        self._lut[[ord(c) for c in chars]] = np.arange(1, len(chars) + 1)
        self._table = np.array(self.tokens, dtype=object)

    @classmethod
    def from_text(cls, text: str, *, lower: bool = False, letters_only: bool = False) -> CharVocab:
        """Every distinct character of ``normalize(text, lower, letters_only)``, plus ``<unk>``."""
        return cls(set(normalize(text, lower, letters_only)), lower=lower, letters_only=letters_only)

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> CharVocab:
        tokens = d["tokens"]
        if not isinstance(tokens, list) or not tokens or tokens[0] != UNK:
            raise ValueError(f"\"tokens\" must be a list starting with {UNK!r}")
        return cls(tokens[1:], lower=d["lower"], letters_only=d["letters_only"])

    def encode(self, text: str) -> np.ndarray:
        """``text`` (normalised) -> ids of shape ``(N,)``, dtype ``self.dtype``; unknown chars -> 0."""
        text = self.normalize(text)
        out = np.empty(len(text), dtype=self.dtype)
        lut, top = self._lut, len(self._lut) - 1
        for start in range(0, len(text), _ENCODE_CHUNK):
            piece = text[start:start + _ENCODE_CHUNK]
            x = np.frombuffer(piece.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            out[start:start + len(x)] = lut[np.minimum(x, top)]
        return out

    def decode(self, ids: Any) -> str:
        """Ids of shape ``(N,)`` (array, list or CPU tensor) -> the string of their characters."""
        arr = self._check_ids(ids)
        return "".join(self._table[arr].tolist())

    def unknown_chars(self, text: str) -> list[str]:
        """The distinct characters of ``normalize(text)`` that this vocabulary lacks, sorted."""
        known = self.index
        return sorted(c for c in set(self.normalize(text)) if c not in known)

    unknown = unknown_chars

    def safe_cut(self, text: str) -> int:
        if not self.letters_only:
            return len(text)
        # a run of non-letters becomes ONE space, so never cut inside such a run
        for i in range(len(text) - 1, -1, -1):
            if text[i] in _ASCII_LETTERS:
                return i + 1
        return 0


class WordVocab(Vocab):
    """Word vocabulary: ``<unk> <pad> <bos> <eos>`` (ids 0-3), then words by falling frequency.

    Text is split by :func:`tokenize` after :func:`normalize`. Build one with :meth:`from_text`.
    ``decode`` joins tokens with :func:`detokenize` (whitespace is not kept exactly).
    """

    kind = "word"

    def __init__(self, words: Iterable[str], *, lower: bool = False, letters_only: bool = False,
                 min_freq: int = 1, max_size: int | None = None):
        words = list(words)
        for w in words:
            if not isinstance(w, str) or not w or w in WORD_SPECIALS:
                raise ValueError(f"WordVocab: every word must be a non-empty str other than the "
                                 f"specials {WORD_SPECIALS}, got {w!r}")
        super().__init__([*WORD_SPECIALS, *words], lower=lower, letters_only=letters_only)
        self.min_freq = min_freq
        self.max_size = max_size

    @classmethod
    def from_text(cls, text: str, *, min_freq: int = 1, max_size: int | None = None,
                  lower: bool = False, letters_only: bool = False) -> WordVocab:
        """Words of ``text`` seen at least ``min_freq`` times, the most frequent first.

        ``max_size`` caps the whole vocabulary, the 4 specials included (``None``: no cap).
        """
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"WordVocab: min_freq must be an int >= 1, got {min_freq!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                     or max_size < len(WORD_SPECIALS)):
            raise ValueError(f"WordVocab: max_size must be None or an int >= {len(WORD_SPECIALS)} "
                             f"(the specials {WORD_SPECIALS} count), got {max_size!r}")
        counts = Counter(tokenize(normalize(text, lower, letters_only)))
        words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[:max_size - len(WORD_SPECIALS)]
        return cls(words, lower=lower, letters_only=letters_only, min_freq=min_freq, max_size=max_size)

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> WordVocab:
        tokens = d["tokens"]
        if not isinstance(tokens, list) or tuple(tokens[:len(WORD_SPECIALS)]) != WORD_SPECIALS:
            raise ValueError(f"\"tokens\" must be a list starting with {list(WORD_SPECIALS)}")
        return cls(tokens[len(WORD_SPECIALS):], lower=d["lower"], letters_only=d["letters_only"],
                   min_freq=d.get("min_freq", 1), max_size=d.get("max_size"))

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "min_freq": self.min_freq, "max_size": self.max_size}

    @property
    def pad_id(self) -> int:
        return 1

    @property
    def bos_id(self) -> int:
        return 2

    @property
    def eos_id(self) -> int:
        return 3

    def tokenize(self, text: str) -> list[str]:
        """``tokenize(normalize(text))`` with this vocabulary's options."""
        return tokenize(self.normalize(text))

    def encode(self, text: str) -> np.ndarray:
        """``text`` -> word ids of shape ``(N,)``, dtype ``self.dtype``; unknown words -> 0."""
        get = self.index.get
        return np.array([get(t, 0) for t in self.tokenize(text)], dtype=self.dtype)

    def decode(self, ids: Any, *, skip_special: bool = False) -> str:
        """Ids ``(N,)`` -> text; ``skip_special`` drops ``<pad> <bos> <eos>`` (not ``<unk>``)."""
        arr = self._check_ids(ids)
        toks = [self.tokens[i] for i in arr.tolist()
                if not (skip_special and 1 <= i < len(WORD_SPECIALS))]
        return detokenize(toks)

    def unknown_tokens(self, text: str) -> list[str]:
        """The distinct words of ``text`` (normalised, tokenized) that this vocabulary lacks, sorted."""
        return sorted({t for t in self.tokenize(text) if t not in self.index})

    unknown = unknown_tokens

    def safe_cut(self, text: str) -> int:
        # tokens never contain whitespace, so a cut just after a space or newline splits none
        return max(text.rfind(" "), text.rfind("\n")) + 1


def load_vocab(path: str | os.PathLike) -> Vocab:
    """Load a :class:`CharVocab` or :class:`WordVocab` from JSON, by the file's ``"type"`` field."""
    return Vocab.from_json(path)
