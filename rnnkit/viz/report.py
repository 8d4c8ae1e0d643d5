"""The activation report: one self-contained HTML page (no network at view time) from `Activations`.

The page (template: ``report.html`` beside this file) colours each character by a chosen unit, offers a
unit picker (search, sort by correlation with a text property), lists the units that best track each
property, draws per-layer gate-saturation histograms and shows the next-character prediction on hover.
The text is rendered lazily, a chunk of `CHUNK` characters at a time as it scrolls into view.

Size: activations are stored as one signed byte per unit and character (base64). A report is cut to
`MAX_CHARS` characters and kept under `MAX_BYTES`; when every unit does not fit, the units embedded are
those that best track the properties (taken in turn, property by property) and then the most variable,
and the page says how many were left out.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np

from rnnkit.viz.activations import PROPERTIES, Activations

MAX_CHARS = 100_000        #: the longest text a report holds (rnnkit explain --max-chars)
MAX_BYTES = 20_000_000     #: the largest report file written
CHUNK = 2_000              #: characters rendered at a time
TOP_K = 5                  #: next-character predictions shown on hover
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


def _histograms(acts: Activations) -> str:
    blocks = []
    for k, gates in enumerate(acts.saturation()):
        if not gates:
            blocks.append(f"<p>Layer {k + 1}: a {html.escape(acts.cell_name)} cell; no sigmoid gates are "
                          "recorded for it.</p>")
            continue
        figs = "".join(f"<figure>{_histogram_svg(left, right)}<figcaption>layer {k + 1}, gate "
                       f"{html.escape(name)}: mean left {left.mean():.2f}, right {right.mean():.2f}"
                       f"</figcaption></figure>" for name, (left, right) in gates.items())
        blocks.append(f'<div class="hists">{figs}</div>')
    return "".join(blocks)


def _property_table(names: list[str], scores: dict[str, np.ndarray], embedded: dict[int, int],
                    top: int = 5) -> str:
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
        rows.append(f"<tr><td>{html.escape(prop)}</td><td>{html.escape(PROPERTIES[prop])}</td>"
                    f"<td>{best}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def unit_budget(text_json_bytes: int, n_chars: int, k: int = TOP_K, max_bytes: int = MAX_BYTES) -> int:
    """How many units' activations fit in a page of at most ``max_bytes``: the template, the text,
    the top-``k`` predictions (3 bytes each, base64) and headroom, then base64 of one byte per unit
    and character."""
    fixed = len(TEMPLATE.read_bytes()) + text_json_bytes + math.ceil(n_chars * k * 3 / 3) * 4 + 400_000
    per_unit = math.ceil(n_chars / 3) * 4 + 200                    # base64 of N bytes, + its scores
    return max(1, (max_bytes - fixed) // per_unit)


def render_report(acts: Activations, *, title: str = "rnnkit explain", max_bytes: int = MAX_BYTES) -> str:
    """The report page for ``acts`` as an HTML string (at most about ``max_bytes`` bytes)."""
    N = len(acts.text)
    if N > MAX_CHARS:
        raise ValueError(f"render_report: the text has {N:,} characters; a report holds at most "
                         f"{MAX_CHARS:,} (cut the text first)")
    names = acts.unit_names()
    matrix = acts.unit_matrix()                                    # (N, U)
    scores = acts.correlations(matrix)                             # {property: (U,)}
    # the top-K next characters after each position, and their probabilities
    K = min(TOP_K, acts.probs.shape[1])
    top_ids = np.argsort(-acts.probs, axis=1)[:, :K]               # (N, K)
    top_p = np.take_along_axis(acts.probs, top_ids, axis=1)        # (N, K)
    text_json = json.dumps(acts.text)
    budget = unit_budget(len(text_json), N, K, max_bytes)
    variance = np.concatenate([matrix[:, a:a + 64].var(axis=0) for a in range(0, matrix.shape[1], 64)])
    keep = choose_units(scores, variance, budget)
    sub = matrix[:, keep]
    scale = np.maximum(1.0, np.abs(sub).max(axis=0))               # unbounded cells: per-unit scale
    q = np.clip(np.round(sub / scale * 127), -127, 127).astype(np.int8)
    embedded = {u: i for i, u in enumerate(keep)}
    props = list(scores)
    first = next((p for p in props if not np.all(np.isnan(scores[p][keep]))), None)
    initial = int(np.nanargmax(np.abs(scores[first][keep]))) if first else 0

    def what(name: str) -> str:
        return "hidden state h" if " h" in name else "cell state, tanh(c)"
    data = {
        "n": N, "k": K, "chunk": CHUNK, "text": acts.text, "tokens": acts.tokens,
        "units": [{"name": names[u], "scale": float(s), "what": what(names[u])} for u, s in zip(keep, scale)],
        "properties": props,
        "scores": {p: [None if np.isnan(v) else round(float(v), 4) for v in scores[p][keep]] for p in props},
        "acts": _b64(q.T),                                          # unit-major (U', N)
        "top_ids": _b64(top_ids.astype("<u2")), "top_p": _b64(np.round(top_p * 255).astype(np.uint8)),
        "initial": initial,
    }
    left_out = len(names) - len(keep)
    summary = (f"<p>{html.escape(acts.cell_name)} language model, {len(acts.layers)} layer(s); text of "
               f"{N:,} characters; {len(keep):,} of {len(names):,} units embedded"
               + (f" ({left_out:,} left out to keep the file under {max_bytes / 1e6:.0f} MB: the best "
                  "trackers of each property and the most variable units are kept)" if left_out else "")
               + ".</p>")
    options = "".join(f'<option value="{html.escape(p)}">{html.escape(p)}</option>' for p in props)
    options += '<option value="">unit order</option>'
    page = TEMPLATE.read_text(encoding="utf-8")
    for key, value in (("{{TITLE}}", html.escape(title)), ("{{SUMMARY}}", summary),
                       ("{{SORT_OPTIONS}}", options),
                       ("{{PROPERTY_TABLE}}", _property_table(names, scores, embedded)),
                       ("{{HISTOGRAMS}}", _histograms(acts)),
                       # "</" inside a script element would end it early
                       ("{{DATA}}", json.dumps(data).replace("</", "<\\/"))):
        page = page.replace(key, value)
    return page
