"""A run's history: the records the trainer keeps, and the plot and sample file drawn from them.

A record is a plain dict, one JSON line in ``history.jsonl``:

- ``{"split": "train", "step", "epoch", "loss", "ppl", "lr", "grad_norm", "tokens_per_s", "elapsed"}``
  every ``log_every`` steps (``loss`` is the mean over the steps since the last one);
- ``{"split": "val", "step", "epoch", "loss", "ppl", <task metrics such as "bpc">, "train_loss",
  "best", "sample"?}`` at each validation.
"""
from __future__ import annotations

import io
import math
import os

from rnnkit.train.checkpoint import atomic_write


def split(records: list[dict], name: str) -> list[dict]:
    return [r for r in records if r.get("split") == name]


def plot_curves(records: list[dict], path: str | os.PathLike, title: str = "") -> None:
    """Draw training and validation loss and perplexity against steps into ``path`` (PNG).

    Uses matplotlib's object API (no pyplot state), so it works headless and leaves a notebook's
    backend alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train, val = split(records, "train"), split(records, "val")
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_ppl = fig.subplots(1, 2)
    for ax, key, label in ((ax_loss, "loss", "loss (nats per token)"),
                           (ax_ppl, "ppl", "perplexity")):
        if train:
            ax.plot([r["step"] for r in train], [r[key] for r in train], label="training",
                    color="tab:blue", alpha=0.7)
        if val:
            ax.plot([r["step"] for r in val], [r[key] for r in val], "o-", label="validation",
                    color="tab:orange")
        best = [r for r in val if r.get("best")]
        if best:
            b = min(best, key=lambda r: r["loss"])
            ax.plot([b["step"]], [b[key]], "*", color="tab:red", markersize=12,
                    label=f"best validation ({b[key]:.3f})")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if train or val:
            ax.legend()
    values = [r["ppl"] for r in train + val if math.isfinite(r.get("ppl", math.nan))]
    if values and max(values) / max(min(values), 1e-12) > 20:
        ax_ppl.set_yscale("log")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(path, buf.getvalue())


def samples_text(records: list[dict]) -> str:
    """The samples of the validation records, each under a header with its step and metrics."""
    parts = []
    for r in split(records, "val"):
        if "sample" in r:
            metrics = ", ".join(f"{k} {r[k]:.4f}" for k in ("loss", "ppl", "bpc", "bpw") if k in r)
            parts.append(f"=== step {r['step']} (validation {metrics}) ===\n{r['sample']}\n")
    return "\n".join(parts)
