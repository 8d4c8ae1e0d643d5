"""Time series in: a CSV with a date column and value columns -> a checked, gap-reported float array.

Rules (each broken rule is a `ValueError` naming the file, the row and what was expected):

- the first row is a header; fields may be quoted; CRLF line ends and a missing final newline are fine;
- the date column (``date_col``, else the first column) holds ISO dates: ``1949``, ``1949-01``,
  ``1981-01-01`` or a date and time; they must increase. The step of the series is the most common
  gap between dates; longer gaps are *reported* (how many steps are missing, and where), not filled:
  the model sees the rows as consecutive;
- value columns hold numbers; an empty field, ``NA`` or ``NaN`` is missing: an error unless
  ``fill="ffill"`` (the last value carried forward) or ``fill="linear"`` (interpolated);
- the first value column named is the target; the others are covariates (inputs only).

Shapes: N rows, C value columns.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.data.textio import read_text

FILLS = ("none", "ffill", "linear")
MISSING = {"", "na", "nan", "null", "none", "?"}
#: the season assumed for a step (its length in days): months repeat every 12, days every 7
SEASONS = {"month": 12, "day": 7, "hour": 24, "quarter": 4, "week": 52, "year": 1, "minute": 60}


@dataclass
class Series:
    """A loaded series: ``values`` ``(N, C)`` float64 (column 0 the target), ``dates`` ``(N,)``."""

    name: str
    columns: list[str]
    values: np.ndarray
    dates: np.ndarray                       # numpy datetime64
    step: str                               # "month", "day", ... (a name for the most common gap)
    step_delta: np.timedelta64 | None       # the most common gap
    gaps: list[tuple[str, str, int]] = field(default_factory=list)  # (after, before, missing steps)
    filled: int = 0

    @property
    def season(self) -> int:
        return SEASONS.get(self.step, 1)

    def gap_report(self) -> str:
        if not self.gaps:
            return ""
        missing = sum(g[2] for g in self.gaps)
        shown = "; ".join(f"{n} missing between {a} and {b}" for a, b, n in self.gaps[:5])
        more = f" (and {len(self.gaps) - 5} more gaps)" if len(self.gaps) > 5 else ""
        return (f"{self.name}: {missing} {self.step}(s) are missing: {shown}{more}; the rows are "
                f"used as consecutive steps")


def _parse_date(text: str) -> np.datetime64 | None:
    text = text.strip()
    if not text or not text[0].isdigit():
        return None
    try:
        return np.datetime64(text.replace(" ", "T"))
    except ValueError:
        return None


def _step_name(delta: np.timedelta64, unit: str) -> str:
    if unit == "Y":
        return "year"
    if unit == "M":
        months = int(delta.astype("timedelta64[M]").astype(int))
        return {1: "month", 3: "quarter", 12: "year"}.get(months, f"{months} months")
    seconds = delta / np.timedelta64(1, "s")
    for name, s in (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if math.isclose(seconds, s):
            return name
    return f"{seconds:g} seconds"


def load_series(path: str | Path, columns: list[str] | None = None, *, date_col: str | None = None,
                fill: str = "none", encoding: str = "utf-8") -> Series:
    """Read ``path`` by the module's rules; ``columns``: value columns to use (default: every column
    but the date, which must then be exactly one)."""
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {list(FILLS)}, got {fill!r}")
    path = Path(path)
    text = read_text(path, encoding=encoding)
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise ValueError(f"{path}: expected a header row and at least one data row, got {len(rows)} "
                         f"row(s)")
    header = [h.strip() for h in rows[0]]
    if date_col is None:
        d = 0
    elif date_col in header:
        d = header.index(date_col)
    else:
        raise ValueError(f"{path}: no date column {date_col!r}; the columns are {header}")
    if columns:
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path}: no column {missing[0]!r}; the columns are {header}")
        if header[d] in columns:
            raise ValueError(f"{path}: column {header[d]!r} is the date column; name value columns")
        use = [header.index(c) for c in columns]
    else:
        use = [i for i in range(len(header)) if i != d]
        if len(use) != 1:
            raise ValueError(f"{path}: {len(use)} value columns {[header[i] for i in use]}; name the "
                             f"one to forecast with --column (and any covariates after it)")
    dates, values = [], np.empty((len(rows) - 1, len(use)))
    n_missing = 0
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, row {r}: {len(row)} fields, expected {len(header)} like the "
                             f"header {header}")
        date = _parse_date(row[d])
        if date is None:
            raise ValueError(f"{path}, row {r}: column {header[d]!r} holds {row[d]!r}, expected an "
                             f"ISO date such as 1949-01 or 1981-01-01 (or --date-col another column)")
        dates.append(date)
        for j, i in enumerate(use):
            cell = row[i].strip()
            if cell.lower() in MISSING:
                values[r - 2, j] = math.nan
                n_missing += 1
                continue
            try:
                values[r - 2, j] = float(cell)
            except ValueError:
                raise ValueError(f"{path}, row {r}: column {header[i]!r} holds {row[i]!r}, expected a "
                                 f"number") from None
            if not math.isfinite(values[r - 2, j]):
                raise ValueError(f"{path}, row {r}: column {header[i]!r} holds {row[i]!r}, expected a "
                                 f"finite number")
    if n_missing:
        values = _fill(values, fill, path, [header[i] for i in use])
    stamps = np.array(dates)
    unit = np.datetime_data(stamps.dtype)[0]
    step_name, step_delta, gaps = "step", None, []
    if len(stamps) > 1:
        diffs = np.diff(stamps)
        bad = np.flatnonzero(diffs <= np.timedelta64(0))
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"{path}, row {i + 3}: date {stamps[i + 1]} does not come after {stamps[i]} "
                             f"(row {i + 2}); expected increasing dates")
        kinds, counts = np.unique(diffs, return_counts=True)
        step_delta = kinds[np.argmax(counts)]
        step_name = _step_name(step_delta, unit)
        for g in np.flatnonzero(diffs != step_delta):
            n = int(round(diffs[g] / step_delta)) - 1
            if n > 0:
                gaps.append((str(stamps[g]), str(stamps[g + 1]), n))
    return Series(path.stem, [header[i] for i in use], values, stamps, step_name, step_delta, gaps,
                  n_missing)


def _fill(values: np.ndarray, fill: str, path: Path, names: list[str]) -> np.ndarray:
    bad = np.argwhere(np.isnan(values))
    if fill == "none":
        r, c = bad[0]
        raise ValueError(f"{path}, row {r + 2}: column {names[c]!r} is missing ({len(bad)} missing "
                         f"value(s) in all); fill them with --fill ffill or --fill linear")
    out = values.copy()
    for c in range(out.shape[1]):
        col = out[:, c]
        nan = np.isnan(col)
        if not nan.any():
            continue
        ok = np.flatnonzero(~nan)
        if len(ok) == 0:
            raise ValueError(f"{path}: column {names[c]!r} has no value at all")
        if fill == "ffill":
            idx = np.where(~nan, np.arange(len(col)), 0)
            np.maximum.accumulate(idx, out=idx)
            col[:] = col[idx]
            col[:ok[0]] = col[ok[0]]  # leading gaps take the first value
        else:
            col[nan] = np.interp(np.flatnonzero(nan), ok, col[ok])
    return out


def future_dates(series: Series, steps: int) -> list[str]:
    """The ``steps`` dates after the series' last one, at its usual step."""
    if series.step_delta is None:
        return [f"+{i}" for i in range(1, steps + 1)]
    return [str(series.dates[-1] + series.step_delta * i) for i in range(1, steps + 1)]
