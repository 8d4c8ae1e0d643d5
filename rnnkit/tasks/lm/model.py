"""`LanguageModel`: tokens -> (one-hot or embedding) -> any recurrent cell -> linear -> next-token logits.

Shapes: B batch, T time, V vocabulary, E embedding width, H hidden, L layers.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.cells import CELLS
from rnnkit.core import RecurrentStack

BIDIRECTIONAL_REFUSED = (
    "a language model predicts each token from the tokens before it; a bidirectional network's "
    "backward direction reads the tokens after it, including the one it must predict, so it would "
    "learn to copy instead of to predict. bidirectional=True (--bidirectional) is refused for "
    "language models; use it for classification or tagging")


class LanguageModel(nn.Module):
    """Next-token model: ``forward(ids (B, T), state=None) -> (logits (B, T, V), state)``.

    - input: one-hot vectors (``embedding=0``, the textbook's) or a learned embedding of width
      ``embedding``;
    - ``cell``: any name in `rnnkit.cells.CELLS`, ``layers`` deep, ``hidden`` wide, run by
      `rnnkit.core.RecurrentStack`;
    - output: a linear layer to ``V`` logits; ``tie_weights`` shares its weight with the embedding
      (Press & Wolf 2017; needs ``embedding == hidden``);
    - ``dropout``: on the embedding, between layers and before the output layer;
      ``weight_drop``: DropConnect on the recurrent weights (AWD-LSTM; see `rnnkit.core.regularizers`).

    ``state`` is the stack's state tuple (``(h,)`` or ``(h, c)``, each ``(L, B, H)``).
    """

    def __init__(self, vocab_size: int, cell: str = "lstm", hidden: int = 256, layers: int = 1,
                 dropout: float = 0.0, embedding: int = 0, tie_weights: bool = False,
                 bidirectional: bool = False, weight_drop: float = 0.0, **cell_kwargs):
        super().__init__()
        owner = "LanguageModel"
        self.cell_kwargs = dict(cell_kwargs)  # the cell's own options (config.json keeps them)
        if bidirectional:
            raise ValueError(f"{owner}: {BIDIRECTIONAL_REFUSED}")
        for name, value, low in (("vocab_size", vocab_size, 2), ("hidden", hidden, 1),
                                 ("layers", layers, 1), ("embedding", embedding, 0)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{owner}: {name} must be an int, got {value!r}")
            if value < low:
                raise ValueError(f"{owner}: {name} must be >= {low}, got {value}")
        if not isinstance(cell, str) or cell not in CELLS:
            raise ValueError(f"{owner}: unknown cell {cell!r}; known cells: {sorted(CELLS)}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"{owner}: dropout must be a number in [0, 1), got {dropout!r}")
        if tie_weights and embedding != hidden:
            raise ValueError(f"{owner}: tie_weights needs embedding == hidden (the output layer reads "
                             f"the hidden state with the embedding matrix), got embedding="
                             f"{embedding}, hidden={hidden}; set embedding={hidden}")
        self.vocab_size, self.cell, self.hidden, self.layers = vocab_size, cell, hidden, layers
        self.embedding_size, self.dropout, self.tie_weights = embedding, float(dropout), tie_weights
        self.weight_drop = float(weight_drop)
        if weight_drop:
            cell_kwargs["weight_drop"] = weight_drop
        self.embed = nn.Embedding(vocab_size, embedding) if embedding else None
        with warnings.catch_warnings():  # the stack warns that dropout does nothing with one layer
            warnings.simplefilter("ignore", UserWarning)
            self.rnn = RecurrentStack(cell, embedding or vocab_size, hidden, layers,
                                      dropout=self.dropout if layers > 1 else 0.0, **cell_kwargs)
        self.drop = nn.Dropout(self.dropout)
        self.head = nn.Linear(self.rnn.output_size, vocab_size)
        if tie_weights and self.embed is not None:   # (tie_weights implies an embedding, checked above)
            self.head.weight = self.embed.weight
        self.reset_extra_parameters()

    def reset_extra_parameters(self) -> None:
        """Embedding ~ U(-0.1, 0.1) (small, so tied logits start small); output bias 0."""
        if self.embed is not None:
            nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.zeros_(self.head.bias)

    def inputs(self, ids: Tensor) -> Tensor:
        """``ids`` ``(T, B)`` -> ``(T, B, E)`` embeddings or ``(T, B, V)`` one-hot vectors."""
        if self.embed is None:
            return F.one_hot(ids, self.vocab_size).to(self.head.weight.dtype)
        return self.drop(self.embed(ids))

    def forward_time_major(self, ids: Tensor, state=None) -> tuple[Tensor, tuple[Tensor, ...]]:
        """``ids`` ``(T, B)`` -> ``(logits (T, B, V), state)``; the training path (no transposes
        of float tensors: the fused kernels are time-major)."""
        out, state = self.rnn(self.inputs(ids), state)     # (T, B, H)
        T, B, H = out.shape
        # the output layer on (T*B, H): a 2-D matrix product is ~15% faster than on (T, B, H)
        logits = self.head(self.drop(out).reshape(T * B, H))
        return logits.view(T, B, -1), state                  # (T, B, V)

    def forward(self, ids: Tensor, state=None) -> tuple[Tensor, tuple[Tensor, ...]]:
        if ids.dim() != 2:
            raise ValueError(f"LanguageModel: expected ids of shape (B, T), got {tuple(ids.shape)}")
        logits, state = self.forward_time_major(ids.t(), state)
        return logits.transpose(0, 1), state                 # (B, T, V)

    def step(self, ids: Tensor, state=None) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One token per sequence: ``ids`` ``(B,)`` -> ``(logits (B, V), state)``."""
        logits, state = self.forward_time_major(ids.unsqueeze(0), state)
        return logits[0], state

    def config(self) -> dict:
        """The constructor arguments (what ``config.json`` records)."""
        return {"vocab_size": self.vocab_size, "cell": self.cell, "hidden": self.hidden,
                "layers": self.layers, "dropout": self.dropout, "embedding": self.embedding_size,
                "tie_weights": self.tie_weights, "weight_drop": self.weight_drop, **self.cell_kwargs}

    def extra_repr(self) -> str:
        return f"V={self.vocab_size}, input={'one-hot' if self.embed is None else 'embedding'}"


def lm_loss(model: LanguageModel, x: Tensor, y: Tensor, state=None, reduction: str = "mean"):
    """Cross-entropy of ``model`` on batch ``x``, ``y`` ``(B, T)`` (``reduction``: ``"mean"`` or
    ``"sum"`` over the ``B*T`` targets); returns ``(loss, state)``."""
    logits, state = model.forward_time_major(x.t(), state)  # (T, B, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.t().reshape(-1), reduction=reduction)
    return loss, state


@torch.no_grad()
def sum_log_loss(model: LanguageModel, ids: Tensor, *, max_streams: int = 64,
                 min_stream: int = 2000, chunk_elements: int = 1 << 24) -> tuple[float, int]:
    """Total cross-entropy (nats) of predicting ``ids[1:]`` from what precedes, and its count.

    ``ids`` ``(N,)`` is cut into up to ``max_streams`` contiguous streams (at least ``min_stream``
    tokens each, so few tokens are predicted from a cold state), run in parallel ``T`` steps at a
    time carrying the state; the few tokens left over continue the last stream. Every token after
    the first is scored exactly once, whatever the sizes. ``ids`` may have any integer dtype (the
    corpus's own, e.g. uint8): pieces are widened to int64 as they are read, not the whole text.
    """
    device = next(model.parameters()).device
    ids = ids.to(device)
    N = ids.numel()
    if N < 2:
        raise ValueError(f"evaluation needs at least 2 tokens, got {N}")
    B = max(1, min(max_streams, (N - 1) // min_stream))
    L = (N - 1) // B
    T = max(1, min(512, chunk_elements // (B * model.vocab_size)))
    x = ids[:B * L].view(B, L)
    y = ids[1:B * L + 1].view(B, L)
    total = torch.zeros((), dtype=torch.float64, device=device)
    state: tuple[Tensor, ...] | None = None
    for t in range(0, L, T):
        logits, state = model.forward_time_major(x[:, t:t + T].t().long(), state)  # (T', B, V)
        total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                 y[:, t:t + T].t().reshape(-1).long(), reduction="sum").double()
    rest = N - 1 - B * L
    if rest and state is not None:   # (the loop above ran at least once: L >= 1)
        last = tuple(s[:, B - 1:B].contiguous() for s in state)
        for t in range(0, rest, T):
            a = B * L + t
            n = min(T, rest - t)
            logits, last = model.forward_time_major(ids[a:a + n].view(n, 1).long(), last)
            total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                     ids[a + 1:a + 1 + n].long(), reduction="sum").double()
    return float(total), N - 1
