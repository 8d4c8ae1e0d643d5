"""`TextClassifier`: token ids -> embedding -> (bidirectional) recurrent stack -> pooling -> dense.

Shapes: B batch, T time (the longest text of the batch), E embedding width, H hidden, D directions,
C classes, V vocabulary.

Padding never changes a result, and costs no packing. Each layer runs each direction as one unpadded
sequence through the engine's fastest kernel (`rnnkit.core.RecurrentStack` without lengths): the
forward direction reads a right-padded text's real tokens before its padding, so its outputs at the real
steps are exact (a recurrence is causal); the backward direction gets each text reversed within its own
length (`rnnkit.core.kernels.reverse_padded`), so it starts at the text's real end and its padding again
comes last. The outputs at padded steps are garbage that nothing reads: the next layer's real steps
never see them (causality again) and every pooling masks them. So a text gets the same logits whatever
it is batched with (tests/tasks/test_classify_model.py), and the batch runs on the unpadded kernels:
PyTorch's LSTM on a PackedSequence (what the engine's ``lengths=`` uses) was 2-6x slower on the CPU than
on the same batch unpadded (measured here, one thread).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit.cells import CELLS
from rnnkit.core import RecurrentStack
from rnnkit.core.kernels import reverse_padded
from rnnkit.tasks.classify.nbsvm import NBLinear

POOLINGS = ("last", "max", "mean", "attention")


def mean_log_probs(logits: Tensor) -> Tensor:
    """``log(mean_k softmax(logits[k]))`` ``(B, C)`` of ``(K, B, C)`` logits, computed stably (a
    log-sum-exp of the log-probabilities)."""
    return torch.logsumexp(torch.log_softmax(logits.float(), dim=2), dim=0) - math.log(logits.shape[0])


class TextClassifier(nn.Module):
    """``forward(ids (B, T), lengths (B,)) -> logits (B, C)``.

    ``pooling``: ``"last"`` the final state of each direction (the forward one at the text's last
    token, the backward one at its first), ``"max"`` / ``"mean"`` over the valid steps of the top
    layer's outputs, ``"attention"`` a learned weighted mean (additive scoring, Bahdanau-style:
    ``softmax_t(v · tanh(W o_t))`` over the valid steps). ``dropout`` applies to the embeddings, between
    layers and before the output layer.

    ``subwords`` > 0 (word level): ``forward`` also takes each word's hashed character n-gram ids
    ``(B, T, K)`` (`rnnkit.tasks.classify.subwords`, 0 = padding) and adds the mean of their vectors,
    from a table of ``subwords + 1`` rows, to the word's embedding.

    ``ngrams`` > 0: a linear branch (`rnnkit.tasks.classify.nbsvm.NBLinear`, logistic regression on
    NB-weighted word n-grams hashed into ``ngrams`` buckets, fitted before training and never trained
    by the optimizer) reads each text's n-gram ids ``(B, N)`` (0 = padding); ``forward`` then returns
    ``log(mean(softmax(recurrent logits), softmax(branch logits)))`` (B, C), whose softmax is the two
    models' mean probabilities and whose argmax is their label. `branch_logits` gives the two apart
    (the recurrent model learns from its own loss).
    """

    def __init__(self, vocab_size: int, num_classes: int, cell: str = "lstm", hidden: int = 128,
                 layers: int = 1, embedding: int = 128, bidirectional: bool = True,
                 pooling: str = "max", dropout: float = 0.0, subwords: int = 0, ngrams: int = 0,
                 **cell_kwargs):
        super().__init__()
        owner = "TextClassifier"
        for name, value, low in (("vocab_size", vocab_size, 2), ("num_classes", num_classes, 2),
                                 ("hidden", hidden, 1), ("layers", layers, 1),
                                 ("embedding", embedding, 1), ("subwords", subwords, 0),
                                 ("ngrams", ngrams, 0)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
            if value < low:
                raise ValueError(f"{owner}: {name} must be >= {low}, got {value}")
        if not isinstance(cell, str) or cell not in CELLS:
            raise ValueError(f"{owner}: unknown cell {cell!r}; known cells: {sorted(CELLS)}")
        if pooling not in POOLINGS:
            raise ValueError(f"{owner}: pooling must be one of {POOLINGS}, got {pooling!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"{owner}: dropout must be a number in [0, 1), got {dropout!r}")
        self.vocab_size, self.num_classes, self.cell = vocab_size, num_classes, cell
        self.hidden, self.layers, self.embedding_size = hidden, layers, embedding
        self.bidirectional, self.pooling, self.dropout = bidirectional, pooling, float(dropout)
        self.cell_kwargs = dict(cell_kwargs)
        self.embed = nn.Embedding(vocab_size, embedding)
        self.subwords = subwords
        if subwords:
            self.subword_embed = nn.Embedding(subwords + 1, embedding, padding_idx=0)
        self.ngrams = ngrams
        if ngrams:
            self.nb = NBLinear(ngrams, num_classes)
        self.num_directions = 2 if bidirectional else 1
        # one single-layer stack per layer and direction: forward[k], backward[k]
        self.forward_layers, self.backward_layers = nn.ModuleList(), nn.ModuleList()
        width = embedding
        for _ in range(layers):
            for stacks in (self.forward_layers, self.backward_layers)[:self.num_directions]:
                stacks.append(stack := RecurrentStack(cell, width, hidden, 1, **cell_kwargs))
            width = stack.output_size * self.num_directions   # D * H_out
        if pooling == "attention":
            self.attn_proj = nn.Linear(width, width)
            self.attn_score = nn.Linear(width, 1, bias=False)
        self.drop = nn.Dropout(self.dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, ids: Tensor, lengths: Tensor, subwords: Tensor | None = None,
                ngrams: Tensor | None = None) -> Tensor:
        logits, branch = self.branch_logits(ids, lengths, subwords, ngrams)
        if branch is None:
            return logits
        return mean_log_probs(torch.stack([logits, branch]))              # (B, C)

    def recurrent_log_probs(self, ids: Tensor, lengths: Tensor, subwords: Tensor | None = None,
                            ngrams: Tensor | None = None) -> Tensor:
        """The recurrent model's own log-probabilities ``(B, C)``, without the n-gram branch (what
        validation selects the recurrent model's weights by)."""
        return torch.log_softmax(self.branch_logits(ids, lengths, subwords, ngrams)[0].float(), 1)

    def branch_logits(self, ids: Tensor, lengths: Tensor, subwords: Tensor | None = None,
                      ngrams: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The recurrent model's logits ``(B, C)`` and the n-gram branch's ``(B, C)`` (None without)."""
        if ids.dim() != 2:
            raise ValueError(f"TextClassifier: expected ids of shape (B, T), got {tuple(ids.shape)}")
        B, T = ids.shape
        if subwords is None and self.subwords:
            raise ValueError(f"TextClassifier: built with subwords={self.subwords}; expected the words' "
                             f"n-gram ids (B={B}, T={T}, K) beside the ids, got none")
        if subwords is not None and (not self.subwords or subwords.dim() != 3
                                     or tuple(subwords.shape[:2]) != (B, T)):
            raise ValueError(f"TextClassifier: built with subwords={self.subwords}; expected "
                             f"{f'n-gram ids (B={B}, T={T}, K)' if self.subwords else 'no n-gram ids'}, "
                             f"got shape {tuple(subwords.shape)}")
        lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
        if lengths.shape != (B,) or int(lengths.min()) < 1 or int(lengths.max()) > T:
            raise ValueError(f"TextClassifier: expected lengths (B={B},) in [1, T={T}], got "
                             f"{lengths.tolist() if lengths.numel() <= 8 else tuple(lengths.shape)}")
        if (ngrams is None) != (not self.ngrams) or (ngrams is not None and (
                ngrams.dim() != 2 or ngrams.shape[0] != B)):
            raise ValueError(f"TextClassifier: built with ngrams={self.ngrams}; expected "
                             f"{f'n-gram ids (B={B}, N)' if self.ngrams else 'no n-gram ids'}, got "
                             f"{None if ngrams is None else tuple(ngrams.shape)}")
        x = self.drop(self.inputs(ids, subwords))                         # (T, B, E)
        out = self.encode(x, lengths)                                     # (T, B, D*H)
        logits = self.head(self.drop(self.pool(out, lengths)))            # (B, C)
        return logits, None if ngrams is None else self.nb(ngrams)

    def inputs(self, ids: Tensor, subwords: Tensor | None = None) -> Tensor:
        """What the first layer reads: ``ids`` ``(B, T)`` (and ``subwords`` ``(B, T, K)``) -> ``(T, B, E)``,
        each word's vector plus the mean of its n-gram vectors (no dropout; `rnnkit explain` and the
        export read the same)."""
        x = self.embed(ids.t())                                           # (T, B, E)
        if subwords is not None:
            sub = subwords.transpose(0, 1)                                # (T, B, K)
            count = (sub > 0).sum(2, keepdim=True).clamp_min(1)           # (T, B, 1)
            x = x + self.subword_embed(sub).sum(2) / count                # padding rows are zero
        return x

    def encode(self, x: Tensor, lengths: Tensor) -> Tensor:
        """``x`` ``(T, B, E)`` -> the top layer's outputs ``(T, B, D*H)``, exact at each text's real
        steps (garbage past its length: see the module docstring)."""
        for k, fwd in enumerate(self.forward_layers):
            if k:
                x = self.drop(x)                                          # between layers
            out, _ = fwd(x)                                               # (T, B, H)
            if self.bidirectional:
                back, _ = self.backward_layers[k](reverse_padded(x, lengths))
                out = torch.cat([out, reverse_padded(back, lengths)], 2)  # (T, B, 2H)
            x = out
        return x

    def pool(self, out: Tensor, lengths: Tensor) -> Tensor:
        """``out`` ``(T, B, D*H)`` -> ``(B, D*H)``, reading only each text's real steps."""
        if self.pooling == "last":
            B, H = out.shape[1], out.shape[2] // self.num_directions
            last = out[lengths.to(out.device) - 1, torch.arange(B, device=out.device)]  # (B, D*H)
            if not self.bidirectional:
                return last
            # the forward direction ends at the last real token, the backward one at the first
            return torch.cat([last[:, :H], out[0, :, H:]], 1)
        T = out.shape[0]
        valid = (torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)).to(out.device)  # (T, B)
        if self.pooling == "max":
            return out.masked_fill(~valid.unsqueeze(2), float("-inf")).amax(0)
        if self.pooling == "mean":
            total = out.masked_fill(~valid.unsqueeze(2), 0.0).sum(0)
            return total / lengths.to(out.device, out.dtype).unsqueeze(1)
        return (self.attention(out, valid).unsqueeze(2) * out).sum(0)     # (B, D*H)

    def attention(self, out: Tensor, valid: Tensor) -> Tensor:
        """Attention pooling's weight of each step ``(T, B)`` (each text's sum to 1 over its ``valid``
        ``(T, B)`` steps; 0 at padding) for the top layer's outputs ``out`` ``(T, B, D*H)``."""
        scores = self.attn_score(torch.tanh(self.attn_proj(out))).squeeze(2)   # (T, B)
        return torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=0)

    def config(self) -> dict:
        """The constructor arguments (what ``config.json`` records)."""
        return {"vocab_size": self.vocab_size, "num_classes": self.num_classes, "cell": self.cell,
                "hidden": self.hidden, "layers": self.layers, "embedding": self.embedding_size,
                "bidirectional": self.bidirectional, "pooling": self.pooling, "dropout": self.dropout,
                "subwords": self.subwords, "ngrams": self.ngrams, **self.cell_kwargs}
