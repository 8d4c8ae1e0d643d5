"""Export of a language-model run: the whole-sequence model and the one-step model, with the
vocabulary and the run's configuration beside them.

- ``model``: ``ids (B, T) int64, *state -> logits (B, T, V), *state`` — scoring or priming a prompt;
- ``step``: ``ids (B,) int64, *state -> logits (B, V), *state`` — one token of generation: feed the
  drawn token and the returned state back in, as `rnnkit.decode.Sampler.step` does.

``state`` is the stack's: ``h0`` ``(L, B, H)`` and, for LSTM cells, ``c0`` ``(L, B, H)``; the outputs
are named ``h_n`` (``c_n``). Start from zeros. Shapes: B batch, T time, V vocabulary, L layers, H hidden.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.export.contract import ExportError, ExportPlan, Graph, run_files
from rnnkit.export.recurrence import ExportStack, export_unavailable
from rnnkit.tasks.lm import api as lm
from rnnkit.train import RunFolder
from rnnkit.train.checkpoint import CONFIG, VOCAB

STATE_NAMES = ("h0", "c0")
STATE_OUT_NAMES = ("h_n", "c_n")


class SequenceLM(nn.Module):
    """``forward(ids (B, T), *state) -> (logits (B, T, V), *state)`` in exportable operators."""

    def __init__(self, model: lm.LanguageModel):
        super().__init__()
        self.model, self.rnn = model, ExportStack(model.rnn)

    def forward(self, ids: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        x = self.model.inputs(ids.t())                # (T, B, E) embedding or (T, B, V) one-hot
        out, state = self.rnn(x, state)               # (T, B, H)
        logits = self.model.head(out)                 # (T, B, V)
        return (logits.transpose(0, 1), *state)


class StepLM(nn.Module):
    """``forward(ids (B,), *state) -> (logits (B, V), *state)``: one generation step."""

    def __init__(self, model: lm.LanguageModel):
        super().__init__()
        self.model, self.rnn = model, ExportStack(model.rnn)

    def forward(self, ids: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        x = self.model.inputs(ids.unsqueeze(0))[0]   # (B, E) or (B, V)
        out, state = self.rnn.step(x, state)         # (B, H)
        return (self.model.head(out), *state)        # (B, V)


def plan(run: RunFolder) -> ExportPlan:
    """The export plan of a language-model run (`rnnkit.export.contract`)."""
    loaded = lm.load(run.path)                      # the best weights, eval mode, on the CPU
    model, vocab = loaded.model, loaded.vocab
    reason = export_unavailable(model.rnn)
    if reason:
        raise ExportError(f"{run.path}: this language model ({model.cell}) cannot be exported: {reason}")
    shapes = model.rnn.cells[0].state_shapes       # ((H,),) or ((H,), (H,))
    L, V, n = model.layers, model.vocab_size, len(shapes)
    names_in, names_out = STATE_NAMES[:n], STATE_OUT_NAMES[:n]
    dtype = model.head.weight.dtype

    def sample(batch: int, time: int, *, step: bool = False) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(batch * 1000 + time)
        ids = torch.randint(0, V, (batch,) if step else (batch, time), generator=g)
        # a non-zero state, so the check sees the state inputs used
        state = tuple(0.5 * torch.randn(L, batch, *s, generator=g, dtype=dtype) for s in shapes)
        return (ids, *state)

    def reference_sequence(ids: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        with torch.no_grad():
            logits, new = model(ids, state)
        return (logits, *new)

    def reference_step(ids: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        with torch.no_grad():
            logits, new = model.step(ids, state)
        return (logits, *new)

    state_axes = {name: {1: "batch"} for name in (*names_in, *names_out)}
    graphs = [
        Graph("model", SequenceLM(model).eval(), sample, ("ids", *names_in), ("logits", *names_out),
              {"ids": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"}, **state_axes},
              reference_sequence,
              "ids (batch, time) int64 and the state -> next-token logits (batch, time, V) and the "
              "state after the last step"),
        Graph("step", StepLM(model).eval(), lambda b, t: sample(b, t, step=True), ("ids", *names_in),
              ("logits", *names_out), {"ids": {0: "batch"}, "logits": {0: "batch"}, **state_axes},
              reference_step,
              "one generation step: ids (batch,) int64 and the state -> next-token logits (batch, V) "
              "and the new state; feed the drawn token and the new state back in"),
    ]
    files = run_files(run, (VOCAB, CONFIG))
    info = {
        "cell": model.cell, "layers": L, "hidden": model.hidden, "vocab_size": V,
        "state": [{"name": nm, "output": out, "shape": [L, "batch", *s], "dtype": str(dtype)[6:]}
                  for nm, out, s in zip(names_in, names_out, shapes)],
        "initial_state": "zeros",
        "logits": "unnormalised next-token scores over the vocabulary (softmax over the last axis)",
        "vocabulary": {"file": VOCAB, "level": vocab.kind, "unk_id": vocab.unk_id,
                       "lower": vocab.lower, "letters_only": vocab.letters_only},
    }
    return ExportPlan("lm", graphs, files, info)
