"""Training curves: loss (and accuracy or other metrics) per epoch, training and validation.

``plot_history(history, "curves.png")`` takes a Keras-style ``History`` (or its ``.history`` dict:
``{"loss": [...], "val_loss": [...], "accuracy": [...]}``) and draws one panel per quantity, the
validation curve dashed beside the training one. The PNG is written atomically."""
from __future__ import annotations

import math

from rnnkit.data.atomic import atomic_path


def plot_history(history, path=None, *, metrics=None, title=None):
    """Draw the curves; save a PNG at ``path`` if given; return the matplotlib figure.

    ``metrics``: the quantities to draw (default: every key without the ``val_`` prefix, loss first)."""
    import matplotlib
    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise ValueError(f"plot_history: expected a History or a non-empty dict of per-epoch lists, "
                         f"got {type(history).__name__}")
    names = metrics or sorted({k[4:] if k.startswith("val_") else k for k in logs},
                              key=lambda k: (k != "loss", k))
    unknown = [n for n in names if n not in logs and f"val_{n}" not in logs]
    if unknown:
        raise ValueError(f"plot_history: no curve named {unknown}; available: {sorted(logs)}")
    cols = min(len(names), 2)
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for key, style, label in ((name, "-", "training"), (f"val_{name}", "--", "validation")):
            if key in logs:
                values = logs[key]
                ax.plot(range(1, len(values) + 1), values, style, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
    return fig
