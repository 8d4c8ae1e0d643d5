"""`Seq2Seq`: an encoder-decoder translator with attention, and `Seq2SeqStepper`, its decoder on the
stepping contract of `rnnkit.decode` (greedy, sampling and beam search run on it).

- encoder: embedding -> any cell of `rnnkit.cells.CELLS` through `rnnkit.core.RecurrentStack`
  (bidirectional by default), run with the source lengths so padding never enters a state;
  a bidirectional encoder's two directions are joined by one linear map into the memory ``(B, S, H)``
  and, per layer, into the decoder's initial state (``tanh``);
- decoder: embedding -> the same cell (unidirectional) -> attention -> output layer, in Luong et al.
  2015's arrangement: the attention reads the decoder's output ``h_t`` (not the previous state), so
  with teacher forcing the whole target runs through the fused recurrent kernel in one call and the
  attention of all steps is two batched matrix products. Scores (``attention``):
  ``dot``: ``h_t · m_s``; ``general``: ``h_t · W m_s``; ``additive`` (Bahdanau et al. 2015's score):
  ``v · tanh(W_q h_t + W_k m_s)``; ``none``: no attention, the decoder starts from the encoder's
  final state and its output goes straight to the output layer. Weights are ``softmax`` over the real
  source positions only (padding masked to ``-inf``); the attentional vector is
  ``tanh(W_c [c_t; h_t])`` (Luong eq. 5);
- the output layer (the widest product: ``H x V_target``) runs only at real, non-pad target
  positions (`Seq2Seq.loss`).

Shapes: B batch, S source length, T target length, E embedding, H hidden, L layers, V vocabulary.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import CELLS
from rnnkit.core import RecurrentStack

ATTENTIONS = ("none", "additive", "dot", "general")


class Attention(nn.Module):
    """Scores of decoder outputs against the memory, masked softmax, context.

    ``forward(query (B, T, H), keys (B, S, H'), memory (B, S, H), mask (B, S) bool)`` ->
    ``(context (B, T, H), weights (B, T, S))``; ``keys`` is ``prepare(memory)`` (computed once per
    source sentence)."""

    def __init__(self, kind: str, hidden: int):
        super().__init__()
        self.kind = kind
        if kind == "general":
            self.w = nn.Linear(hidden, hidden, bias=False)
        elif kind == "additive":
            self.w_k = nn.Linear(hidden, hidden, bias=False)
            self.w_q = nn.Linear(hidden, hidden)
            self.v = nn.Linear(hidden, 1, bias=False)

    def prepare(self, memory: Tensor) -> Tensor:
        if self.kind == "general":
            return self.w(memory)
        if self.kind == "additive":
            return self.w_k(memory)
        return memory

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if self.kind == "additive":
            mixed = torch.tanh(self.w_q(query).unsqueeze(2) + keys.unsqueeze(1))   # (B, T, S, H)
            scores = self.v(mixed).squeeze(-1)                                     # (B, T, S)
        else:
            scores = torch.bmm(query, keys.transpose(1, 2))                        # (B, T, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), -math.inf)
        weights = scores.softmax(-1)
        return torch.bmm(weights, memory), weights                                 # (B, T, H)


class Seq2Seq(nn.Module):
    """Encoder-decoder translator (see the module's docstring). ``pad_id``: the ``<pad>`` id of both
    vocabularies (`rnnkit.data.WordVocab` puts it at 1)."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, *, cell: str = "gru", hidden: int = 256,
                 embedding: int = 256, layers: int = 1, bidirectional: bool = True,
                 attention: str = "general", dropout: float = 0.2, pad_id: int = 1,
                 tie_weights: bool = False):
        super().__init__()
        owner = "Seq2Seq"
        for name, value, low in (("src_vocab_size", src_vocab_size, 4), ("tgt_vocab_size", tgt_vocab_size, 4),
                                 ("hidden", hidden, 1), ("embedding", embedding, 1), ("layers", layers, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
        if cell not in CELLS:
            raise ValueError(f"{owner}: unknown cell {cell!r}; known cells: {sorted(CELLS)}")
        if attention not in ATTENTIONS:
            raise ValueError(f"{owner}: attention must be one of {ATTENTIONS}, got {attention!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"{owner}: dropout must be in [0, 1), got {dropout!r}")
        if tie_weights and embedding != hidden:
            raise ValueError(f"{owner}: tie_weights needs embedding == hidden (the output layer reads "
                             f"{hidden} features), got embedding={embedding}, hidden={hidden}")
        self.args: dict[str, Any] = dict(
            src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, cell=cell, hidden=hidden,
            embedding=embedding, layers=layers, bidirectional=bidirectional, attention=attention,
            dropout=dropout, pad_id=pad_id, tie_weights=tie_weights)
        self.cell, self.hidden, self.layers, self.attention_kind = cell, hidden, layers, attention
        self.pad_id = pad_id
        D = 2 if bidirectional else 1
        with warnings.catch_warnings():  # "dropout does nothing with one layer"
            warnings.simplefilter("ignore", UserWarning)
            self.src_embed = nn.Embedding(src_vocab_size, embedding, padding_idx=pad_id)
            self.encoder = RecurrentStack(cell, embedding, hidden, layers, bidirectional=bidirectional,
                                          dropout=dropout if layers > 1 else 0.0)
            self.tgt_embed = nn.Embedding(tgt_vocab_size, embedding, padding_idx=pad_id)
            self.decoder = RecurrentStack(cell, embedding, hidden, layers,
                                          dropout=dropout if layers > 1 else 0.0)
        self.join_memory = nn.Linear(D * hidden, hidden, bias=False) if D == 2 else None
        self.join_state = nn.Linear(D * hidden, hidden) if D == 2 else None
        self.attention = Attention(attention, hidden) if attention != "none" else None
        self.combine = nn.Linear(2 * hidden, hidden, bias=False) if attention != "none" else None
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, tgt_vocab_size)
        if tie_weights:      # one (V, H) matrix reads and writes target words (Press & Wolf 2017)
            with torch.no_grad():   # small, as the LM's tied embedding: N(0, 1) rows would start the
                self.tgt_embed.weight.uniform_(-0.1, 0.1)      # softmax at logits of std ~8
                self.tgt_embed.weight[pad_id].zero_()
            self.head.weight = self.tgt_embed.weight

    def config(self) -> dict:
        return dict(self.args)

    # -- encoder ----------------------------------------------------------------------------------
    def encode(self, src: Tensor, src_len: Tensor):
        """``src`` ``(S, B)``, ``src_len`` ``(B,)`` -> ``(memory (B, S, H), keys, mask (B, S), state)``
        where ``state`` is the decoder's initial state tuple (each ``(L, B, H)``)."""
        S, B = src.shape
        out, states = self.encoder(self.drop(self.src_embed(src)), lengths=src_len.cpu())  # (S, B, D*H)
        memory = out.transpose(0, 1)                                                       # (B, S, D*H)
        if self.join_memory is not None and self.join_state is not None:   # (both or neither)
            memory = self.join_memory(memory)
            L, H = self.layers, self.hidden
            # (L*2, B, H) ordered l0 fwd, l0 bwd, l1 fwd, ... -> (L, B, 2H) -> (L, B, H)
            joined = (s.view(L, 2, B, H).permute(0, 2, 1, 3).reshape(L, B, 2 * H) for s in states)
            # under a bf16 autocast the linear map gives bf16; the recurrent states stay fp32
            states = tuple(torch.tanh(self.join_state(s)).to(s.dtype) for s in joined)
        mask = torch.arange(S, device=src.device).unsqueeze(0) < src_len.to(src.device).unsqueeze(1)
        keys = self.attention.prepare(memory) if self.attention is not None else None
        return memory, keys, mask, tuple(states)

    # -- decoder ----------------------------------------------------------------------------------
    def decode(self, tgt_in: Tensor, memory, keys, mask, state, *, need_weights: bool = False):
        """Teacher-forced decoder: ``tgt_in`` ``(T, B)`` -> ``(features (B, T, H), state, weights)``;
        the features are what the output layer reads (``weights`` ``(B, T, S)`` or None)."""
        out, state = self.decoder(self.drop(self.tgt_embed(tgt_in)), state)   # (T, B, H)
        h = out.transpose(0, 1)                                                # (B, T, H)
        weights = None
        if self.attention is not None and self.combine is not None:   # (both or neither)
            context, weights = self.attention(h, keys, memory, mask)
            h = torch.tanh(self.combine(torch.cat([context, h], -1)))          # (B, T, H)
        return self.drop(h), state, (weights if need_weights else None)

    def loss(self, src, src_len, tgt_in, tgt_out, *, teacher_forcing: float = 1.0,
             generator: torch.Generator | None = None) -> tuple[Tensor, int]:
        """Summed cross-entropy over the real target positions and their count. With
        ``teacher_forcing < 1`` each step reads the gold previous word with that probability and the
        model's own best guess otherwise (step by step, so slower)."""
        memory, keys, mask, state = self.encode(src, src_len)
        if teacher_forcing >= 1.0:
            h, _, _ = self.decode(tgt_in, memory, keys, mask, state)          # (B, T, H)
        else:
            h = self._decode_scheduled(tgt_in, memory, keys, mask, state, teacher_forcing, generator)
        real = tgt_out.t() != self.pad_id                                      # (B, T)
        logits = self.head(h[real])                                            # (N, V): real positions only
        target = tgt_out.t()[real]
        return F.cross_entropy(logits, target, reduction="sum"), int(target.numel())

    def _decode_scheduled(self, tgt_in, memory, keys, mask, state, ratio, generator):
        T, B = tgt_in.shape
        token, feats = tgt_in[0], []
        for t in range(T):
            h, state, _ = self.decode(token.unsqueeze(0), memory, keys, mask, state)   # (B, 1, H)
            feats.append(h)
            if t + 1 < T:
                with torch.no_grad():
                    guess = self.head(h[:, 0]).argmax(-1)
                gold = torch.rand(B, generator=generator, device=tgt_in.device) < ratio
                token = torch.where(gold, tgt_in[t + 1], guess)
        return torch.cat(feats, 1)

    def stepper(self) -> Seq2SeqStepper:
        return Seq2SeqStepper(self)


class Seq2SeqStepper:
    """The decoder on `rnnkit.decode`'s contract: ``prime(src (S, B), src_len (B,), bos)`` encodes the
    sources and feeds ``<bos>``; ``step(tokens (B,), state)``; ``reorder(state, index)``. Scores are
    log-probabilities ``(B, V)``. The state is ``(decoder states, memory, keys, mask)``."""

    def __init__(self, model: Seq2Seq):
        self.model = model

    @torch.no_grad()
    def prime(self, src: Tensor, src_len: Tensor, bos: int):
        memory, keys, mask, state = self.model.encode(src, src_len)
        tokens = torch.full((src.shape[1],), bos, dtype=torch.long, device=src.device)
        return self.step(tokens, (state, memory, keys, mask))

    @torch.no_grad()
    def step(self, tokens: Tensor, state):
        dec, memory, keys, mask = state
        h, dec, _ = self.model.decode(tokens.unsqueeze(0), memory, keys, mask, dec)   # (B, 1, H)
        return torch.log_softmax(self.model.head(h[:, 0]), -1), (dec, memory, keys, mask)

    def reorder(self, state, index: Tensor):
        dec, memory, keys, mask = state
        def pick(x):
            return None if x is None else x.index_select(0, index)
        return tuple(s.index_select(1, index) for s in dec), pick(memory), pick(keys), pick(mask)
