"""Forecasting benchmark: rnnkit's defaults on real series beside naive and seasonal-naive.

For each series, ``rnnkit train --task forecast`` with its defaults (only ``--horizon`` set: 12 for
monthly series, 7 for the daily temperatures) and ``--seed`` 0..S-1, then the rolling-origin evaluation
on the last 20% (every origin of the test part). Prints MAE, RMSE and MASE at horizon 1 and at the
last horizon, and the MASE averaged over the whole horizon, of the RNN (mean over the seeds) and of
the two baselines computed at the same origins.

    RNNKIT_DATA=../shared/data python benchmarks/bench_forecast.py [--seeds 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnnkit.tasks import base  # noqa: E402
from rnnkit.tasks.forecast import ForecastTask  # noqa: E402

SERIES = (("airline-passengers.csv", 12), ("daily-min-temperatures.csv", 7),
          ("monthly-sunspots.csv", 12))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default=os.environ.get("RNNKIT_DATA", "../shared/data"))
    args = p.parse_args(argv)
    print("| series | h | model | MAE | RMSE | MASE | MASE mean over 1..H | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, horizon in SERIES:
        path = Path(args.data) / "timeseries" / name
        runs, seconds = [], []
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                base.train(ForecastTask, data=str(path), horizon=horizon, seed=seed,
                           threads=args.threads, out=Path(tmp) / "run", progress=False, echo=None)
                seconds.append(time.perf_counter() - t)
                runs.append(ForecastTask.evaluate_run(Path(tmp) / "run"))
        first = runs[0]
        for h in sorted({1, horizon}):
            for model in ("rnn", "naive", "seasonal_naive"):
                rows = [r[model] for r in runs] if model == "rnn" else [first[model]]
                mae = np.mean([r[h - 1]["mae"] for r in rows])
                rmse = np.mean([r[h - 1]["rmse"] for r in rows])
                mase = np.mean([r[h - 1]["mase"] for r in rows])
                mean_mase = np.mean([np.mean([m["mase"] for m in r]) for r in rows])
                label = f"rnnkit (mean of {len(runs)} seeds)" if model == "rnn" else model
                sec = f"{np.mean(seconds):.1f}" if model == "rnn" else ""
                print(f"| {name[:-4]} | {h} | {label} | {mae:.3f} | {rmse:.3f} | {mase:.3f} | "
                      f"{mean_mase:.3f} | {sec} |")


if __name__ == "__main__":
    main()
