"""Classification metrics from a confusion matrix: accuracy, per-class precision/recall/F1, macro-F1.

Definitions are scikit-learn's (its metrics are the tests' oracle): a class never predicted has
precision 0, a class absent from the gold labels has recall 0, and F1 is 0 when precision + recall is
0; macro-F1 is the unweighted mean of the per-class F1 over every class the model knows.
"""
from __future__ import annotations

import numpy as np


def confusion_matrix(gold, pred, num_classes: int) -> np.ndarray:
    """``(C, C)`` counts: row = gold class, column = predicted class."""
    gold, pred = np.asarray(gold, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    if gold.shape != pred.shape or gold.ndim != 1:
        raise ValueError(f"confusion_matrix: expected gold and pred of one shape (N,), got "
                         f"{gold.shape} and {pred.shape}")
    return np.bincount(gold * num_classes + pred, minlength=num_classes * num_classes
                       ).reshape(num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)


def classification_metrics(gold, pred, labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (as lists)."""
    cm = confusion_matrix(gold, pred, len(labels))
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(0), cm.sum(1)
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    n = int(cm.sum())
    return {"accuracy": float(tp.sum() / n) if n else 0.0, "macro_f1": float(f1.mean()),
            "examples": n, "labels": list(labels),
            "per_class": {lab: {"precision": float(p), "recall": float(r), "f1": float(f),
                                "support": int(s)}
                          for lab, p, r, f, s in zip(labels, precision, recall, f1, support)},
            "confusion": cm.tolist()}


def format_report(m: dict) -> str:
    """The metrics as the command line prints them: a summary, a per-class table, the confusion matrix."""
    labels = m["labels"]
    w = max(8, *(len(str(lab)) for lab in labels))
    lines = [f"accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} on {m['examples']:,} examples",
             "", f"{'class':<{w}}  precision  recall      f1  support"]
    for lab in labels:
        c = m["per_class"][lab]
        lines.append(f"{lab:<{w}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}  "
                     f"{c['support']:7,}")
    cw = max(6, *(len(str(lab)) for lab in labels), *(len(f"{v:,}") for row in m["confusion"] for v in row))
    lines += ["", "confusion matrix (rows: gold, columns: predicted)",
              " " * w + "  " + " ".join(f"{lab:>{cw}}" for lab in labels)]
    for lab, row in zip(labels, m["confusion"]):
        lines.append(f"{lab:<{w}}  " + " ".join(f"{v:>{cw},}" for v in row))
    return "\n".join(lines) + "\n"
