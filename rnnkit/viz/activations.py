"""What a character language model computes as it reads a text: every layer's hidden state, cell state
and gate activations at every character, the next-character probabilities, and how well each unit
tracks simple properties of the text (Karpathy, Johnson & Fei-Fei 2015, *Visualizing and
Understanding Recurrent Networks*).

    acts = rnnkit.viz.activations(rnnkit.tasks.lm.load("runs/tm"), "time traveller ...")
    acts.layers[0].hidden          # (N, H) float32: layer 1's h_t after each character
    acts.layers[0].gates["f"]      # (N, H): the LSTM's forget gate
    acts.correlations()            # {property: (U,) Pearson r of every unit}, units as acts.unit_names()

Shapes: N characters, H hidden units, V vocabulary, U units (hidden, then cell, per layer).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rnnkit.cells import GRUCell, LSTMCell

#: the text properties units are correlated with (name -> one-line meaning, shown in the report)
PROPERTIES = {
    "inside quotes": "1 from an opening double quote to its closing one (both included), else 0",
    "inside brackets": "1 inside (), [] or {} (the brackets included), else 0",
    "position in line": "the character's column: 0 at the start of a line",
    "after newline": "1 for the first character of a line (after a newline), else 0",
    "indentation depth": "the number of leading spaces of the character's line (a tab counts 4)",
}


@dataclass
class LayerActivations:
    """One layer over the text: ``hidden`` ``(N, H)``; ``cell`` ``(N, H)`` for cells with a second
    state (the LSTM's ``c``), else None; ``gates``: name -> ``(N, H)`` sigmoid gate values (LSTM
    ``i, f, o``; GRU ``r, z``; empty for cells without recorded gates)."""
    hidden: np.ndarray
    cell: np.ndarray | None
    gates: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Activations:
    """Everything recorded over one text (see the module docstring); ``text`` is the text as the model
    read it (after its vocabulary's normalisation), ``ids`` ``(N,)`` its token ids, ``probs``
    ``(N, V)`` the next-character distribution after each character, ``tokens`` the vocabulary."""
    text: str
    ids: np.ndarray
    layers: list[LayerActivations]
    probs: np.ndarray
    tokens: list[str]
    cell_name: str

    def unit_names(self) -> list[str]:
        """``"L1 h0"``, ..., ``"L1 c0"``, ..., one per unit, in the order of `unit_matrix`."""
        names = []
        for k, layer in enumerate(self.layers):
            names += [f"L{k + 1} h{j}" for j in range(layer.hidden.shape[1])]
            if layer.cell is not None:
                names += [f"L{k + 1} c{j}" for j in range(layer.cell.shape[1])]
        return names

    def unit_matrix(self) -> np.ndarray:
        """``(N, U)``: every layer's hidden state, then its ``tanh(c)`` (the cell state as the
        output gate sees it, bounded like h; the paper colours by it too)."""
        parts = []
        for layer in self.layers:
            parts.append(layer.hidden)
            if layer.cell is not None:
                parts.append(np.tanh(layer.cell))
        return np.concatenate(parts, axis=1)

    def correlations(self, units: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Property name -> ``(U,)`` Pearson correlation of each unit with it over the text (NaN
        where the property or the unit is constant over this text). ``units``: `unit_matrix()`, if
        the caller has it already."""
        return correlate(self.unit_matrix() if units is None else units, text_properties(self.text))

    def saturation(self, left: float = 0.1, right: float = 0.9) -> list[dict[str, tuple[np.ndarray,
                                                                                         np.ndarray]]]:
        """Per layer, gate name -> ``(left (H,), right (H,))``: the fraction of characters at which
        each gate unit is below ``left`` / above ``right`` (the paper's saturation plot)."""
        return [{name: ((g < left).mean(axis=0), (g > right).mean(axis=0))
                 for name, g in layer.gates.items()} for layer in self.layers]


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


