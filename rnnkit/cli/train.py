"""``rnnkit train --task NAME``: train a model of any registered task (`rnnkit.tasks.TASKS`; the
language model by default). Every option of the task's configuration (`rnnkit.tasks.lm.config.LMConfig`
for ``lm``) and of `rnnkit.train.TrainConfig` is a flag; ``rnnkit train --task NAME --help`` lists them."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnkit.tasks import base, get_task, task_names
from rnnkit.train import TrainConfig
from rnnkit.train.config import add_arguments, given_options

#: exit status of a run stopped by a signal: the shell's convention (128 + the signal's number)
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}
DEFAULT_TASK = "lm"


def task_from_argv(argv: list[str] | None) -> str:
    """The task a ``train`` command line names: ``--task NAME``, else the task of ``--resume RUN``'s
    config.json, else the default. Read before parsing, so the parser can offer that task's flags;
    a name that is not a task is left for the parser to refuse."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv):
        if arg == "--task" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--task="):
            return arg.split("=", 1)[1]
    for i, arg in enumerate(argv):
        for flag in ("--resume", "--config"):
            run = argv[i + 1] if arg == flag and i + 1 < len(argv) else (
                arg.split("=", 1)[1] if arg.startswith(flag + "=") else None)
            if run:
                try:
                    from rnnkit.train import RunFolder
                    folder = RunFolder(run if flag == "--resume" else Path(run).parent)
                    return folder.read_config(verify=False)["task"]
                except (OSError, ValueError):
                    return DEFAULT_TASK  # the run's own errors are reported when it is loaded
    return DEFAULT_TASK


def add_parser(subparsers, argv: list[str] | None = None) -> argparse.ArgumentParser:
    name = task_from_argv(argv)
    task_cls = get_task(name if name in task_names() else DEFAULT_TASK)
    p = subparsers.add_parser(
        "train", help="train a model (a language model by default; --task for the others)",
        description="Train a model and write a run folder (config, vocabularies, weights, trainer "
                    "state, history, curves). Ctrl-C writes the last checkpoint; "
                    "`rnnkit train --resume RUN` continues exactly where it stopped. "
                    f"The flags below are those of --task {task_cls.name}; "
                    "`rnnkit train --task NAME --help` shows another task's.")
    p.add_argument("--task", choices=task_names(), default=task_cls.name,
                   help=f"what to train (default: {DEFAULT_TASK}, or the task of --resume RUN)")
    p.add_argument("--out", metavar="RUN", default=None,
                   help="run folder to create (default: runs/<data>-<cell>-<date-time>)")
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="continue this run exactly; a new budget extends it by a new schedule phase "
                        "(--steps/--epochs: the total; --minutes: more time)")
    p.add_argument("--config", metavar="RUN/config.json", default=None,
                   help="replay the run this config.json records (its options, measured steps and "
                        "plan) into --out")
    p.add_argument("--force", action="store_true",
                   help="replace the run already in --out (never done without it)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show a progress bar (default: on)")
    task_group = p.add_argument_group(f"data, model and batches (--task {task_cls.name})")
    add_arguments(task_group, task_cls.Config)
    tr_group = p.add_argument_group("training")
    add_arguments(tr_group, TrainConfig)
    tr_group.add_argument("--bf16", dest="precision", action="store_const", const="bf16",
                          default=argparse.SUPPRESS, help="the same as --precision bf16")
    p.set_defaults(handler=run, exit_code=exit_code, task_class=task_cls)
    return p


def run(args: argparse.Namespace):
    """Train as ``args`` says; returns the `rnnkit.train.FitResult`."""
    task_cls = get_task(args.task)
    if task_cls is not args.task_class:  # parse_args was given another command line than the parser
        raise ValueError(f"--task {args.task}: the flags were read for --task {args.task_class.name}; "
                         f"build the parser with this command line (build_parser(argv))")
    options = {**given_options(task_cls.Config, args), **given_options(TrainConfig, args)}
    return base.train(task_cls, out=args.out, resume=args.resume, config=args.config, force=args.force,
                      progress=args.progress, **options)


def exit_code(result) -> int:
    return SIGNAL_EXIT.get(result.reason, 0) if result.status == "interrupted" else 0
