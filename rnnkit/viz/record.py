"""The one way ``rnnkit explain`` records a recurrent network: each layer and direction run step by step
through its own cell's ``step`` (the cell's single step definition, so every cell type records the
same way and the states are the model's own), the sigmoid gates of the stock LSTM and GRU recomputed
for all steps at once from the recorded previous states, and the correlation of every unit with
properties of the sequence. The character language model (`rnnkit.viz.activations`) and the tagger and
classifier (`rnnkit.viz.tokens`) are all recorded through `record_stack`.

Shapes: N steps (characters or words), I input features, H hidden units, D directions, U units
(hidden, then cell, per layer and direction).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rnnkit.cells import GRUCell, LSTMCell


@dataclass
class LayerActivations:
    """One layer (one direction of it) over the sequence: ``hidden`` ``(N, H)``; ``cell`` ``(N, H)``
    for cells with a second state (the LSTM's ``c``), else None; ``gates``: name -> ``(N, H)``
    sigmoid gate values (LSTM ``i, f, o``; GRU ``r, z``; empty for cells without recorded gates).
    ``label`` names it in unit names: ``"L1"``, or ``"L1f"`` / ``"L1b"`` for the forward and
    backward directions of a bidirectional layer. A backward direction's arrays are in reading
    order (row t is the state after reading words t..N-1 backwards)."""
    hidden: np.ndarray
    cell: np.ndarray | None
    gates: dict[str, np.ndarray] = field(default_factory=dict)
    label: str = ""


class Recording:
    """What every recording shares: ``layers`` (`LayerActivations`, layer-major then direction),
    ``cell_name``; subclasses say which ``properties()`` of the sequence units are correlated with
    and what each means (``property_meanings()``)."""
    layers: list[LayerActivations]
    cell_name: str

    def properties(self) -> dict[str, np.ndarray]:   # pragma: no cover - overridden
        raise NotImplementedError

    def property_meanings(self) -> dict[str, str]:   # pragma: no cover - overridden
        raise NotImplementedError

    def unit_names(self) -> list[str]:
        """``"L1 h0"``, ..., ``"L1 c0"``, ..., one per unit, in the order of `unit_matrix`."""
        names = []
        for k, layer in enumerate(self.layers):
            label = layer.label or f"L{k + 1}"
            names += [f"{label} h{j}" for j in range(layer.hidden.shape[1])]
            if layer.cell is not None:
                names += [f"{label} c{j}" for j in range(layer.cell.shape[1])]
        return names

    def unit_matrix(self) -> np.ndarray:
        """``(N, U)``: every layer's hidden state, then its ``tanh(c)`` (the cell state as the
        output gate sees it, bounded like h; Karpathy et al. colour by it too)."""
        parts = []
        for layer in self.layers:
            parts.append(layer.hidden)
            if layer.cell is not None:
                parts.append(np.tanh(layer.cell))
        return np.concatenate(parts, axis=1)

    def correlations(self, units: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Property name -> ``(U,)`` Pearson correlation of each unit with it over the sequence (NaN
        where the property or the unit is constant). ``units``: `unit_matrix()`, if the caller has
        it already."""
        return correlate(self.unit_matrix() if units is None else units, self.properties())

    def saturation(self, left: float = 0.1, right: float = 0.9
                   ) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Per layer (and direction), gate name -> ``(left (H,), right (H,))``: the fraction of steps
        at which each gate unit is below ``left`` / above ``right`` (the paper's saturation plot)."""
        return [{name: ((g < left).mean(axis=0), (g > right).mean(axis=0))
                 for name, g in layer.gates.items()} for layer in self.layers]


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


def record_stack(cells: Sequence[Sequence[object]], x: torch.Tensor) -> tuple[list[LayerActivations],
                                                                              torch.Tensor]:
    """Run a stack over one sequence ``x`` ``(N, 1, I)``: ``cells[k]`` are layer k's cells, one
    (forward) or two (forward, backward); layer k+1 reads layer k's outputs, the directions joined
    as ``[forward, backward]`` (the engine's layout). Returns the records, layer-major then
    direction, and the top layer's outputs ``(N, 1, D*H)``. Dropout between layers is not applied
    (the model is read in eval mode)."""
    records = []
    for k, directions in enumerate(cells):
        outs = []
        for d, cell in enumerate(directions):
            label = f"L{k + 1}" + ("" if len(directions) == 1 else "fb"[d])
            record, out = record_layer(cell, x, label=label, reverse=d == 1)
            records.append(record)
            outs.append(out)
        x = torch.cat(outs, dim=2)
    return records, x


def record_layer(cell, x: torch.Tensor, *, label: str = "", reverse: bool = False
                 ) -> tuple[LayerActivations, torch.Tensor]:
    """Run ``cell`` over ``x`` ``(N, 1, I)`` one step at a time (last step first with ``reverse``);
    returns the layer's record (in reading order) and its output ``(N, 1, H)``."""
    if reverse:
        x = x.flip(0)
    xp = cell.project_inputs(x)                                            # (N, 1, G*H)
    state = cell.init_state(1, dtype=xp.dtype, device=xp.device)
    outs, cells = [], []
    for xp_t in xp.unbind(0):
        out, state = cell.step(xp_t, state)
        outs.append(out)
        if len(state) > 1:
            cells.append(state[1])
    h = torch.cat(outs)                                                    # (N, H), processing order
    c = torch.cat(cells) if cells else None                                # (N, H)
    gates = _gates(cell, xp[:, 0], h)
    if reverse:   # back to reading order
        h = h.flip(0)
        c = None if c is None else c.flip(0)
        gates = {name: np.ascontiguousarray(g[::-1]) for name, g in gates.items()}
    record = LayerActivations(h.float().cpu().numpy(), None if c is None else c.float().cpu().numpy(),
                              gates, label)
    return record, h.unsqueeze(1)


def concat_records(parts: Sequence[Sequence[LayerActivations]]) -> list[LayerActivations]:
    """The records of several independent sequences (sentences, texts) joined along time, layer by
    layer: ``parts[s][j]`` is sequence s's record of layer/direction j."""
    joined = []
    for j, first in enumerate(parts[0]):
        rows = [p[j] for p in parts]
        joined.append(LayerActivations(
            np.concatenate([r.hidden for r in rows]),
            None if first.cell is None else np.concatenate([r.cell for r in rows]),
            {name: np.concatenate([r.gates[name] for r in rows]) for name in first.gates},
            first.label))
    return joined


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
