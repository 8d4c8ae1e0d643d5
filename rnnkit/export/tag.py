"""Export of a sequence-tagging run (`rnnkit.tasks.tag_model.Tagger`): one graph, ``model``:

``words (B, T) int64, lengths (B,) int64, chars (U, C) int64, char_lengths (U,) int64,
forms (B, T) int64 -> logits (B, T, K)``

— the tagger's own batch (`rnnkit.tasks.tag_model.TagBatch`): the sentences' word ids padded past
each length, the U word forms spelled as character ids (``<bow>`` word ``<eow>``, padded past each
``char_lengths``), and for each word its row in ``chars``. The simplest feed spells every word:
``U = B * T``, ``forms = arange(B * T).view(B, T)`` (a form spelled twice gives the same vector).
``tag_vocab.json`` holds the word, character and tag vocabularies; `rnnkit.tasks.tag_encode.spell`
is the recipe (lower-case the word for ``words`` when ``lower``; the characters keep their case).

The lengths are in the graph: a sentence's states stop at its end and its backward direction starts
at its last real word, so padding never changes a real word's logits; at padded positions the logits
are the output layer's bias. With a CRF (``--crf``) the logits are the CRF's emission scores and the
CRF's scores are in export.json (``crf``: ``transitions[i][j]`` from tag i to tag j, ``start``,
``end``); Viterbi decoding is the consumer's (it is a dynamic program over a few tags, not part of
the graph): the best path maximises ``start[y_1] + sum_t logits_t[y_t] + sum_t transitions[y_{t-1},
y_t] + end[y_n]`` over the real words.

Shapes: B sentences, T words, U forms, C characters, K tags.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.export.contract import ExportError, ExportPlan, Graph
from rnnkit.export.recurrence import ExportStack, export_unavailable
from rnnkit.train import RunFolder, RunFolderError
from rnnkit.train.checkpoint import CONFIG, VOCAB


class ExportTagger(nn.Module):
    """`Tagger.forward` in exportable operators: ``(words, lengths, chars, char_lengths, forms) ->
    (logits (B, T, K),)``."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.char_rnn = ExportStack(model.chars.rnn, bidirectional=True) if model.chars.kind == "lstm" \
            else None
        self.rnn = ExportStack(model.rnn, bidirectional=True)

    @staticmethod
    def _zeros(stack: ExportStack, x: Tensor) -> tuple[Tensor, ...]:
        # getattr: nn.Module's __getattr__ types every attribute as Tensor | Module
        layers: int = getattr(stack.stack, "num_layers")
        shapes: list[tuple[int, ...]] = getattr(stack.stack, "cells")[0].state_shapes
        return tuple(x.new_zeros((layers * 2, x.shape[1], *shape)) for shape in shapes)

    def spell(self, chars: Tensor, char_lengths: Tensor) -> Tensor:
        """``(U, F)``: each form's vector (`CharEncoder.forward`)."""
        enc = self.model.chars
        if self.char_rnn is None:
            return enc(chars, char_lengths)                                # the CNN: plain operators
        x = enc.embed(chars).transpose(0, 1)                               # (C, U, E_c)
        _, (h, *_) = self.char_rnn(x, self._zeros(self.char_rnn, x), char_lengths)   # h (2, U, H_c)
        return torch.cat([h[0], h[1]], dim=1)                              # (U, 2 H_c)

    def forward(self, words: Tensor, lengths: Tensor, chars: Tensor, char_lengths: Tensor,
                forms: Tensor) -> tuple[Tensor]:
        m = self.model
        spelled = self.spell(chars, char_lengths)                          # (U, F)
        x = torch.cat([m.embed(words), spelled[forms]], dim=2).transpose(0, 1)   # (T, B, E + F)
        h, _ = self.rnn(x, self._zeros(self.rnn, x), lengths)              # (T, B, 2H)
        return (m.out(h.transpose(0, 1)),)                                 # (B, T, K)


