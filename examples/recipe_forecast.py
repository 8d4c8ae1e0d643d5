"""Forecasting from Python: an LSTM on the monthly airline passengers (1949-1960) forecasting the next
12 months -- train it, score it by rolling origin on the last 20% of the months beside the naive and
seasonal-naive forecasts, then continue the series past its last month. The same steps as
`rnnkit train --task forecast`, `rnnkit evaluate` and `rnnkit forecast`, through `rnnkit.tasks.base`.

    python examples/recipe_forecast.py                             # the defaults: 60 epochs
    RNNKIT_EXAMPLES_TINY=1 python examples/recipe_forecast.py      # 20 epochs, a small model: a smoke run
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rnnkit.tasks import base
from rnnkit.tasks.forecast import ForecastTask

DATA = Path(os.environ.get("RNNKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
HORIZON = 12


def main(out: str | None = None) -> dict:
    tiny = os.environ.get("RNNKIT_EXAMPLES_TINY") == "1"
    run = Path(out or tempfile.mkdtemp(prefix="rnnkit-forecast-")) / "run"
    budget = dict(epochs=20, hidden=16) if tiny else {}    # {}: the task's default, 60 epochs
    result = base.train(ForecastTask, data=str(DATA / "timeseries" / "airline-passengers.csv"),
                        horizon=HORIZON, out=run, progress=False, echo=None, **budget)
    print(result.message)

    # every origin of the test part forecasts 12 months; errors at horizons 1 and 12 (MASE < 1 beats
    # the seasonal-naive one-step forecast on the training months)
    scores = ForecastTask.evaluate_run(run)
    print(ForecastTask.format_evaluation(scores), end="")

    task = ForecastTask.load(run)                         # the best weights, on the run's own series
    rows = task.continue_series(HORIZON)                  # [{"date", "value", "quantiles"}, ...]
    print(f"the {HORIZON} months after {task.series.dates[-1]}:")
    print("  " + ", ".join(f"{r['date']} {r['value']:.0f}" for r in rows))
    task.plot(rows, run / "next-year.png")
    print(f"history and forecast drawn into {run / 'next-year.png'}")
    return {"result": result, "scores": scores, "rows": rows, "series": task.series}


if __name__ == "__main__":
    main()
