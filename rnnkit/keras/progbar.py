"""Keras's progress bar: ``Epoch 1/100`` then ``32/32 ━━━━━━━━━━━━━━━━━━━━ 0s 2ms/step - loss: 0.69``.

``verbose=1`` redraws one line on a terminal (``\\r``) and prints only the finished line otherwise
(logs stay readable); ``verbose=2`` prints one line per epoch; ``verbose=0`` nothing."""
from __future__ import annotations

import math
import sys
import time

BAR_WIDTH = 20


def format_value(v: float) -> str:
    return f"{v:.4f}" if abs(v) > 1e-3 else f"{v:.4e}"


def format_time(seconds_per_step: float) -> str:
    if seconds_per_step >= 1:
        return f"{seconds_per_step:.0f}s/step"
    if seconds_per_step >= 1e-3:
        return f"{seconds_per_step * 1e3:.0f}ms/step"
    return f"{seconds_per_step * 1e6:.0f}us/step"


class Progbar:
    """``update(current, values)`` with ``values`` a dict of already-averaged numbers."""

    def __init__(self, target: int | None, verbose: int = 1, interval: float = 0.05, stream=None):
        self.target, self.verbose, self.interval = target, verbose, interval
        self.stream = stream or sys.stdout
        self.dynamic = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = self.last = time.perf_counter()
        self.width = 0

    def line(self, current: int, values: dict, finalize: bool) -> str:
        now = time.perf_counter()
        per_step = (now - self.start) / max(current, 1)
        if self.target:
            digits = int(math.log10(self.target)) + 1
            count = f"{current:{digits}d}/{self.target}"
        else:
            count = f"{current:7d}/Unknown"
        metrics = "".join(f" - {k}: {format_value(v)}" for k, v in values.items())
        if self.verbose == 2:
            return f"{count} - {now - self.start:.0f}s - {format_time(per_step)}{metrics}"
        bar = ""
        if self.target:
            done = int(BAR_WIDTH * current / self.target)
            rest = "\x1b[2m" + "━" * (BAR_WIDTH - done) + "\x1b[0m" if done < BAR_WIDTH else ""
            bar = " " + "━" * done + rest
        if finalize or not self.target:
            when = f"{now - self.start:.0f}s"
        else:
            when = f"{per_step * (self.target - current):.0f}s"
        return f"{count}{bar} {when} {format_time(per_step)}{metrics}"

    def update(self, current: int, values: dict | None = None, finalize: bool | None = None) -> None:
        if self.verbose == 0:
            return
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        now = time.perf_counter()
        if not finalize and (self.verbose == 2 or not self.dynamic or now - self.last < self.interval):
            return
        self.last = now
        text = self.line(current, values or {}, finalize)
        if self.verbose == 1 and self.dynamic:
            pad = max(0, self.width - len(text))
            self.stream.write("\r" + text + " " * pad + ("\n" if finalize else ""))
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