def correlate(units: np.ndarray, properties: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pearson r of each column of ``units`` ``(N, U)`` with each property ``(N,)``; NaN where either
    side is constant."""
    U = units.shape[1]
    centred = {name: p - p.mean() for name, p in properties.items()}
    out = {name: np.empty(U) for name in properties}
    for a in range(0, U, 64):   # float64 a block of units at a time: (N, U) float64 would be 8 bytes a value
        x = units[:, a:a + 64].astype(np.float64)
        x -= x.mean(axis=0)
        sx = np.sqrt((x * x).sum(axis=0))
        for name, p in centred.items():
            sp = np.sqrt((p * p).sum())
            with np.errstate(invalid="ignore", divide="ignore"):
                r = (p @ x) / (sx * sp)
            r[(sx == 0) | (sp == 0)] = np.nan
            out[name][a:a + 64] = r
    return out


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


@torch.no_grad()
def activations(model: Any, text: str, *, vocab: Any = None) -> Activations:
    """Run a character language model over ``text`` and record everything (see `Activations`).

    ``model``: a loaded run (``rnnkit.tasks.lm.load(RUN)``), a ``(LanguageModel, vocab)`` pair, or a
    ``LanguageModel`` with ``vocab=``. Characters the vocabulary lacks are read as ``<unk>``. The
    recurrence runs step by step through each layer's own cell (``cell.step``), so every cell type
    is recorded the same way; gates are then recomputed for all steps at once from the recorded
    previous states (stock LSTM and GRU cells)."""
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
        layers = []
        for cell in stack.cells:
            layer, x = _record_layer(cell, x)
            layers.append(layer)
        out = x[:, 0]                                                      # (N, H)
        probs = torch.softmax(model.head(out).float(), dim=-1)            # (N, V)
    finally:
        model.train(was_training)
    return Activations(norm, ids, layers, probs.cpu().numpy(), list(vocab.tokens), model.cell)


def _record_layer(cell, x: torch.Tensor) -> tuple[LayerActivations, torch.Tensor]:
    """Run ``cell`` over ``x`` ``(N, 1, I)`` one step at a time; returns the layer's record and its
    output ``(N, 1, H)`` (the next layer's input)."""
    xp = cell.project_inputs(x)                                            # (N, 1, G*H)
    state = cell.init_state(1, dtype=xp.dtype, device=xp.device)
    outs, cells = [], []
    for xp_t in xp.unbind(0):
        out, state = cell.step(xp_t, state)
        outs.append(out)
        if len(state) > 1:
            cells.append(state[1])
    h = torch.cat(outs)                                                    # (N, H)
    c = torch.cat(cells) if cells else None                                # (N, H)
    record = LayerActivations(h.float().cpu().numpy(), None if c is None else c.float().cpu().numpy(),
                              _gates(cell, xp[:, 0], h))
    return record, h.unsqueeze(1)


def _gates(cell, xp: torch.Tensor, h: torch.Tensor, block: int = 8192) -> dict[str, np.ndarray]:
    """The sigmoid gates of every step, ``block`` steps at a time: ``xp`` ``(N, G*H)`` the projected
    inputs, ``h`` ``(N, H)`` the recorded outputs, so step t's recurrent input is ``h[t-1]`` (zeros at
    t = 0). Returns name -> ``(N, H)`` float32."""
    exact_lstm = type(cell) is LSTMCell and not getattr(cell, "proj_size", 0)
    if not (exact_lstm or type(cell) is GRUCell):
        return {}
    N, H = h.shape[0], cell.hidden_size
    # gate blocks: LSTM i, f, g, o (the candidate g is no gate); GRU r, z, n (r and z are the same for
    # both reset placements)
    blocks = {"i": 0, "f": 1, "o": 3} if exact_lstm else {"r": 0, "z": 1}
    out = {name: np.empty((N, H), dtype=np.float32) for name in blocks}
    prev = torch.cat([torch.zeros_like(h[:1]), h[:-1]])                    # (N, H)
    for a in range(0, N, block):
        hp = prev[a:a + block] @ cell.weight_hh.t()                        # (n, G*H)
        if cell.bias_hh is not None:
            hp = hp + cell.bias_hh
        pre = xp[a:a + block] + hp
        for name, k in blocks.items():
            out[name][a:a + block] = torch.sigmoid(pre[:, k * H:(k + 1) * H]).float().cpu().numpy()
    return out
