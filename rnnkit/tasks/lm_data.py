"""The language model's data path and its `Trainer` task: corpus -> vocabulary -> ids -> batches.

Shapes: B batch, T steps (``seq_len``), V vocabulary, N tokens.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from rnnkit.data import CharVocab, Corpus, RandomBatcher, SequentialBatcher, Vocab, WordVocab, \
    load_corpus
from rnnkit.data.textio import encode_text
from rnnkit.tasks.lm_model import LanguageModel, lm_loss, sum_log_loss


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
    corpus = load_corpus(cfg.data, val_fraction=cfg.val_fraction, split=cfg.split,
                         encoding=cfg.encoding, errors=cfg.errors)
    vocab = vocab or build_vocab(cfg, corpus)
    train_ids = encode_text(corpus.train_text, vocab, progress=progress, desc="encoding training text")
    val_ids = encode_text(corpus.val_text, vocab, progress=progress, desc="encoding validation text")
    if len(val_ids) < 2:
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


class LMTask:
    """The `Trainer`'s task for a language model (see `rnnkit.train.trainer`).

    ``batching="sequential"``: ``B`` contiguous streams; the state is carried from batch to batch
    (detached: truncated backpropagation through time) and reset at each epoch.
    ``batching="random"``: random ``T``-step pieces; every batch starts from a zero state.
    """

    def __init__(self, model: LanguageModel, data: LMData, cfg, seed: int):
        self.model, self.data = model, data
        self.device = next(model.parameters()).device
        if cfg.batching == "sequential":
            self.batcher = SequentialBatcher(data.train_ids, cfg.batch_size, cfg.seq_len)
        else:
            self.batcher = RandomBatcher(data.train_ids, cfg.batch_size, cfg.seq_len, seed=seed)
        self.carry = cfg.batching == "sequential"
        self.steps_per_epoch = len(self.batcher)
        self.val_ids = _as_tensor(data.val_ids)  # shares the array's memory
        self.state = None
        self._it = iter(self.batcher)
        self._fingerprint = fingerprint(data.train_ids)

    def next_batch(self):
        try:
            x, y = next(self._it)
        except StopIteration:        # a new epoch: the streams start again from a zero state
            self.state = None
            self._it = iter(self.batcher)
            x, y = next(self._it)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def loss(self, batch):
        x, y = batch
        loss, state = lm_loss(self.model, x, y, self.state if self.carry else None)
        if self.carry:
            self.state = tuple(s.detach() for s in state)
        return loss, y.numel()

    def evaluate(self) -> dict:
        total, count = sum_log_loss(self.model, self.val_ids)
        return {k: v for k, v in metrics(total, count, self.data.unit).items() if k != "tokens"}

    def state_dict(self) -> dict:
        state = None if self.state is None else [s.cpu() for s in self.state]
        return {"batcher": self.batcher.state_dict(), "state": state,
                "train_fingerprint": self._fingerprint}

    def load_state_dict(self, d: dict) -> None:
        if d["train_fingerprint"] != self._fingerprint:
            raise ValueError("the training data differs from the data the run was trained on "
                             "(its token ids have another SHA-256); exact resumption needs the same data")
        self.batcher.load_state_dict(d["batcher"])
        self._it = iter(self.batcher)
        at_epoch_end = self.batcher.position >= len(self.batcher)  # the next batch starts an epoch
        if d["state"] is None or at_epoch_end:
            self.state = None
        else:
            self.state = tuple(s.to(self.device) for s in d["state"])
