"""Export of a translation run (`rnnkit.tasks.translate_model.Seq2Seq`): two graphs, so greedy or
beam-search decoding runs outside Python.

- ``encoder``: ``src (B, S) int64, src_len (B,) int64 -> memory (B, S, H), keys (B, S, H),
  src_mask (B, S) bool, h0 (L, B, H)[, c0]`` — the sources (batch-major: each sentence's word ids,
  then ``<eos>``, then ``<pad>`` past its length, which counts the ``<eos>``) encoded once;
  ``keys`` is the attention's projection of the memory, ``h0`` (``c0`` for LSTM cells) the
  decoder's initial state;
- ``decoder``: ``token (B,) int64, h (L, B, H)[, c], memory, keys, src_mask -> log_probs (B, V),
  h_n[, c_n], attention (B, S)`` — one decoder step: start with ``<bos>`` and the encoder's state,
  then feed the chosen token and the returned state back in (greedy: the argmax; beam search:
  reorder the state's batch axis and the encoder outputs by the surviving hypotheses, as
  `rnnkit.tasks.translate_model.Seq2SeqStepper.reorder` does). Stop at ``<eos>``.

With ``attention="none"`` there are no keys, no mask and no attention weights: the encoder gives
``memory`` and the state, and the step takes and gives the state only. The source and target
vocabularies (``src_vocab.json``, ``tgt_vocab.json``: specials, lower-casing, the ``<bos>``,
``<eos>``, ``<pad>``, ``<unk>`` ids in export.json) and config.json are written beside.

Shapes: B batch, S source length, H hidden, L layers, V target vocabulary.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.export.contract import ExportError, ExportPlan, Graph, run_files
from rnnkit.export.recurrence import ExportStack, export_unavailable
from rnnkit.train import RunFolder
from rnnkit.train.checkpoint import CONFIG

STATE_IN, STATE_OUT = ("h", "c"), ("h_n", "c_n")
ENCODER_STATE = ("h0", "c0")


class ExportEncoder(nn.Module):
    """`Seq2Seq.encode` in exportable operators (batch-major ``src``)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.rnn = ExportStack(model.encoder, bidirectional=True)

    def forward(self, src: Tensor, src_len: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        B, S = src.shape
        x = m.src_embed(src.t())                                           # (S, B, E)
        enc = m.encoder
        zeros = tuple(x.new_zeros((enc.num_layers * enc.num_directions, B, *s))
                      for s in enc.cells[0].state_shapes)
        out, states = self.rnn(x, zeros, src_len)                          # (S, B, D*H)
        memory = out.transpose(0, 1)                                       # (B, S, D*H)
        if m.join_memory is not None:
            memory = m.join_memory(memory)
            L, H = m.layers, m.hidden
            # (L*2, B, H) ordered l0 fwd, l0 bwd, l1 fwd, ... -> (L, B, 2H) -> (L, B, H)
            states = tuple(torch.tanh(m.join_state(s.reshape(L, 2, B, H).permute(0, 2, 1, 3)
                                                   .reshape(L, B, 2 * H))) for s in states)
        if m.attention is None:
            return (memory, *states)
        mask = torch.arange(S).unsqueeze(0) < src_len.unsqueeze(1)          # (B, S)
        return (memory, m.attention.prepare(memory), mask, *states)


class ExportDecoderStep(nn.Module):
    """One step of `Seq2Seq.decode` and the output layer: ``(token, *state[, memory, keys, mask]) ->
    (log_probs, *state[, attention])``."""

    def __init__(self, model, n_state: int):
        super().__init__()
        self.model, self.n_state = model, n_state
        self.rnn = ExportStack(model.decoder)

    def forward(self, token: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        state, rest = rest[:self.n_state], rest[self.n_state:]
        out, state = self.rnn.step(m.tgt_embed(token), tuple(state))      # (B, H)
        if m.attention is None:
            return (torch.log_softmax(m.head(out), -1), *state)
        memory, keys, mask = rest
        context, weights = m.attention(out.unsqueeze(1), keys, memory, mask)   # (B, 1, H), (B, 1, S)
        h = torch.tanh(m.combine(torch.cat([context[:, 0], out], -1)))    # (B, H)
        return (torch.log_softmax(m.head(h), -1), *state, weights[:, 0])


def plan(run: RunFolder) -> ExportPlan:
    """The export plan of a translation run (`rnnkit.export.contract`)."""
    from rnnkit.tasks.translate import SRC_VOCAB, TGT_VOCAB, load
    loaded = load(run.path)
    model = loaded.model
    for what, stack, bi in (("encoder", model.encoder, True), ("decoder", model.decoder, False)):
        reason = export_unavailable(stack, bidirectional=bi)
        if reason:
            raise ExportError(f"{run.path}: this translator's {what} ({model.cell}) cannot be exported: "
                              f"{reason}")
    shapes = [tuple(s) for s in model.decoder.cells[0].state_shapes]
    n, L, H = len(shapes), model.layers, model.hidden
    attention = model.attention
    attn = attention is not None
    V_src, V_tgt, pad = model.args["src_vocab_size"], model.args["tgt_vocab_size"], model.pad_id

    def sample_encoder(batch: int, time: int) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(batch * 1000 + time)
        src_len = torch.randint(1, time + 1, (batch,), generator=g)
        src_len[0] = time
        src = torch.randint(4, V_src, (batch, time), generator=g)
        return src.masked_fill(torch.arange(time) >= src_len.unsqueeze(1), pad), src_len

    def reference_encoder(src: Tensor, src_len: Tensor) -> tuple[Tensor, ...]:
        with torch.no_grad():
            memory, keys, mask, state = model.encode(src.t(), src_len)
        return (memory, *state) if not attn else (memory, keys, mask, *state)

    def sample_step(batch: int, time: int) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(batch * 1000 + time + 1)
        token = torch.randint(0, V_tgt, (batch,), generator=g)
        state = tuple(0.5 * torch.randn(L, batch, *s, generator=g) for s in shapes)
        if attention is None:
            return (token, *state)
        memory = torch.randn(batch, time, H, generator=g)
        with torch.no_grad():
            keys = attention.prepare(memory)
        src_len = torch.randint(1, time + 1, (batch,), generator=g)
        return (token, *state, memory, keys, torch.arange(time).unsqueeze(0) < src_len.unsqueeze(1))

    def reference_step(token: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        state, (memory, keys, mask) = rest[:n], (rest[n:] if attn else (None, None, None))
        with torch.no_grad():
            h, new, weights = model.decode(token.unsqueeze(0), memory, keys, mask, tuple(state),
                                           need_weights=True)          # h (B, 1, H)
            log_probs = torch.log_softmax(model.head(h[:, 0]), -1)
        return (log_probs, *new) if not attn else (log_probs, *new, weights[:, 0])

    enc_state, st_in, st_out = ENCODER_STATE[:n], STATE_IN[:n], STATE_OUT[:n]
    state_axes = {name: {1: "batch"} for name in (*enc_state, *st_in, *st_out)}
    src_axes = {"memory": {0: "batch", 1: "source"}, "keys": {0: "batch", 1: "source"},
                "src_mask": {0: "batch", 1: "source"}}
    enc_out = ("memory", *(("keys", "src_mask") if attn else ()), *enc_state)
    step_in = ("token", *st_in, *(("memory", "keys", "src_mask") if attn else ()))
    step_out = ("log_probs", *st_out, *(("attention",) if attn else ()))
    graphs = [
        Graph("encoder", ExportEncoder(model).eval(), sample_encoder, ("src", "src_len"), enc_out,
              {"src": {0: "batch", 1: "source"}, "src_len": {0: "batch"}, **src_axes, **state_axes},
              reference_encoder,
              "source ids (batch, source) int64 padded with <pad> past each length, and the lengths "
              "(batch,) int64 -> the memory the attention reads, its keys, the source mask and the "
              "decoder's initial state"),
        Graph("decoder", ExportDecoderStep(model, n).eval(), sample_step, step_in, step_out,
              {"token": {0: "batch"}, "log_probs": {0: "batch"}, "attention": {0: "batch", 1: "source"},
               **src_axes, **state_axes},
              reference_step,
              "one decoder step: the previous target token (batch,) int64 (<bos> first), the state "
              "and the encoder's outputs -> log-probabilities of the next token (batch, V), the new "
              "state and the attention weights over the source (batch, source)"),
    ]
    files = run_files(run, (SRC_VOCAB, TGT_VOCAB, CONFIG))
    sv, tv = loaded.src_vocab, loaded.tgt_vocab
    info = {
        "cell": model.cell, "layers": L, "hidden": H, "attention": model.attention_kind,
        "bidirectional_encoder": model.join_memory is not None, "max_len": loaded.config.max_len,
        "vocabulary": {name: {"file": f, "lower": v.lower, "bos_id": v.bos_id, "eos_id": v.eos_id,
                              "pad_id": v.pad_id, "unk_id": v.unk_id}
                       for name, f, v in (("source", SRC_VOCAB, sv), ("target", TGT_VOCAB, tv))},
        "decoding": "start the decoder with <bos> and the encoder's h0 (c0); feed back the chosen "
                    "token and the returned state until <eos>; rnnkit never chooses <pad> or <bos> "
                    "(their log-probabilities set to -inf) and stops after 2 * max_len + 2 tokens; "
                    "sources longer than max_len words are cut to it (`rnnkit.tasks.translate_data."
                    "encode_sources`)",
    }
    return ExportPlan("translate", graphs, files, info)
