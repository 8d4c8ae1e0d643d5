"""A run's history: the records the trainer keeps, and the plot and sample file drawn from them.

A record is a plain dict, one JSON line in ``history.jsonl``:

- ``{"split": "train", "step", "epoch", "loss", <the task's training metrics, e.g. "ppl">, "lr",
  "grad_norm", "<unit>_per_s" (e.g. "tokens_per_s"), "elapsed"}`` every ``log_every`` steps
  (``loss`` is the mean over the steps since the last one; ``"threads"`` too when the run's thread
  count is watched, `rnnkit.train.threads`);
- ``{"split": "val", "step", "epoch", "loss", <the task's metrics, e.g. "ppl", "bpc", "accuracy">,
  "train_loss", "train_<metric>"..., "best"}`` at each validation (a task's callback may add keys,
  e.g. the language model's ``"sample"``).
"""
from __future__ import annotations

import io
import math
import os

from rnnkit.data.atomic import atomic_write


def split(records: list[dict], name: str) -> list[dict]:
    return [r for r in records if r.get("split") == name]


def plot_curves(records: list[dict], path: str | os.PathLike, title: str = "",
                metric: str | None = "ppl", metric_label: str | None = None) -> None:
    """Draw training and validation loss, and ``metric`` (the task's, e.g. perplexity; None: loss
    only), against steps into ``path`` (PNG).

    Uses matplotlib's object API (no pyplot state), so it works headless and leaves a notebook's
    backend alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train, val = split(records, "train"), split(records, "val")
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    panels = [("loss", "loss")]
    if metric is not None and metric != "loss":
        panels.append((metric, metric_label or metric))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, label) in zip(axes, panels):
        tr = [r for r in train if key in r]
        va = [r for r in val if key in r]
        if tr:
            ax.plot([r["step"] for r in tr], [r[key] for r in tr], label="training",
                    color="tab:blue", alpha=0.7)
        if va:
            ax.plot([r["step"] for r in va], [r[key] for r in va], "o-", label="validation",
                    color="tab:orange")
        best = [r for r in va if r.get("best")]
        if best:
            b = best[-1]  # the last record marked best is the best so far
            ax.plot([b["step"]], [b[key]], "*", color="tab:red", markersize=12,
                    label=f"best validation ({b[key]:.3f})")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if tr or va:
            ax.legend()
        values = [r[key] for r in tr + va if math.isfinite(r[key])]
        if key == "ppl" and values and max(values) / max(min(values), 1e-12) > 20:
            ax.set_yscale("log")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(path, buf.getvalue())