def plan(run: RunFolder) -> ExportPlan:
    """The export plan of a tagging run (`rnnkit.export.contract`)."""
    from rnnkit.tasks.tag_api import load
    from rnnkit.tasks.tag_model import BOW, EOW, PAD, TagBatch
    loaded = load(run.path)
    model, vocabs = loaded.model, loaded.vocabs
    for what, stack in (("sentence layers", model.rnn), ("character encoder", getattr(model.chars, "rnn",
                                                                                      None))):
        reason = stack is not None and export_unavailable(stack, bidirectional=True)
        if reason:
            raise ExportError(f"{run.path}: this tagger's {what} cannot be exported: {reason}")
    n_words, n_chars = len(vocabs.words), len(vocabs.chars)

    def sample(batch: int, time: int) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(batch * 1000 + time)
        lengths = torch.randint(1, time + 1, (batch,), generator=g)
        lengths[0] = time
        pad = torch.arange(time) >= lengths.unsqueeze(1)                  # (B, T)
        words = torch.randint(2, n_words, (batch, time), generator=g).masked_fill(pad, PAD)
        U = batch * time                                                  # every word spelled
        C = time + 3                                                      # chars: its own dynamic size
        char_lengths = torch.randint(3, C + 1, (U,), generator=g)
        chars = torch.randint(4, max(5, n_chars), (U, C), generator=g) % n_chars
        chars[:, 0] = BOW
        chars[torch.arange(U), char_lengths - 1] = EOW
        chars = chars.masked_fill(torch.arange(C) >= char_lengths.unsqueeze(1), PAD)
        forms = torch.randperm(U, generator=g).view(batch, time)
        return words, lengths, chars, char_lengths, forms

    def reference(words, lengths, chars, char_lengths, forms) -> tuple[Tensor, ...]:
        with torch.no_grad():
            return (model(TagBatch(words, lengths, chars, char_lengths, forms, None)),)

    graph = Graph("model", ExportTagger(model).eval(), sample,
                  ("words", "lengths", "chars", "char_lengths", "forms"), ("logits",),
                  {"words": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
                   "chars": {0: "forms", 1: "chars"}, "char_lengths": {0: "forms"},
                   "forms": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"}},
                  reference,
                  "word ids (batch, time), lengths (batch,), the forms' character ids (forms, chars) and "
                  "lengths (forms,), each word's form row (batch, time); all int64 -> per-word tag "
                  "logits (batch, time, K) (with a CRF: its emission scores)")
    try:
        files = {"tag_vocab.json": run.require(VOCAB).read_bytes(), CONFIG: run.require(CONFIG).read_bytes()}
    except OSError as exc:
        raise RunFolderError(f"{run.path}: cannot read the run's files: {exc}") from None
    cfg = loaded.config
    info = {
        "cell": model.config()["cell"], "layers": model.config()["layers"], "tags": vocabs.tags,
        "vocabulary": {"file": "tag_vocab.json", "lower": vocabs.lower, "pad_id": PAD,
                       "unk_id": 1, "char_specials": {"<pad>": PAD, "<unk>": 1, "<bow>": BOW, "<eow>": EOW},
                       "max_word_chars": cfg.max_word_chars, "char_encoder": model.chars.kind,
                       **({"char_widths": list(model.chars.widths)} if model.chars.kind == "cnn" else {})},
        "decoding": "argmax of the logits per word" if model.crf is None else
                    "Viterbi over the logits (emission scores) with export.json's crf scores: done by "
                    "the consumer, not in the graph",
    }
    if model.crf is not None:
        info["crf"] = {"transitions": model.crf.trans.detach().tolist(),
                       "start": model.crf.start.detach().tolist(), "end": model.crf.end.detach().tolist(),
                       "score": "start[y_1] + sum_t logits[t, y_t] + sum_{t>1} transitions[y_{t-1}][y_t] "
                                "+ end[y_n] over the real words; Viterbi maximises it"}
    return ExportPlan("tag", [graph], files, info)
