"""``rnnkit COMMAND ...``: the program's entry point (also ``python -m rnnkit``).

Errors a user can fix print one message, ``rnnkit COMMAND: error: ...``, without a traceback, and
exit with a status that says what kind of error it was (`rnnkit.errors`): 2 a bad option or usage
(argparse's own status), 3 bad input data, 4 an unusable run folder, 1 anything else rnnkit
refuses (a diverged run, a file it cannot write). ``--debug`` (or ``RNNKIT_DEBUG=1``) shows the
traceback instead. Ctrl-C exits with 130 at any moment, start-up included; a closed output pipe
(``rnnkit generate ... | head``) ends the program quietly.

The subcommands (and torch) are imported inside `main`, so that an interrupt while they load is
handled like any other.
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from rnnkit import __version__
from rnnkit.errors import EXIT_DATA, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, RnnkitError

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

#: the errors of Python and libraries reported as a message (with the status given) rather than a trace
FOREIGN_ERRORS = ((FileNotFoundError, EXIT_DATA), (IsADirectoryError, EXIT_DATA),
                  (PermissionError, EXIT_DATA), (UnicodeError, EXIT_DATA), (ValueError, EXIT_USAGE),
                  (TypeError, EXIT_USAGE), (OverflowError, EXIT_USAGE), (OSError, EXIT_ERROR))


def commands():
    """The subcommands' modules (imported when first needed)."""
    from rnnkit.cli import bench, evaluate, explain, export, forecast, generate, predict, train, translate
    return (train, generate, evaluate, predict, translate, forecast, explain, export, bench)


def __getattr__(name: str):
    if name == "COMMANDS":   # the list the docs and tests read, without importing it at start-up
        return commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_parser(argv: list[str] | None = None):
    """The whole parser; ``argv`` (default ``sys.argv[1:]``) tells ``train`` which task's flags to add."""
    import argparse

    from rnnkit.cli import train
    parser = argparse.ArgumentParser(
        prog="rnnkit", description="rnnkit: recurrent neural networks, from the equations to a "
                                   "trained model. `rnnkit COMMAND --help` for each command.")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also RNNKIT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands():
        if module is train:
            module.add_parser(sub, argv)
        else:
            module.add_parser(sub)
    return parser


def exit_status(exc: BaseException) -> int | None:
    """The exit status of an error reported as a message; None: a bug (shown as a traceback)."""
    if isinstance(exc, RnnkitError):
        return exc.exit_code
    for cls, status in FOREIGN_ERRORS:
        if isinstance(exc, cls):
            return status
    return None


def _first_lines(exc: BaseException, limit: int = 2) -> str:
    text = str(exc) or type(exc).__name__
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(lines[:limit]) + (" ..." if len(lines) > limit else "")


def _quiet_broken_pipe() -> int:
    """The reader of our output went away (``| head``): stop quietly. Point stdout at /dev/null so
    the interpreter's final flush does not raise again (Python's documented recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


class _InterruptWatch:
    """Remembers a Ctrl-C (SIGINT) while ``main`` runs. An interrupt that lands inside an import (torch
    loads parts of itself lazily) can leave a module half-initialised, so the error that surfaces is
    a RecursionError or an ImportError rather than the KeyboardInterrupt: with this record, ``main``
    still reports it as the interrupt it was."""

    def __init__(self, exiting: bool = False) -> None:
        self.seen = False
        # the program ends when ``main`` returns (the command line, not a caller in Python): then a
        # Ctrl-C that arrives after the work is done is ignored instead of killing the exit (status -2)
        self.exiting = exiting
        # the SIGINT handler to restore (what signal.signal returned)
        self.previous: Callable[[int, FrameType | None], Any] | int | None = None

    def _handle(self, signum, frame) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def __enter__(self) -> _InterruptWatch:
        import signal
        import threading
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            import signal
            signal.signal(signal.SIGINT, signal.SIG_IGN if self.exiting else self.previous)
        if self.exiting:   # the status main returns is the program's, interrupted or not
            forget_escaped_interrupt()


def forget_escaped_interrupt() -> None:
    """Keep the exit status rnnkit chose after a Ctrl-C (130). CPython remembers a KeyboardInterrupt
    that escaped code run through ``PyRun_String`` (some extensions run Python snippets that way
    while they load) and, when the program ends, kills itself with SIGINT (status -2) although the
    interrupt was caught and handled. Every ``PyRun_String`` starts by clearing that flag: run an
    empty one. (No Python API reaches the flag; ``ctypes.pythonapi`` holds the GIL.)"""
    try:
        import ctypes
        ctypes.pythonapi.PyRun_SimpleString(b"")
    except (ImportError, AttributeError, OSError):
        pass


def main(argv: list[str] | None = None) -> int:
    """The ``rnnkit`` command; its exit status. ``argv=None``: the program's own command line, and
    the process is about to end, so a Ctrl-C after the command finished is ignored (it would
    otherwise kill the exit of a finished run); with a list, the caller's SIGINT handler is restored."""
    with _InterruptWatch(exiting=argv is None) as watch:
        return _main(argv, watch)


def _main(argv: list[str] | None, watch: _InterruptWatch) -> int:
    debug = os.environ.get("RNNKIT_DEBUG") == "1" or "--debug" in (sys.argv[1:] if argv is None else argv)
    command = "rnnkit"
    try:
        args = build_parser(argv).parse_args(argv)
        command = f"rnnkit {args.command}"
        debug = debug or args.debug
        if getattr(args, "device", None) is not None:
            from rnnkit.train.runtime import resolve_device
            args.device = str(resolve_device(args.device)) if args.device != "auto" else "auto"
        result = args.handler(args)
        return getattr(args, "exit_code", lambda r: 0)(result)
    except KeyboardInterrupt:
        print(f"\n{command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except SystemExit:
        raise   # argparse's usage errors (status 2) and --help
    except Exception as exc:
        if watch.seen and not debug:   # the interrupt, surfacing as another error (see _InterruptWatch)
            print(f"\n{command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        status = exit_status(exc)
        if status is None or debug:
            raise
        try:
            print(f"{command}: error: {_first_lines(exc)}", file=sys.stderr)
        except BrokenPipeError:
            pass
        return status


if __name__ == "__main__":
    sys.exit(main())
