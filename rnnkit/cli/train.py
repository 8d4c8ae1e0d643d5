"""``rnnkit train``: train a model (``--task lm``, the language model, for now); every option of
`rnnkit.tasks.lm_config.LMConfig` and `rnnkit.train.TrainConfig` is a flag."""
from __future__ import annotations

import argparse

from rnnkit.tasks import language_model as lm
from rnnkit.tasks.lm_config import LMConfig
from rnnkit.train import TrainConfig
from rnnkit.train.config import add_arguments, given_options

TASKS = ("lm",)
#: exit status of a run stopped by a signal: the shell's convention (128 + the signal's number)
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train a model (a language model by default)",
        description="Train a model and write a run folder (config, vocabulary, weights, trainer "
                    "state, history, curves, samples). Ctrl-C writes the last checkpoint; "
                    "`rnnkit train --resume RUN` continues exactly where it stopped.")
    p.add_argument("--task", choices=TASKS, default="lm", help="what to train (default: lm)")
    p.add_argument("--out", metavar="RUN", default=None,
                   help="run folder to create (default: runs/<data>-<cell>-<date-time>)")
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="continue this run exactly (a new --steps/--epochs/--minutes extends it)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show a progress bar (default: on)")
    lm_group = p.add_argument_group("data, model and batches")
    add_arguments(lm_group, LMConfig)
    tr_group = p.add_argument_group("training")
    add_arguments(tr_group, TrainConfig)
    tr_group.add_argument("--bf16", dest="precision", action="store_const", const="bf16",
                          default=argparse.SUPPRESS, help="the same as --precision bf16")
    p.set_defaults(handler=run, exit_code=exit_code)
    return p


def run(args: argparse.Namespace):
    """Train as ``args`` says; returns the `rnnkit.train.FitResult`."""
    options = {**given_options(LMConfig, args), **given_options(TrainConfig, args)}
    data = options.pop("data", None)
    return lm.train(data, out=args.out, resume=args.resume, progress=args.progress, **options)


def exit_code(result) -> int:
    return SIGNAL_EXIT.get(result.reason, 0) if result.status == "interrupted" else 0
