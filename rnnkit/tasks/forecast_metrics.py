"""Forecast errors and the two baselines every forecast is judged against.

- MAE, RMSE; sMAPE = mean of 200 |f - y| / (|f| + |y|) (percent; 0 where both are 0);
- MASE (Hyndman & Koehler 2006) = MAE / the in-sample MAE of the seasonal-naive one-step forecast on
  the training part (``y_t - y_{t-m}``, ``m`` the season; ``m = 1``: the naive one). Below 1 beats
  that in-sample benchmark; what matters is the comparison with the baselines at the same origins;
- naive: every step of the horizon is the last value seen; seasonal-naive: each step is the value one
  season before it (``y[t + h - 1 - m * ceil(h / m)]``).

Shapes: B origins, H horizon.
"""
from __future__ import annotations

import math

import numpy as np


def mase_scale(train: np.ndarray, season: int) -> float:
    m = season if len(train) > season else 1
    diffs = np.abs(train[m:] - train[:-m])
    return float(diffs.mean()) if len(diffs) and diffs.mean() > 0 else 1.0


def baselines(values: np.ndarray, origins, horizon: int, season: int) -> tuple[np.ndarray, np.ndarray]:
    """Naive and seasonal-naive forecasts ``(B, H)`` at ``origins`` (the first forecast step's row)."""
    naive = np.stack([np.full(horizon, values[t - 1]) for t in origins])
    back = [season * math.ceil(h / season) for h in range(1, horizon + 1)]
    snaive = np.stack([[values[t + h - 1 - back[h - 1]] for h in range(1, horizon + 1)]
                       for t in origins])
    return naive, snaive


def score(pred: np.ndarray, true: np.ndarray, scale: float) -> list[dict]:
    """Per horizon step ``h`` (index ``h - 1``): MAE, RMSE, MASE and sMAPE over the origins."""
    err = pred - true
    denom = np.abs(pred) + np.abs(true)
    smape = np.where(denom > 0, 200 * np.abs(err) / np.where(denom > 0, denom, 1), 0.0)
    out = []
    for h in range(true.shape[1]):
        mae = float(np.abs(err[:, h]).mean())
        out.append({"mae": mae, "rmse": float(np.sqrt((err[:, h] ** 2).mean())),
                    "mase": mae / scale, "smape": float(smape[:, h].mean())})
    return out
