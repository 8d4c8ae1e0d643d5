"""``rnnkit COMMAND ...``: the program's entry point (also ``python -m rnnkit``).

Errors a user can fix (bad values, missing files, a corrupt run folder, a diverged run) print one
message and exit with status 1; ``RNNKIT_DEBUG=1`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import os
import sys

from rnnkit import __version__
from rnnkit.cli import bench, evaluate, explain, export, forecast, generate, predict, train, translate
from rnnkit.train import RunFolderError, TrainingDiverged

COMMANDS = (train, generate, evaluate, predict, translate, forecast, explain, export, bench)
#: the errors reported as a message rather than a traceback
USER_ERRORS = (ValueError, TypeError, OSError, RunFolderError, TrainingDiverged)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; ``argv`` (default ``sys.argv[1:]``) tells ``train`` which task's flags to add."""
    parser = argparse.ArgumentParser(
        prog="rnnkit", description="rnnkit: recurrent neural networks, from the equations to a "
                                   "trained model. `rnnkit COMMAND --help` for each command.")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        if module is train:
            module.add_parser(sub, argv)
        else:
            module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    try:
        result = args.handler(args)
    except USER_ERRORS as exc:
        if os.environ.get("RNNKIT_DEBUG") == "1":
            raise
        print(f"rnnkit {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nrnnkit {args.command}: interrupted", file=sys.stderr)
        return 130
    return getattr(args, "exit_code", lambda r: 0)(result)


if __name__ == "__main__":
    sys.exit(main())
