"""`TextClassifier`: token ids -> embedding -> (bidirectional) recurrent stack -> pooling -> dense.

Shapes: B batch, T time (the longest text of the batch), E embedding width, H hidden, D directions,
C classes, V vocabulary.

Padding never changes a result: the stack gets the texts' ``lengths`` (every layer masks them, and the
backward direction starts at each text's real end, not at the padding), and every pooling ignores the
padded steps. So a text gets the same logits whatever it is batched with.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from rnnkit.cells import CELLS
from rnnkit.core import RecurrentStack

POOLINGS = ("last", "max", "mean", "attention")


class TextClassifier(nn.Module):
    """``forward(ids (B, T), lengths (B,)) -> logits (B, C)``.

    ``pooling``: ``"last"`` the final state of each direction (the forward one at the text's last
    token, the backward one at its first), ``"max"`` / ``"mean"`` over the valid steps of the top
    layer's outputs, ``"attention"`` a learned weighted mean (additive scoring, Bahdanau-style:
    ``softmax_t(v · tanh(W o_t))`` over the valid steps). ``dropout`` applies to the embeddings, between
    layers and before the output layer.
    """

    def __init__(self, vocab_size: int, num_classes: int, cell: str = "lstm", hidden: int = 128,
                 layers: int = 1, embedding: int = 128, bidirectional: bool = True,
                 pooling: str = "max", dropout: float = 0.0, **cell_kwargs):
        super().__init__()
        owner = "TextClassifier"
        for name, value, low in (("vocab_size", vocab_size, 2), ("num_classes", num_classes, 2),
                                 ("hidden", hidden, 1), ("layers", layers, 1),
                                 ("embedding", embedding, 1)):
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
        with warnings.catch_warnings():  # the stack warns that dropout does nothing with one layer
            warnings.simplefilter("ignore", UserWarning)
            self.rnn = RecurrentStack(cell, embedding, hidden, layers, bidirectional=bidirectional,
                                      dropout=self.dropout if layers > 1 else 0.0, **cell_kwargs)
        width = self.rnn.output_size * self.rnn.num_directions           # D * H_out
        if pooling == "attention":
            self.attn_proj = nn.Linear(width, width)
            self.attn_score = nn.Linear(width, 1, bias=False)
        self.drop = nn.Dropout(self.dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        if ids.dim() != 2:
            raise ValueError(f"TextClassifier: expected ids of shape (B, T), got {tuple(ids.shape)}")
        B, T = ids.shape
        lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
        if lengths.shape != (B,) or int(lengths.min()) < 1 or int(lengths.max()) > T:
            raise ValueError(f"TextClassifier: expected lengths (B={B},) in [1, T={T}], got "
                             f"{lengths.tolist() if lengths.numel() <= 8 else tuple(lengths.shape)}")
        x = self.drop(self.embed(ids.t()))                                # (T, B, E)
        out, states = self.rnn(x, lengths=lengths)                       # (T, B, D*H), (L*D, B, H)
        return self.head(self.drop(self.pool(out, states, lengths)))     # (B, C)

    def pool(self, out: Tensor, states: tuple[Tensor, ...], lengths: Tensor) -> Tensor:
        """``out`` ``(T, B, D*H)`` (zero past each length) -> ``(B, D*H)``."""
        if self.pooling == "last":
            D = self.rnn.num_directions
            h = states[0][-D:]                                            # (D, B, H): top layer
            return h.transpose(0, 1).reshape(h.shape[1], -1)             # (B, D*H)
        T = out.shape[0]
        valid = (torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)).to(out.device)  # (T, B)
        if self.pooling == "max":
            return out.masked_fill(~valid.unsqueeze(2), float("-inf")).amax(0)
        if self.pooling == "mean":
            total = (out * valid.unsqueeze(2)).sum(0)                     # padding outputs are 0 anyway
            return total / lengths.to(out.device, out.dtype).unsqueeze(1)
        scores = self.attn_score(torch.tanh(self.attn_proj(out))).squeeze(2)   # (T, B)
        weights = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=0)
        return (weights.unsqueeze(2) * out).sum(0)                        # (B, D*H)

    def config(self) -> dict:
        """The constructor arguments (what ``config.json`` records)."""
        return {"vocab_size": self.vocab_size, "num_classes": self.num_classes, "cell": self.cell,
                "hidden": self.hidden, "layers": self.layers, "embedding": self.embedding_size,
                "bidirectional": self.bidirectional, "pooling": self.pooling, "dropout": self.dropout,
                **self.cell_kwargs}
