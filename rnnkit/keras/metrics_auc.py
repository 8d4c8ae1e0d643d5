"""Keras's ``AUC`` metric: the area under the ROC or precision-recall curve, from confusion counts
accumulated over the epoch at fixed thresholds (Keras's ``num_thresholds=200``, evenly spaced in
(0, 1) plus one just below 0 and one just above 1), summed as Keras sums them (``"interpolation"``:
trapezoids, and for PR the interpolation of Davis & Goadrich; ``"minoring"``, ``"majoring"``)."""
from __future__ import annotations

import torch

from rnnkit.keras.metrics import Metric

EPSILON = 1e-7  # Keras's backend epsilon: the outer thresholds sit this far outside [0, 1]


def _div(a, b):
    return torch.where(b != 0, a / torch.where(b != 0, b, 1), 0)


class AUC(Metric):
    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None,
                 dtype=None, thresholds=None, multi_label=False, num_labels=None, label_weights=None,
                 from_logits=False):
        if curve not in ("ROC", "PR"):
            raise ValueError(f"AUC: curve must be 'ROC' or 'PR', got {curve!r}")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"AUC: summation_method must be 'interpolation', 'minoring' or 'majoring', "
                             f"got {summation_method!r}")
        if multi_label or num_labels is not None or label_weights is not None:
            raise ValueError("AUC: multi_label / num_labels / label_weights are not supported by "
                             "rnnkit.keras (one AUC over all labels)")
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
        else:
            if num_thresholds <= 1:
                raise ValueError(f"AUC: num_thresholds must be > 1, got {num_thresholds}")
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.thresholds = torch.tensor([0.0 - EPSILON] + inner + [1.0 + EPSILON], dtype=torch.float64)
        self.num_thresholds = len(self.thresholds)
        self.curve, self.summation_method, self.from_logits = curve, summation_method, bool(from_logits)
        super().__init__(name or "auc", dtype)

    def reset_state(self):
        n = getattr(self, "num_thresholds", 0)
        self.tp, self.fp, self.tn, self.fn = (torch.zeros(n, dtype=torch.float64) for _ in range(4))

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = torch.as_tensor(y_pred).detach().reshape(-1).double().cpu()
        if self.from_logits:
            p = torch.sigmoid(p)
        y = torch.as_tensor(y_true).detach().reshape(-1).double().cpu()
        if y.shape != p.shape:
            raise ValueError(f"{self.name}: labels and predictions must have the same number of values, "
                             f"got {tuple(y.shape)} and {tuple(p.shape)} (flattened)")
        if sample_weight is None:
            w = torch.ones_like(p)
        else:  # one weight per sample, repeated over the sample's values
            sw = torch.as_tensor(sample_weight).detach().double().cpu().reshape(-1)
            w = sw.reshape(-1, 1).expand(-1, p.numel() // max(sw.numel(), 1)).reshape(-1)
        above = (p.unsqueeze(0) > self.thresholds.unsqueeze(1)).double()  # (thresholds, N)
        pos, neg = y * w, (1 - y) * w
        self.tp += above @ pos
        self.fp += above @ neg
        self.fn += (1 - above) @ pos
        self.tn += (1 - above) @ neg

    def result(self) -> float:
        tp, fp, tn, fn, n = self.tp, self.fp, self.tn, self.fn, self.num_thresholds
        if self.curve == "PR" and self.summation_method == "interpolation":
            dtp = tp[:n - 1] - tp[1:]
            p = tp + fp
            dp = p[:n - 1] - p[1:]
            slope = _div(dtp, dp.clamp(min=0))
            intercept = tp[1:] - slope * p[1:]
            ratio = torch.where((p[:n - 1] > 0) & (p[1:] > 0), _div(p[:n - 1], p[1:].clamp(min=0)),
                                torch.ones_like(p[1:]))
            inc = _div(slope * (dtp + intercept * torch.log(ratio)), (tp[1:] + fn[1:]).clamp(min=0))
            return float(inc.sum())
        recall = _div(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _div(fp, fp + tn), recall
        else:
            x, y = recall, _div(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:n - 1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[:n - 1], y[1:])
        else:
            heights = torch.maximum(y[:n - 1], y[1:])
        return float(((x[:n - 1] - x[1:]) * heights).sum())

    def get_config(self):
        return {"name": self.name, "num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method, "from_logits": self.from_logits}
