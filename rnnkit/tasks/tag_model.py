"""The tagger: word embedding + character-level word encoder -> bidirectional recurrent stack ->
per-token dense layer (the ``TimeDistributed`` pattern), optionally under a linear-chain CRF.

Input of ``forward`` (a `TagBatch`): B sentences padded to T words, with their ``lengths``; the
batch's U distinct word forms spelled as character ids ``chars (U, C)`` with ``char_lengths (U,)``,
and ``forms (B, T)`` giving each word's row in them. Each form is encoded once per batch however often
it occurs. The recurrent layers run with ``lengths`` (`rnnkit.core.stack.RecurrentStack`): a
sentence's states stop at its end and its backward direction starts at its last real word, so
padding never changes a real word's output.

Shapes: B batch (sentences), T words, U distinct forms, C characters, E word embedding, F character
features, H hidden, K tags.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.core.stack import RecurrentStack
from rnnkit.tasks.crf import CRF

CHAR_ENCODERS = ("lstm", "cnn")
PAD, UNK = 0, 1          # ids of <pad> and <unk> in the word and character vocabularies
BOW, EOW = 2, 3          # the characters that open and close each word


@dataclass
class TagBatch:
    words: Tensor          # (B, T) word ids (<pad> past each end)
    lengths: Tensor        # (B,) words per sentence
    chars: Tensor          # (U, C) character ids of the distinct forms
    char_lengths: Tensor   # (U,)
    forms: Tensor          # (B, T) row of each word in ``chars``
    tags: Tensor | None    # (B, T) tag ids (-100 past each end), None when predicting
    aux: Tensor | None = None   # (A, B, T) auxiliary columns' ids (-100: none), training only

    def to(self, device) -> TagBatch:
        move = {k: (v.to(device, non_blocking=True) if isinstance(v, Tensor) else v)
                for k, v in self.__dict__.items()}
        # the recurrent layers pack by lengths, which PyTorch wants on the CPU
        move["lengths"], move["char_lengths"] = self.lengths, self.char_lengths
        return TagBatch(**move)

    @property
    def mask(self) -> Tensor:
        T = self.words.shape[1]
        return torch.arange(T, device=self.words.device) < self.lengths.to(self.words.device).unsqueeze(1)


class CharEncoder(nn.Module):
    """Each form's characters -> one vector ``(U, F)``: a bidirectional LSTM's two final states
    (F = 2 * hidden), or convolutions over character n-grams of each width in ``widths``, each
    max-pooled over the word (F = hidden * len(widths)).

    A width-w window is placed at each of the form's characters (from ``(w - 1) // 2`` characters
    before it to ``w // 2`` after: centred for odd w); beyond the form's ends the convolution sees
    zeros, so a form's vector never depends on how the batch is padded."""

    def __init__(self, num_chars: int, embedding: int, hidden: int, kind: str = "lstm",
                 widths: tuple[int, ...] = (3,)):
        super().__init__()
        if kind not in CHAR_ENCODERS:
            raise ValueError(f"char_encoder must be one of {CHAR_ENCODERS}, got {kind!r}")
        widths = tuple(widths)
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"char_widths must be one or more integers >= 1, got {widths!r}")
        self.kind = kind
        self.embed = nn.Embedding(num_chars, embedding, padding_idx=PAD)
        if kind == "lstm":
            self.rnn = RecurrentStack("lstm", embedding, hidden, 1, batch_first=True, bidirectional=True)
            self.output_size = 2 * hidden
        else:
            self.widths = widths
            self.convs = nn.ModuleList(nn.Conv1d(embedding, hidden, kernel_size=w) for w in widths)
            self.output_size = hidden * len(widths)

    def forward(self, chars: Tensor, lengths: Tensor) -> Tensor:
        x = self.embed(chars)                                                 # (U, C, E_c)
        if self.kind == "lstm":
            _, (h, _) = self.rnn(x, lengths=lengths)                          # h (2, U, H_c)
            return torch.cat([h[0], h[1]], dim=1)                             # (U, 2 H_c)
        U, C = chars.shape
        lengths = lengths.to(chars.device).unsqueeze(1)                       # (U, 1)
        x = x.masked_fill((torch.arange(C, device=chars.device) >= lengths).unsqueeze(2), 0.0)
        x = x.transpose(1, 2)                                                 # (U, E_c, C)
        valid = (torch.arange(C, device=chars.device) < lengths).unsqueeze(1)  # (U, 1, C)
        pooled = []
        for w, conv in zip(self.widths, self.convs):
            y = conv(nn.functional.pad(x, ((w - 1) // 2, w // 2)))            # (U, F_w, C)
            pooled.append(y.masked_fill(~valid, float("-inf")).amax(dim=2))   # (U, F_w)
        return torch.cat(pooled, dim=1)                                       # (U, F)


class Tagger(nn.Module):
    """Word embedding (E) + character encoder (F) -> ``layers`` bidirectional ``cell`` layers of
    ``hidden`` units -> dense to ``num_tags`` logits; with ``crf``, a `CRF` over those logits.

    ``aux_tags`` (one size per auxiliary column, e.g. XPOS and FEATS beside UPOS): a dense layer each
    on the same recurrent states, trained beside the tags (multi-task learning: the columns share
    everything below their output layers, as UDPipe 2 and Stanza train UPOS, XPOS and FEATS) and
    never used for prediction."""

    def __init__(self, num_words: int, num_chars: int, num_tags: int, *, embedding: int = 100,
                 char_embedding: int = 32, char_hidden: int = 64, char_encoder: str = "lstm",
                 char_widths: tuple[int, ...] = (3,), cell: str = "lstm", hidden: int = 200,
                 layers: int = 2, dropout: float = 0.33,
                 crf: bool = False, aux_tags: tuple[int, ...] | list[int] = ()):
        super().__init__()
        self._config = dict(num_words=num_words, num_chars=num_chars, num_tags=num_tags,
                            embedding=embedding, char_embedding=char_embedding, char_hidden=char_hidden,
                            char_encoder=char_encoder, char_widths=list(char_widths), cell=cell,
                            hidden=hidden, layers=layers,
                            dropout=dropout, crf=crf, aux_tags=list(aux_tags))
        self.embed = nn.Embedding(num_words, embedding, padding_idx=PAD)
        self.chars = CharEncoder(num_chars, char_embedding, char_hidden, char_encoder, tuple(char_widths))
        self.drop = nn.Dropout(dropout)
        self.rnn = RecurrentStack(cell, embedding + self.chars.output_size, hidden, layers,
                                  batch_first=True, bidirectional=True,
                                  dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(2 * hidden, num_tags)
        self.crf = CRF(num_tags) if crf else None
        self.aux_out = nn.ModuleList(nn.Linear(2 * hidden, k) for k in aux_tags)

    def config(self) -> dict:
        """The constructor's arguments (config.json's ``model`` section)."""
        return dict(self._config)

    def inputs(self, batch: TagBatch) -> Tensor:
        """What the recurrent stack reads: each word's embedding and spelling ``(B, T, E + F)``."""
        spelled = self.chars(batch.chars, batch.char_lengths)                 # (U, F)
        return torch.cat([self.embed(batch.words), spelled[batch.forms]], dim=2)

    def states(self, batch: TagBatch) -> Tensor:
        """The recurrent stack's output per word ``(B, T, 2H)``, dropped out as the output layers
        read it."""
        h, _ = self.rnn(self.drop(self.inputs(batch)), lengths=batch.lengths)  # (B, T, 2H)
        return self.drop(h)

    def forward(self, batch: TagBatch) -> Tensor:
        """Per-word tag logits ``(B, T, K)`` (the CRF's emission scores with ``crf``)."""
        return self.out(self.states(batch))                                   # (B, T, K)

    def loss(self, batch: TagBatch, label_smoothing: float = 0.0,
             aux_weight: float = 0.0) -> tuple[Tensor, Tensor]:
        """(summed negative log-likelihood, number of words): per word with a softmax, per sentence
        with the CRF (its sum still divided by words, so both read per word). ``label_smoothing``
        (softmax only): the target puts that much of its mass evenly on all K tags. ``aux_weight``:
        with the batch's auxiliary columns, each one's summed cross-entropy is added at that weight."""
        if batch.tags is None:
            raise ValueError("TagModel.loss: the batch has no tags (a split read without them)")
        h = self.states(batch)
        logits = self.out(h)
        mask = batch.mask
        if self.crf is not None:
            nll = -self.crf.log_likelihood(logits, batch.tags.clamp(min=0), mask).sum()
        else:
            nll = nn.functional.cross_entropy(logits.flatten(0, 1), batch.tags.flatten(), reduction="sum",
                                              ignore_index=-100, label_smoothing=label_smoothing)
        if aux_weight and batch.aux is not None and len(self.aux_out):
            for head, target in zip(self.aux_out, batch.aux):
                nll = nll + aux_weight * nn.functional.cross_entropy(
                    head(h).flatten(0, 1), target.flatten(), reduction="sum", ignore_index=-100)
        return nll, mask.sum()

    @torch.no_grad()
    def decode(self, batch: TagBatch, logits: Tensor | None = None) -> list[list[int]]:
        """Each sentence's best tag ids: the argmax per word, or the CRF's Viterbi path."""
        logits = self(batch) if logits is None else logits
        mask = batch.mask
        if self.crf is not None:
            return self.crf.decode(logits, mask)
        best = logits.argmax(2).tolist()
        return [row[:n] for row, n in zip(best, batch.lengths.tolist())]
