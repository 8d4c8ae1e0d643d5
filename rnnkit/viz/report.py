"""The activation report: one self-contained HTML page (no network at view time) from a recording
(`rnnkit.viz.activations`): a character language model's `Activations`, or a tagger's or classifier's
`rnnkit.viz.tokens.TokenActivations`.

The page (template: ``report.html`` beside this file) colours each position (character, or word) by a
chosen unit, offers a unit picker (search, sort by correlation with a property of the sequence), lists
the units that best track each property, draws per-layer gate-saturation histograms and shows the
model's prediction on hover: the next characters; the word's tag; the text's label and the word's
attention weight. The sequence is rendered lazily, a chunk at a time as it scrolls into view (`CHUNK`
characters; whole sentences or texts up to `WORD_CHUNK` words).

One page machinery serves every task (`build_report`): the units, their bytes, the budget, the picker,
the property table and the histograms are shared; a task adds only its payload (`_char_payload`,
`_token_payload`): what to show at each position and what its hover says.

Size: activations are stored as one signed byte per unit and position (base64). A report holds at most
`MAX_CHARS` positions and is kept under `MAX_BYTES`; when every unit does not fit, the units embedded
are those that best track the properties (taken in turn, property by property) and then the most
variable, and the page says how many were left out.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.viz.activations import Activations
from rnnkit.viz.record import Recording
from rnnkit.viz.tokens import TokenActivations

MAX_CHARS = 100_000        #: the most positions (characters or words) a report holds
MAX_BYTES = 20_000_000     #: the largest report file written
CHUNK = 2_000              #: characters rendered at a time
WORD_CHUNK = 500           #: words rendered at a time (whole sentences or texts)
TOP_K = 5                  #: predictions shown on hover (next characters, tags, labels)
TEMPLATE = Path(__file__).with_name("report.html")


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def choose_units(scores: dict[str, np.ndarray], variance: np.ndarray, budget: int) -> list[int]:
    """Up to ``budget`` unit indices: all of them if they fit; otherwise, property by property in
    turn, each one's next best-correlated unit, then the most variable units; sorted."""
    U = len(variance)
    if budget >= U:
        return list(range(U))
    ranked = [list(np.argsort(-np.nan_to_num(np.abs(r), nan=-1.0))) for r in scores.values()]
    chosen: dict[int, None] = {}
    for depth in range(U):
        if len(chosen) >= budget // 2:   # half the room for the best trackers, half for variety
            break
        for order in ranked:
            if len(chosen) < budget // 2:
                chosen.setdefault(int(order[depth]), None)
    for u in np.argsort(-variance):
        if len(chosen) >= budget:
            break
        chosen.setdefault(int(u), None)
    return sorted(chosen)


def _histogram_svg(left: np.ndarray, right: np.ndarray, bins: int = 20) -> str:
    """Two overlaid histograms over [0, 1] of the units' left and right saturation fractions."""
    w, h, pad = 260, 110, 18
    hl, _ = np.histogram(left, bins=bins, range=(0, 1))
    hr, _ = np.histogram(right, bins=bins, range=(0, 1))
    top = max(1, int(hl.max()), int(hr.max()))
    bw = (w - 2 * pad) / bins
    parts = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#888"/>']
    for counts, colour, dx in ((hl, "#1f77b4", 0.0), (hr, "#d62728", bw / 2)):
        for i, n in enumerate(counts):
            bh = (h - 2 * pad) * n / top
            parts.append(f'<rect x="{pad + i * bw + dx:.1f}" y="{h - pad - bh:.1f}" width="{bw / 2:.1f}" '
                         f'height="{bh:.1f}" fill="{colour}"><title>{n} units</title></rect>')
    parts.append(f'<text x="{pad}" y="{h - 4}" font-size="10">0</text>'
                 f'<text x="{w - pad - 6}" y="{h - 4}" font-size="10">1</text>'
                 f'<text x="{pad}" y="11" font-size="10">max {top} units</text></svg>')
    return "".join(parts)


def _histograms(acts: Recording) -> str:
    blocks = []
    for k, gates in enumerate(acts.saturation()):
        label = html.escape(acts.layers[k].label or f"L{k + 1}")
        if not gates:
            blocks.append(f"<p>{label}: a {html.escape(acts.cell_name)} cell; no sigmoid gates are "
                          "recorded for it.</p>")
            continue
        figs = "".join(f"<figure>{_histogram_svg(left, right)}<figcaption>{label}, gate "
                       f"{html.escape(name)}: mean left {left.mean():.2f}, right {right.mean():.2f}"
                       f"</figcaption></figure>" for name, (left, right) in gates.items())
        blocks.append(f'<div class="hists">{figs}</div>')
    return "".join(blocks)


