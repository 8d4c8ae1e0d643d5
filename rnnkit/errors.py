"""rnnkit's own exceptions: what a user can fix, said in one or two lines.

::

    RnnkitError                 anything rnnkit refuses on purpose (exit status 1)
    ├── ConfigError             an option, flag or argument: its name, the value, what is allowed (2)
    ├── DataError               an input file or text: the file (and line or byte), what was expected (3)
    └── CheckpointError         a run folder or saved model: missing, damaged, from another run,
                                locked by another process (4)

``ConfigError``, ``DataError`` and ``CheckpointError`` also subclass ``ValueError``, so code (and
tests) written against ``ValueError`` keep catching them. The command line prints any `RnnkitError`
as ``rnnkit COMMAND: error: MESSAGE`` without a traceback (``--debug`` shows it) and exits with the
class's `exit_code`. A new task raises these from its loaders; `wrap` turns a foreign exception
(``UnicodeDecodeError``, ``json.JSONDecodeError``, ``csv.Error``...) into one without losing it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

#: exit statuses of the command line: argparse uses 2 for usage errors, so options share it
EXIT_ERROR, EXIT_USAGE, EXIT_DATA, EXIT_CHECKPOINT, EXIT_INTERRUPTED = 1, 2, 3, 4, 130


class RnnkitError(Exception):
    """An error rnnkit reports as a message: the thing at fault, the value, what was expected."""

    exit_code = EXIT_ERROR


class ConfigError(RnnkitError, ValueError):
    """A bad option value or combination (a flag, a constructor argument, a config.json field)."""

    exit_code = EXIT_USAGE


class DataError(RnnkitError, ValueError):
    """Input data that cannot be read: name the file and, where known, the line or byte offset."""

    exit_code = EXIT_DATA


class CheckpointError(RnnkitError, ValueError):
    """A run folder or saved model that cannot be used: missing files, damage, a mix of two runs,
    an unknown format version, or a folder another process is writing."""

    exit_code = EXIT_CHECKPOINT


def wrap(cls: type[RnnkitError], where: str, exc: BaseException) -> RnnkitError:
    """``cls("<where>: <what exc says>")``, for ``raise wrap(DataError, path, exc) from exc``."""
    text = str(exc) or type(exc).__name__
    return cls(f"{where}: {text}")


@contextlib.contextmanager
def data_errors(where: str = "data") -> Iterator[None]:
    """Within it, a ``ValueError``, ``UnicodeError`` or ``csv.Error`` (a loader's way of refusing
    input) becomes a `DataError` saying ``where`` (kept as its cause); rnnkit's own errors and
    ``OSError`` (a missing file) pass unchanged, and so does anything else: that would be a bug."""
    import csv
    try:
        yield
    except RnnkitError:
        raise
    except (ValueError, UnicodeError, csv.Error) as exc:
        text = str(exc) or type(exc).__name__
        raise DataError(text if where in text else f"{where}: {text}") from exc
