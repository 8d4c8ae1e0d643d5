"""``rnnkit evaluate RUN [--data PATH]``: a trained model's metrics on new data, for any task (the task
is read from the run's config.json: perplexity and bits per character for a language model, accuracy
and F1 for a classifier, ...); ``rnnkit evaluate --baseline ngram --data PATH``: the Kneser-Ney
n-gram baseline of language models on the same split."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from rnnkit.tasks import lm, task_of_run

ORDERS = (3, 4, 5, 6, 7)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evaluate", help="a run's metrics on new data (any task), or the n-gram baseline",
        description="Score a trained model on data: the task's metrics (a language model: "
                    "perplexity and bits per character, or per word). With --baseline ngram, fit a "
                    "Kneser-Ney "
                    "character n-gram model on the training part of --data and score its "
                    "validation part: the split and normalisation of RUN when given.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", metavar="RUN", nargs="?", default=None, help="run folder")
    p.add_argument("--data", default=None,
                   help="file, folder or corpus name (default: the run's own data)")
    p.add_argument("--split", choices=("all", "val", "train", "test"), default=None,
                   help="which part of the data (default: all of a given --data, else the run's "
                        "validation part; test: the task's test split where it has one)")
    p.add_argument("--baseline", choices=("ngram",), default=None,
                   help="evaluate a baseline instead of RUN")
    p.add_argument("--order", type=int, action="append", default=None,
                   help=f"n-gram order(s), repeatable (default: all of {list(ORDERS)})")
    p.add_argument("--letters-only", action="store_true",
                   help="n-gram without RUN: the textbook normalisation (28 tokens)")
    p.add_argument("--lower", action="store_true", help="n-gram without RUN: lower-case the text")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="n-gram without RUN: held-out fraction")
    p.add_argument("--encoding", default="utf-8", help="text encoding")
    p.add_argument("--errors", default="strict", help="undecodable bytes: strict, replace, ignore")
    p.add_argument("--device", default="cpu", help="where to run the model")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace, out=None):
    """Print and return the metrics (a dict), or the baseline's per-order results (a list)."""
    out = out or sys.stdout
    if args.baseline == "ngram":
        return _ngram(args, out)
    if args.run is None:
        raise ValueError("evaluate: give a RUN folder to evaluate, or --baseline ngram")
    task_cls = task_of_run(args.run)
    r = task_cls.evaluate_run(args.run, args.data, split=args.split, encoding=args.encoding,
                              errors=args.errors, device=args.device)
    out.write(task_cls.format_evaluation(r))
    return r


def _ngram(args, out) -> list[dict]:
    orders = tuple(args.order or ORDERS)
    for n in orders:
        if not 1 <= n <= 12:
            raise ValueError(f"--order must be in 1..12 (3-7 are the useful ones), got {n}")
    opts: dict[str, Any]   # evaluate_ngram's keyword arguments
    if args.run is not None:
        cfg = lm.load(args.run).config
        if cfg.level != "char":
            raise ValueError(f"the n-gram baseline is character-level; run {args.run} is "
                             f"{cfg.level}-level")
        opts = dict(val_fraction=cfg.val_fraction, split=cfg.split, lower=cfg.lower,
                    letters_only=cfg.letters_only, encoding=cfg.encoding, errors=cfg.errors)
        data = args.data or cfg.data
    else:
        opts = dict(val_fraction=args.val_fraction, lower=args.lower,
                    letters_only=args.letters_only, encoding=args.encoding, errors=args.errors)
        data = args.data or "stdlib"
    results = lm.evaluate_ngram(data, orders, **opts)
    out.write(f"Kneser-Ney character n-gram on {results[0]['data']} (validation part):\n")
    for r in results:
        out.write(f"  order {r['order']}: {r['bpc']:.4f} bits per character, perplexity "
                  f"{r['ppl']:.4f} ({r['seconds']:.1f} s)\n")
    best = lm.best_ngram(results)
    out.write(f"best: order {best['order']}, {best['bpc']:.4f} bpc\n")
    return results
