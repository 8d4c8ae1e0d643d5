"""``rnnkit translate RUN "he is calm ." | --input FILE [--beam K]``: translate with a trained
translator (`rnnkit train --task translate`), one sentence per line out."""
from __future__ import annotations

import argparse
import sys

from rnnkit.data.textio import read_text


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "translate", help="translate sentences with a trained translator",
        description="Translate the sentences given as arguments, or one per line of --input, and print "
                    "one translation per line. Words the run has not seen are read as <unk> (a "
                    "warning counts them); sentences longer than the run's --max-len are cut, with a "
                    "warning.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run folder written by `rnnkit train --task translate`")
    p.add_argument("texts", metavar="TEXT", nargs="*", help="sentences to translate")
    p.add_argument("--input", metavar="FILE", default=None, help="one sentence per line (- for stdin)")
    p.add_argument("--output", metavar="FILE", default=None, help="write the translations to FILE")
    p.add_argument("--beam", type=int, default=1, help="beam width (1: greedy)")
    p.add_argument("--alpha", type=float, default=None,
                   help="length normalisation of beam search (default: the run's)")
    p.add_argument("--device", default="cpu", help="where to run the model")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace, out=None) -> list[str]:
    """Print (or write to --output) the translations; returns them."""
    from rnnkit.tasks import translate as tr
    from rnnkit.tasks import task_of_run
    if task_of_run(args.run) is not tr.TranslationTask:
        raise ValueError(f"translate: {args.run} is not a translation run (its task is "
                         f"{task_of_run(args.run).name!r}); train one with --task translate")
    if args.input is not None and args.texts:
        raise ValueError("translate: give sentences as arguments or --input FILE, not both")
    if args.input is None:
        if not args.texts:
            raise ValueError("translate: give one or more sentences, or --input FILE")
        sentences = list(args.texts)
    else:
        text = sys.stdin.read() if args.input == "-" else read_text(args.input)
        sentences = [line for line in text.split("\n") if line.strip()]
        if not sentences:
            raise ValueError(f"translate: --input {args.input} holds no sentences")
    result = tr.translate(args.run, sentences, beam=args.beam, alpha=args.alpha, device=args.device)
    text = "".join(f"{t}\n" for t in result)
    if args.output is not None:
        from rnnkit.data.atomic import atomic_write
        atomic_write(args.output, text)
    else:
        (out or sys.stdout).write(text)
    return result
