"""What a character language model computes as it reads a text: every layer's hidden state, cell state
and gate activations at every character, the next-character probabilities, and how well each unit
tracks simple properties of the text (Karpathy, Johnson & Fei-Fei 2015, *Visualizing and
Understanding Recurrent Networks*). `activations` is also the entry point for every task ``rnnkit
explain`` reads: a run folder or a loaded tagger or classifier goes to `rnnkit.viz.tokens` (per word).

    acts = rnnkit.viz.activations(rnnkit.tasks.lm.load("runs/tm"), "time traveller ...")
    acts.layers[0].hidden          # (N, H) float32: layer 1's h_t after each character
    acts.layers[0].gates["f"]      # (N, H): the LSTM's forget gate
    acts.correlations()            # {property: (U,) Pearson r of every unit}, units as acts.unit_names()

Shapes: N characters, H hidden units, V vocabulary, U units (hidden, then cell, per layer).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rnnkit.viz.record import LayerActivations, Recording, correlate, record_stack

__all__ = ["Activations", "LayerActivations", "PROPERTIES", "activations", "correlate", "load_run",
           "text_properties"]

#: the tasks ``rnnkit explain`` reads, and where each loads a run from
EXPLAINABLE = {"lm": "rnnkit.tasks.lm:load", "tag": "rnnkit.tasks.tag_api:load",
               "classify": "rnnkit.tasks.classify:load"}

#: the text properties units are correlated with (name -> one-line meaning, shown in the report)
PROPERTIES = {
    "inside quotes": "1 from an opening double quote to its closing one (both included), else 0",
    "inside brackets": "1 inside (), [] or {} (the brackets included), else 0",
    "position in line": "the character's column: 0 at the start of a line",
    "after newline": "1 for the first character of a line (after a newline), else 0",
    "indentation depth": "the number of leading spaces of the character's line (a tab counts 4)",
}


@dataclass
class Activations(Recording):
    """Everything recorded over one text (see the module docstring); ``text`` is the text as the model
    read it (after its vocabulary's normalisation), ``ids`` ``(N,)`` its token ids, ``probs``
    ``(N, V)`` the next-character distribution after each character, ``tokens`` the vocabulary."""
    text: str
    ids: np.ndarray
    layers: list[LayerActivations]
    probs: np.ndarray
    tokens: list[str]
    cell_name: str

    def properties(self) -> dict[str, np.ndarray]:
        """`PROPERTIES` of each character: name -> ``(N,)``."""
        return text_properties(self.text)

    def property_meanings(self) -> dict[str, str]:
        return dict(PROPERTIES)


def text_properties(text: str) -> dict[str, np.ndarray]:
    """`PROPERTIES` of each character of ``text``: name -> ``(N,)`` float64."""
    n = len(text)
    quotes, brackets = np.zeros(n), np.zeros(n)
    column, line_start, indent = np.zeros(n), np.zeros(n), np.zeros(n)
    in_quote, depth, col = False, 0, 0
    # the indentation of each line is known only once its leading whitespace is read: measure first
    line_indent = []
    for line in text.split("\n"):
        stripped = line.lstrip(" \t")
        lead = line[:len(line) - len(stripped)]
        line_indent.append(lead.count(" ") + 4 * lead.count("\t"))
    line_no = 0
    for t, ch in enumerate(text):
        if ch == '"':
            quotes[t] = 1.0           # both quote marks count as inside
            in_quote = not in_quote
        else:
            quotes[t] = float(in_quote)
        if ch in "([{":
            depth += 1
        brackets[t] = float(depth > 0)
        if ch in ")]}" and depth > 0:
            depth -= 1
        column[t] = col
        line_start[t] = float(t > 0 and text[t - 1] == "\n")
        indent[t] = line_indent[line_no]
        if ch == "\n":
            col, line_no = 0, line_no + 1
        else:
            col += 1
    return {"inside quotes": quotes, "inside brackets": brackets, "position in line": column,
            "after newline": line_start, "indentation depth": indent}


def _resolve(model: Any, vocab: Any) -> tuple[Any, Any]:
    """(model, vocab) from a loaded run (``rnnkit.tasks.lm.load``), a ``(model, vocab)`` pair, or a
    model plus ``vocab=``."""
    if hasattr(model, "model") and hasattr(model, "vocab"):
        return model.model, model.vocab
    if isinstance(model, tuple) and len(model) == 2:
        return model
    if vocab is None:
        raise TypeError("activations: pass a loaded run (rnnkit.tasks.lm.load(RUN)), a (model, vocab) "
                        f"pair, or a model with vocab=...; got {type(model).__name__} without a vocab")
    return model, vocab


def load_run(run, device: str = "cpu") -> Any:
    """A run folder loaded the way its task loads it (`EXPLAINABLE`), for `activations`."""
    import importlib

    from rnnkit.train import RunFolder
    task = RunFolder(run).task_name()
    if task not in EXPLAINABLE:
        raise ValueError(f"explain: {str(run)!r} is a {task!r} run; explain reads "
                         f"{', '.join(EXPLAINABLE)} runs")
    module, _, name = EXPLAINABLE[task].partition(":")
    return getattr(importlib.import_module(module), name)(run, device)


def activations(model: Any, text: Any, *, vocab: Any = None) -> Any:
    """Run a model over ``text`` and record every layer's states and gates, dispatching on the task.

    ``model``: a run folder (str or path; its config.json's task picks the rest), or a loaded run:
    a character language model (``rnnkit.tasks.lm.load(RUN)``, a ``(LanguageModel, vocab)`` pair,
    or a ``LanguageModel`` with ``vocab=``) -> `Activations`, one row per character; a tagger
    (``rnnkit.tasks.tag_api.load``) or a classifier (``rnnkit.tasks.classify.load``) ->
    `rnnkit.viz.tokens.TokenActivations`, one row per word (see there for ``text``)."""
    if isinstance(model, (str, os.PathLike)):
        model = load_run(model)
    from rnnkit.viz import tokens
    if tokens.is_token_model(model):
        return tokens.token_activations(model, text)
    return lm_activations(model, text, vocab=vocab)


@torch.no_grad()
def lm_activations(model: Any, text: str, *, vocab: Any = None) -> Activations:
    """Run a character language model over ``text`` and record everything (see `Activations`).

    ``model``: a loaded run (``rnnkit.tasks.lm.load(RUN)``), a ``(LanguageModel, vocab)`` pair, or a
    ``LanguageModel`` with ``vocab=``. Characters the vocabulary lacks are read as ``<unk>``. The
    recurrence runs step by step through each layer's own cell (``cell.step``, `record_stack`), so
    every cell type is recorded the same way; gates are then recomputed for all steps at once from
    the recorded previous states (stock LSTM and GRU cells)."""
    model, vocab = _resolve(model, vocab)
    if getattr(vocab, "kind", None) != "char":
        raise ValueError(f"activations: needs a character-level model; this vocabulary is "
                         f"{getattr(vocab, 'kind', type(vocab).__name__)!r}")
    if not isinstance(text, str) or not text:
        raise ValueError(f"activations: text must be a non-empty str, got {text!r:.40}")
    stack = model.rnn
    if stack.num_directions != 1:
        raise ValueError("activations: expected a unidirectional stack (a language model)")
    was_training = model.training
    model.eval()
    try:
        norm = vocab.normalize(text)
        ids = np.asarray(vocab.encode(norm), dtype=np.int64)
        device = next(model.parameters()).device
        x = model.inputs(torch.from_numpy(ids).to(device).view(-1, 1))     # (N, 1, E or V)
        layers, x = record_stack([[cell] for cell in stack.cells], x)
        out = x[:, 0]                                                      # (N, H)
        probs = torch.softmax(model.head(out).float(), dim=-1)            # (N, V)
    finally:
        model.train(was_training)
    return Activations(norm, ids, layers, probs.cpu().numpy(), list(vocab.tokens), model.cell)
