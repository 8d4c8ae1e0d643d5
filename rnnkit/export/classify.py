"""Export of a text-classification run (`rnnkit.tasks.classify.TextClassifier`): one graph, ``model``:
``ids (B, T) int64, lengths (B,) int64 -> logits (B, K)``; a model built with subword features
(``--subwords N``, the default) also reads ``subwords (B, T, S) int64``, each word's hashed character
n-gram ids (`rnnkit.tasks.classify.subwords`: the hashing is string work, done by the caller before the
graph, as the vocabulary lookup is; export.json says the rule), 0 for padding. A model with the NB
n-gram branch (``--ngrams N``, the default) also reads ``ngrams (B, N) int64``, each text's distinct
hashed word 1- and 2-gram ids (`rnnkit.tasks.classify.nbsvm`; export.json says the rule), 0 for padding,
and its output is then the log of the two models' mean probabilities.

The lengths are in the graph, as in the model: each direction of each layer runs over the padded
batch and every pooling reads only a text's real steps (the backward direction gets each text
reversed within its own length), so padding — however much, whatever the text is batched with —
never changes a text's logits. Pad past each length with the vocabulary's ``<pad>`` id (any id gives
the same logits); every length must be at least 1. The vocabulary, the labels (the order of the
logits) and config.json are written beside the model.

Shapes: B batch, T time (the longest text of the batch), K classes, S n-grams per word (the batch's
most, padded with 0).
"""
from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from rnnkit.core.kernels import reverse_padded
from rnnkit.export.contract import ExportError, ExportPlan, Graph, run_files
from rnnkit.export.recurrence import ExportStack, export_unavailable
from rnnkit.tasks.classify.model import TextClassifier, mean_log_probs
from rnnkit.tasks.classify.nbsvm import ORDER
from rnnkit.tasks.classify.subwords import MAX_N, MAX_PER_WORD, MIN_N
from rnnkit.train import RunFolder
from rnnkit.train.checkpoint import CONFIG, VOCAB


