"""``rnnkit predict RUN TEXT ... | --input FILE``: what a trained model of any task predicts (labels
with probabilities for a classifier, tags for a tagger, the next tokens for a language model)."""
from __future__ import annotations

import argparse
import sys

from rnnkit.data.textio import read_text
from rnnkit.tasks import task_of_run


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict", help="predict with a trained model (any task)",
        description="Run a trained model on texts given as arguments or read from --input (one "
                    "text per line, or the file format of the task: CoNLL-U for a tagger) and print "
                    "the predictions; the task is read from the run's config.json.")
    p.add_argument("run", metavar="RUN", help="run folder written by `rnnkit train`")
    p.add_argument("texts", metavar="TEXT", nargs="*", help="texts to predict for")
    p.add_argument("--input", metavar="FILE", default=None,
                   help="read the inputs from FILE (- for standard input)")
    p.add_argument("--output", metavar="FILE", default=None,
                   help="write the predictions to FILE instead of standard output")
    p.add_argument("--top", type=int, default=5,
                   help="language models: how many likely next tokens; classifiers: how many labels")
    p.add_argument("--device", default="cpu", help="where to run the model")
    p.set_defaults(handler=run)
    return p


def read_inputs(args) -> list[str]:
    if args.input is not None and args.texts:
        raise ValueError("predict: give texts as arguments or --input FILE, not both")
    if args.input is None:
        if not args.texts:
            raise ValueError("predict: give one or more texts, or --input FILE")
        return list(args.texts)
    text = sys.stdin.read() if args.input == "-" else read_text(args.input)
    return [line for line in text.split("\n") if line.strip()]


def run(args: argparse.Namespace, out=None):
    """Print (or write to --output) the predictions; returns them."""
    task_cls = task_of_run(args.run)
    if hasattr(task_cls, "predict_file") and args.input is not None:
        return task_cls.predict_file(args.run, args.input, args.output, device=args.device)
    inputs = read_inputs(args)
    predictions = task_cls.predict(args.run, inputs, top=args.top, device=args.device)
    text = task_cls.format_prediction(inputs, predictions)
    if args.output is not None:
        from rnnkit.data.atomic import atomic_write
        atomic_write(args.output, text)
    else:
        (out or sys.stdout).write(text)
    return predictions
