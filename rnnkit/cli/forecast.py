"""``rnnkit forecast RUN --steps N``: continue a trained forecaster's series past its last date (or
past the end of ``--data``, a newer file with the same columns), with a PNG of history and forecast."""
from __future__ import annotations

import argparse
import sys

from rnnkit.tasks import get_task
from rnnkit.train import RunFolder


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "forecast", help="continue a time series with a trained forecaster",
        description="Forecast the steps after the end of the run's series (or of --data). Beyond "
                    "the model's horizon, each forecast is fed back as the newest value.")
    p.add_argument("run", metavar="RUN", help="run folder written by `rnnkit train --task forecast`")
    p.add_argument("--steps", type=int, default=None, help="steps to forecast (default: the horizon)")
    p.add_argument("--data", default=None, help="a newer CSV with the same columns to continue")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="draw history and forecast (and the quantile band) into this PNG")
    p.add_argument("--device", default="cpu", help="where to run the model")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace, out=None) -> list[dict]:
    """Print one line per forecast step (date, value, quantiles); returns them."""
    out = out or sys.stdout
    RunFolder(args.run).read_config("forecast")
    task = get_task("forecast").load(args.run, args.device, args.data)
    steps = args.steps if args.steps is not None else task.config.horizon
    rows = task.continue_series(steps)
    names = [f"q{q:g}" for q in task.quantiles]
    out.write("date," + task.series.columns[0] + "".join("," + n for n in names) + "\n")
    for r in rows:
        out.write(f"{r['date']},{r['value']:.6g}" + "".join(f",{v:.6g}" for v in r["quantiles"]) + "\n")
    if args.plot:
        task.plot(rows, args.plot)
    return rows