class ExportClassifier(nn.Module):
    """``forward(ids (B, T), lengths (B,)) -> (logits (B, K),)``: `TextClassifier.forward` in
    exportable operators (no checks on the lengths: the graph trusts them)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.fwd = nn.ModuleList(ExportStack(s) for s in model.forward_layers)
        self.bwd = nn.ModuleList(ExportStack(s) for s in model.backward_layers)

    def _zeros(self, stack, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(x.new_zeros((1, x.shape[1], *s)) for s in stack.stack.cells[0].state_shapes)

    def forward(self, ids: Tensor, lengths: Tensor, subwords: Tensor | None = None,
                ngrams: Tensor | None = None) -> tuple[Tensor]:
        m = self.model
        x = m.inputs(ids, subwords)                                       # (T, B, E)
        for k, fwd in enumerate(self.fwd):
            out, _ = fwd(x, self._zeros(fwd, x))                          # (T, B, H)
            if m.bidirectional:
                back, _ = self.bwd[k](reverse_padded(x, lengths), self._zeros(self.bwd[k], x))
                out = torch.cat([out, reverse_padded(back, lengths)], 2)  # (T, B, 2H)
            x = out
        logits = m.head(m.pool(x, lengths))                               # (B, K)
        if ngrams is None:
            return (logits,)
        return (mean_log_probs(torch.stack([logits, m.nb(ngrams)])),)     # (B, K)


class ExportEnsemble(nn.Module):
    """``forward(ids, lengths[, subwords]) -> (log mean probabilities (B, K),)`` of a
    `rnnkit.tasks.classify.ensemble.ClassifierEnsemble`: each member's `ExportClassifier`, then
    ``log(mean softmax)`` (a softmax over the output gives the ensemble's probabilities)."""

    def __init__(self, ensemble):
        super().__init__()
        self.members = nn.ModuleList(ExportClassifier(m) for m in ensemble.members)

    def forward(self, ids: Tensor, lengths: Tensor, subwords: Tensor | None = None,
                ngrams: Tensor | None = None) -> tuple[Tensor]:
        return (mean_log_probs(torch.stack([m(ids, lengths, subwords, ngrams)[0] for m in self.members])),)


def plan(run: RunFolder) -> ExportPlan:
    """The export plan of a classification run (`rnnkit.export.contract`)."""
    from rnnkit.tasks.classify.ensemble import ClassifierEnsemble
    from rnnkit.tasks.classify.task import LABELS, load
    loaded = load(run)
    model = loaded.model
    members = [cast(TextClassifier, m) for m in model.members] if isinstance(model, ClassifierEnsemble) \
        else [model]
    for stack in (s for m in members for s in (*m.forward_layers, *m.backward_layers)):
        reason = export_unavailable(stack)
        if reason:
            raise ExportError(f"{run.path}: this classifier ({model.cell}) cannot be exported: {reason}")
    V, pad = model.vocab_size, loaded.pad_id

    def sample(batch: int, time: int) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(batch * 1000 + time)
        lengths = torch.randint(1, time + 1, (batch,), generator=g)
        lengths[0] = time                                                 # the longest fills the batch
        ids = torch.randint(0, V, (batch, time), generator=g)
        ids = ids.masked_fill(torch.arange(time) >= lengths.unsqueeze(1), pad)
        out: tuple[Tensor, ...] = (ids, lengths)
        if buckets:
            per_word = 3 + time % 5                 # S differs from T, so the two stay distinct dims
            sub = torch.randint(1, buckets + 1, (batch, time, per_word), generator=g)
            out += (sub.masked_fill(torch.rand(batch, time, per_word, generator=g) < 0.3, 0),)
        if ngram_buckets:
            count = 2 * time + 1                    # N differs from T and S: distinct dims
            ng = torch.randint(1, ngram_buckets + 1, (batch, count), generator=g)
            out += (ng.masked_fill(torch.rand(batch, count, generator=g) < 0.3, 0),)
        return out

    def reference(*inputs: Tensor) -> tuple[Tensor, ...]:
        with torch.no_grad():
            return (model(*inputs),)

    buckets, ngram_buckets = model.subwords, model.ngrams
    names = ("ids", "lengths") + (("subwords",) if buckets else ()) + (("ngrams",) if ngram_buckets else ())
    dims = {"ids": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"}}
    if buckets:
        dims["subwords"] = {0: "batch", 1: "time", 2: "ngrams"}
    if ngram_buckets:
        dims["ngrams"] = {0: "batch", 1: "text_ngrams"}
    exported = ExportEnsemble(model) if len(members) > 1 else ExportClassifier(model)
    graph = Graph("model", exported.eval(), sample, names, ("logits",), dims, reference,
                  "token ids (batch, time) int64, padded past each text's length, and the lengths "
                  "(batch,) int64 (each in [1, time])" +
                  (", and each word's n-gram ids (batch, time, ngrams) int64, 0 for padding "
                   "(export.json: subwords)" if buckets else "") +
                  (", and each text's distinct word n-gram ids (batch, text_ngrams) int64, 0 for "
                   "padding (export.json: ngrams)" if ngram_buckets else "") +
                  " -> class logits (batch, K) in the order of labels.json (softmax over the last "
                  "axis for probabilities" + ("; with the n-gram branch: the log of the recurrent "
                                              "model's and the branch's mean probabilities"
                                              if ngram_buckets else "")
                  + (f"; an ensemble of {len(members)} models: the log of their mean probabilities"
                     if len(members) > 1 else "") + ")")
    files = run_files(run, (VOCAB, LABELS, CONFIG))
    cfg, vocab = loaded.config, loaded.vocab
    info = {
        "cell": model.cell, "layers": model.layers, "hidden": model.hidden,
        "bidirectional": model.bidirectional, "pooling": model.pooling, "labels": loaded.labels,
        "ensemble": len(members),
        "vocabulary": {"file": VOCAB, "level": cfg.level, "lower": cfg.lower, "pad_id": pad,
                       "unk_id": getattr(vocab, "unk_id", None), "max_len": cfg.max_len},
        "subwords": None if not buckets else {
            "buckets": buckets, "min_n": MIN_N, "max_n": MAX_N, "max_per_word": MAX_PER_WORD,
            "rule": "each word (as tokenised by the vocabulary) read as '<' + word + '>'; its character "
                    "n-grams of min_n..max_n characters, shortest first, left to right; id = 1 + "
                    "crc32(utf-8 bytes of the n-gram) % buckets; at most max_per_word per word; 0 pads"},
        "ngrams": None if not ngram_buckets else {
            "buckets": ngram_buckets, "order": ORDER,
            "rule": "the text's words (as tokenised by the vocabulary, cut to max_len); its word 1- to "
                    "order-grams, each joined by one space; id = 1 + crc32(utf-8 bytes) % buckets; each "
                    "distinct id once, in any order; 0 pads"},
        "padding": "pad each text past its length (any id; <pad> by convention); the logits of a "
                   "text do not depend on the padding or on the other texts of the batch",
    }
    return ExportPlan("classify", [graph], files, info)
