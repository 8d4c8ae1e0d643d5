"""The language model's data path: corpus -> vocabulary -> ids (batches: `rnnkit.data.batching`).

Shapes: B batch, T steps (``seq_len``), V vocabulary, N tokens.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from rnnkit.data import CharVocab, Corpus, Vocab, WordVocab, \
    load_corpus
from rnnkit.data.textio import encode_text
from rnnkit.tasks.lm.model import LanguageModel, sum_log_loss


@dataclass
class LMData:
    """A corpus encoded with its vocabulary: ``train_ids`` and ``val_ids`` are ``(N,)`` arrays."""

    corpus: Corpus
    vocab: Vocab
    train_ids: np.ndarray
    val_ids: np.ndarray

    @property
    def unit(self) -> str:
        """What one token is, for "bits per ...": ``"character"`` or ``"word"``."""
        return "word" if isinstance(self.vocab, WordVocab) else "character"


def build_vocab(cfg, corpus: Corpus) -> Vocab:
    """Characters: every character of the corpus (training and validation text: the alphabet, not
    the content, so validation has no token the model cannot name). Words: those of the training
    text seen ``min_freq`` times (the rest are ``<unk>``), at most ``max_vocab``."""
    if cfg.level == "char":
        return CharVocab.from_text(corpus.train_text + corpus.val_text, lower=cfg.lower,
                                   letters_only=cfg.letters_only)
    return WordVocab.from_text(corpus.train_text, min_freq=cfg.min_freq, max_size=cfg.max_vocab,
                               lower=cfg.lower, letters_only=cfg.letters_only)


def load_lm_data(cfg, vocab: Vocab | None = None, *, progress: bool | None = None) -> LMData:
    """Load ``cfg.data`` split into training and validation text and encode it (with ``vocab``, or a
    vocabulary built from the corpus), with a progress bar for a large text (``progress=None``: a
    16 MiB or more; see `rnnkit.data.textio.encode_text`). Errors say which option to change; see also
    `check_batch_fits`."""
    val_data = getattr(cfg, "val_data", None)
    if val_data is None:
        corpus = load_corpus(cfg.data, val_fraction=cfg.val_fraction, split=cfg.split,
                             encoding=cfg.encoding, errors=cfg.errors)
    else:   # all of --data trains; the validation text is a corpus of its own, read whole
        corpus = load_corpus(cfg.data, val_fraction=0.0, split=cfg.split, encoding=cfg.encoding,
                             errors=cfg.errors)
        held = load_corpus(val_data, val_fraction=0.0, encoding=cfg.encoding, errors=cfg.errors)
        corpus = dataclasses.replace(corpus, val_text=held.train_text, val_files=held.train_files)
    vocab = vocab or build_vocab(cfg, corpus)
    train_ids = encode_text(corpus.train_text, vocab, progress=progress, desc="encoding training text")
    val_ids = encode_text(corpus.val_text, vocab, progress=progress, desc="encoding validation text")
    if len(val_ids) < 2:
        if val_data is not None:
            raise ValueError(f"val_data {val_data!r}: the validation text has {len(val_ids)} tokens; "
                             f"at least 2 are needed")
        raise ValueError(f"data {cfg.data!r}: the validation text has {len(val_ids)} tokens; at least "
                         f"2 are needed; raise --val-fraction (now {cfg.val_fraction})")
    return LMData(corpus, vocab, train_ids, val_ids)


def check_batch_fits(cfg, data: LMData) -> None:
    """A clear error when the training text is shorter than one batch of ``cfg``."""
    need = cfg.batch_size * cfg.seq_len + 1
    if len(data.train_ids) < need:
        raise ValueError(
            f"data {cfg.data!r}: the training text has {len(data.train_ids):,} {cfg.level} tokens, "
            f"fewer than one batch needs: batch_size * seq_len + 1 = {cfg.batch_size} * {cfg.seq_len} "
            f"+ 1 = {need:,}; use a longer text or a smaller --batch-size / --seq-len")


def _as_tensor(ids) -> torch.Tensor:
    """Token ids (array or list) as a CPU tensor sharing a NumPy array's memory where torch has its
    dtype (uint8, int16, int32, int64); other integer dtypes are widened to int64."""
    arr = np.ascontiguousarray(ids)
    if arr.dtype not in (np.uint8, np.int16, np.int32, np.int64):
        arr = arr.astype(np.int64)
    return torch.from_numpy(arr)


_HASH_CHUNK = 1 << 20  # token ids per piece (8 MiB as int64)


def fingerprint(ids: np.ndarray) -> str:
    """SHA-256 of the token ids (as little-endian int64, whatever their dtype): resuming checks the
    data is the same as before. Hashed in pieces, so a large text needs no second copy of its ids."""
    h = hashlib.sha256()
    for start in range(0, len(ids), _HASH_CHUNK):
        h.update(np.asarray(ids[start:start + _HASH_CHUNK], dtype="<i8").tobytes())
    return h.hexdigest()


def metrics(total_nats: float, count: int, unit: str) -> dict:
    """``loss`` (nats per token), ``ppl`` and ``bpc`` (bits per character) or ``bpw`` (per word)."""
    loss = total_nats / count
    bits = "bpw" if unit == "word" else "bpc"
    return {"loss": loss, "ppl": math.exp(min(loss, 700.0)), bits: loss / math.log(2), "tokens": count}


def evaluate_ids(model: LanguageModel, ids, unit: str) -> dict:
    """`metrics` of ``model`` predicting ``ids`` ``(N,)`` (each token from all that precede it)."""
    was_training = model.training
    model.eval()
    try:
        total, count = sum_log_loss(model, _as_tensor(ids))
    finally:
        model.train(was_training)
    return metrics(total, count, unit)