def _property_table(names: list[str], scores: dict[str, np.ndarray], meanings: dict[str, str],
                    embedded: dict[int, int], top: int = 5) -> str:
    rows = ["<table class=\"props\"><tr><th>property</th><th>meaning</th>"
            "<th>best units (r)</th></tr>"]
    for prop, r in scores.items():
        if np.all(np.isnan(r)):
            best = "constant in this text"
        else:
            order = np.argsort(-np.nan_to_num(np.abs(r), nan=-1.0))[:top]
            cells = []
            for u in order:
                label = f"{html.escape(names[u])} ({r[u]:+.3f})"
                if int(u) in embedded:
                    cells.append(f'<a data-unit="{embedded[int(u)]}">{label}</a>')
                else:
                    cells.append(label + " [not embedded]")
            best = ", ".join(cells)
        rows.append(f"<tr><td>{html.escape(prop)}</td><td>{html.escape(meanings[prop])}</td>"
                    f"<td>{best}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def unit_budget(payload_bytes: int, n: int, max_bytes: int = MAX_BYTES) -> int:
    """How many units' activations fit in a page of at most ``max_bytes``: the template, the task's
    payload (``payload_bytes`` of JSON: the text, the predictions) and headroom, then base64 of one
    byte per unit and position (``n`` positions)."""
    fixed = len(TEMPLATE.read_bytes()) + payload_bytes + 400_000
    per_unit = math.ceil(n / 3) * 4 + 200                          # base64 of n bytes, + its scores
    return max(1, (max_bytes - fixed) // per_unit)


def _top(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``TOP_K`` most likely ids of each row of ``probs`` ``(n, V)`` and their probabilities."""
    K = min(TOP_K, probs.shape[1])
    ids = np.argsort(-probs, axis=1)[:, :K]                        # (n, K)
    return ids, np.take_along_axis(probs, ids, axis=1)


def _char_payload(acts: Activations) -> tuple[dict[str, Any], str, str]:
    """A character language model's part of the page: the text, the top next characters after each
    position; the summary's words and the hover hint."""
    N = len(acts.text)
    top_ids, top_p = _top(acts.probs)
    payload = {"mode": "char", "text": acts.text, "vocab": acts.tokens, "k": int(top_ids.shape[1]),
               "chunks": [[a, min(N, a + CHUNK)] for a in range(0, N, CHUNK)],
               "top_ids": _b64(top_ids.astype("<u2")), "top_p": _b64(np.round(top_p * 255).astype(np.uint8))}
    what = (f"{html.escape(acts.cell_name)} language model, {len(acts.layers)} layer(s); text of "
            f"{N:,} characters")
    return payload, what, "hover a character for the model's next-character prediction"


def _token_chunks(segments: list[tuple[int, int]]) -> list[list[int]]:
    """Whole segments grouped into chunks of up to `WORD_CHUNK` words (a longer segment alone)."""
    chunks: list[list[int]] = []
    for a, b in segments:
        if chunks and b - chunks[-1][0] <= WORD_CHUNK:
            chunks[-1][1] = b
        else:
            chunks.append([a, b])
    return chunks


def _token_payload(acts: TokenActivations) -> tuple[dict[str, Any], str, str]:
    """A tagger's or classifier's part of the page: the words, where each sentence (text) starts, and
    the predictions: per word for the tagger, per text (and the attention weight per word) for the
    classifier; the summary's words and the hover hint."""
    top_ids, top_p = _top(acts.probs)
    index = {lab: i for i, lab in enumerate(acts.labels)}
    payload: dict[str, Any] = {
        "mode": acts.task, "words": acts.tokens, "joiner": acts.joiner, "labels": acts.labels,
        "k": int(top_ids.shape[1]), "starts": [a for a, _ in acts.segments],
        "chunks": _token_chunks(acts.segments),
        "top_ids": _b64(top_ids.astype("<u2")), "top_p": _b64(np.round(top_p * 255).astype(np.uint8)),
        "pred": [index[t] for t in acts.predicted],
        "gold": None if acts.gold is None else [index.get(t, -1) for t in acts.gold],
        "attention": None if acts.attention is None else _b64(acts.attention.astype("<f4")),
    }
    layers = len({layer.label.rstrip("fb") for layer in acts.layers})
    bi = " bidirectional" if any(layer.label.endswith("b") for layer in acts.layers) else ""
    S, N = len(acts.segments), len(acts.tokens)
    unit = "character" if acts.joiner == "" else "word"
    if acts.task == "tag":
        what = (f"{html.escape(acts.cell_name)} tagger{' with a CRF' if acts.crf else ''}, {layers}{bi} "
                f"layer(s); {S:,} sentence(s), {N:,} words")
        hint = ("hover a word for its predicted tag and the tag probabilities"
                + (" (the CRF's marginals)" if acts.crf else ""))
    else:
        what = (f"{html.escape(acts.cell_name)} classifier, {layers}{bi} layer(s); {S:,} text(s), "
                f"{N:,} {unit}s")
        hint = "hover a word for its text's predicted label and the label probabilities"
        if acts.attention is not None:
            hint += ", and the word's attention weight"
    return payload, what, hint


def build_report(acts: Recording, *, title: str = "rnnkit explain", max_bytes: int = MAX_BYTES
                 ) -> tuple[str, int]:
    """The report page for ``acts`` as an HTML string (at most about ``max_bytes`` bytes) and how
    many units it embeds."""
    if isinstance(acts, TokenActivations):
        payload, what, hint = _token_payload(acts)
        N = len(acts.tokens)
    elif isinstance(acts, Activations):
        payload, what, hint = _char_payload(acts)
        N = len(acts.text)
    else:
        raise TypeError(f"render_report: expected the result of rnnkit.viz.activations, got "
                        f"{type(acts).__name__}")
    if N > MAX_CHARS:
        raise ValueError(f"render_report: the sequence has {N:,} positions; a report holds at most "
                         f"{MAX_CHARS:,} (cut the text first)")
    names = acts.unit_names()
    matrix = acts.unit_matrix()                                    # (N, U)
    scores = acts.correlations(matrix)                             # {property: (U,)}
    budget = unit_budget(len(json.dumps(payload)), N, max_bytes)
    variance = np.concatenate([matrix[:, a:a + 64].var(axis=0) for a in range(0, matrix.shape[1], 64)])
    keep = choose_units(scores, variance, budget)
    sub = matrix[:, keep]
    scale = np.maximum(1.0, np.abs(sub).max(axis=0))               # unbounded cells: per-unit scale
    q = np.clip(np.round(sub / scale * 127), -127, 127).astype(np.int8)
    embedded = {u: i for i, u in enumerate(keep)}
    props = list(scores)
    first = next((p for p in props if not np.all(np.isnan(scores[p][keep]))), None)
    initial = int(np.nanargmax(np.abs(scores[first][keep]))) if first else 0

    def kind(name: str) -> str:
        return "hidden state h" if " h" in name else "cell state, tanh(c)"
    data = {
        **payload, "n": N,
        "units": [{"name": names[u], "scale": float(s), "what": kind(names[u])} for u, s in zip(keep, scale)],
        "properties": props,
        "scores": {p: [None if np.isnan(v) else round(float(v), 4) for v in scores[p][keep]] for p in props},
        "acts": _b64(q.T),                                          # unit-major (U', N)
        "initial": initial,
    }
    left_out = len(names) - len(keep)
    summary = (f"<p>{what}; {len(keep):,} of {len(names):,} units embedded"
               + (f" ({left_out:,} left out to keep the file under {max_bytes / 1e6:.0f} MB: the best "
                  "trackers of each property and the most variable units are kept)" if left_out else "")
               + ".</p>")
    options = "".join(f'<option value="{html.escape(p)}">{html.escape(p)}</option>' for p in props)
    options += '<option value="">unit order</option>'
    page = TEMPLATE.read_text(encoding="utf-8")
    for key, value in (("{{TITLE}}", html.escape(title)), ("{{SUMMARY}}", summary),
                       ("{{HOVER_HINT}}", html.escape(hint)), ("{{SORT_OPTIONS}}", options),
                       ("{{PROPERTY_TABLE}}", _property_table(names, scores, acts.property_meanings(),
                                                              embedded)),
                       ("{{HISTOGRAMS}}", _histograms(acts)),
                       # "</" inside a script element would end it early
                       ("{{DATA}}", json.dumps(data).replace("</", "<\\/"))):
        page = page.replace(key, value)
    return page, len(keep)


def render_report(acts: Recording, *, title: str = "rnnkit explain", max_bytes: int = MAX_BYTES) -> str:
    """The report page for ``acts`` (`rnnkit.viz.activations`'s result) as an HTML string, at most
    about ``max_bytes`` bytes."""
    return build_report(acts, title=title, max_bytes=max_bytes)[0]
