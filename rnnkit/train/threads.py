"""Re-checking the thread count during a run: `ThreadWatch`.

A run's thread count is chosen once, before training (the language model's recipe times 1 thread
and all threads; other tasks take PyTorch's count). A machine's load changes during a run: when
another busy process starts, OpenMP's threads spin waiting for each other and all threads can be
ten times slower than one (measured on 2 cores: 7,311 tokens/s instead of 75,742 quiet); when it
stops, all threads are faster again. So every `CHECK_EVERY_S` seconds of training the watch times a
few real training steps at the current count and as many at the other count (1 <-> all), and keeps
the other only when it is at least `SWITCH_GAIN` times faster.

The trial steps are the run's own steps (nothing is thrown away), and the thread count does not
change what they compute: 1 and 2 threads give bit-identical losses and weights, in fp32 and bf16
(``tests/train/test_threads.py`` checks it on the machine it runs on). A run is still a function of
its plan and seed; only its wall-clock time depends on the load. A switch is echoed with what was
measured, and each logged record of ``history.jsonl`` carries ``"threads"``.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch

from rnnkit.train.callbacks import Callback

#: seconds of training between two checks
CHECK_EVERY_S = 60.0
#: each of a check's two windows (current count, then the other) lasts at least this long ...
WINDOW_S = 0.5
#: ... and this many steps
WINDOW_MIN_STEPS = 3
#: the other count is kept only when it is at least this many times faster
SWITCH_GAIN = 1.2


class ThreadWatch(Callback):
    """Every ``every_s`` seconds, time ``window_s`` of steps at the current thread count and as long
    at the other one (1 if the current is more, else ``most``); keep the faster (the other only if
    ``gain`` times faster). A validation inside a window spoils it: the check starts again at the next
    step. ``set_threads``, ``get_threads`` and ``clock`` are torch's and ``time.perf_counter`` unless a
    test gives its own."""

    def __init__(self, most: int, *, every_s: float = CHECK_EVERY_S, window_s: float = WINDOW_S,
                 min_steps: int = WINDOW_MIN_STEPS, gain: float = SWITCH_GAIN,
                 clock: Callable[[], float] = time.perf_counter,
                 set_threads: Callable[[int], None] = torch.set_num_threads,
                 get_threads: Callable[[], int] = torch.get_num_threads):
        if most < 2:
            raise ValueError(f"ThreadWatch: most must be >= 2 (there is nothing to choose from), got {most}")
        self.most, self.every_s, self.window_s = most, every_s, window_s
        self.min_steps, self.gain = min_steps, gain
        self.clock, self.set_threads, self.get_threads = clock, set_threads, get_threads
        self.checks: list[dict] = []      # every check's measurements and decision
        self._phase = "wait"              # wait -> reference -> trial -> wait
        self._next = 0.0                  # the clock at which the next check begins
        self._start = (0.0, 0)            # (clock, step) at the start of the current window
        self._reference = 0.0             # steps per second at the current count
        self._current = 0                 # the count a check began with (restored unless beaten)

    def on_train_start(self, trainer) -> None:
        self._next = self.clock() + self.every_s

    def on_validation(self, trainer, record: dict) -> None:
        if self._phase != "wait":   # the window held a validation (and maybe a checkpoint): start again
            if self._phase == "trial":
                self.set_threads(self._current)
            self._phase = "wait"
            self._next = self.clock()

    def on_log(self, trainer, record: dict) -> None:
        record["threads"] = self.get_threads()

    def on_step_end(self, trainer) -> None:
        now = self.clock()
        if self._phase == "wait":
            if now >= self._next:
                self._current = self.get_threads()
                self._phase, self._start = "reference", (now, trainer.step)
            return
        t0, s0 = self._start
        steps = trainer.step - s0
        if steps < self.min_steps or now - t0 < self.window_s:
            return
        rate = steps / (now - t0)
        if self._phase == "reference":
            self._reference = rate
            other = 1 if self._current > 1 else self.most
            self.set_threads(other)
            self._phase, self._start = "trial", (self.clock(), trainer.step)
            return
        other = self.get_threads()
        keep = rate >= self.gain * self._reference
        if not keep:
            self.set_threads(self._current)
        self.checks.append({"step": trainer.step, "threads": {self._current: self._reference, other: rate},
                            "chosen": other if keep else self._current})
        if keep:
            trainer.echo(f"threads: {self._current} -> {other} at step {trainer.step:,} (measured "
                         f"{self._current} thread{'s' * (self._current > 1)} {self._reference:.2f} steps/s, "
                         f"{other} thread{'s' * (other > 1)} {rate:.2f} steps/s: the machine's load changed)")
        self._phase, self._next = "wait", self.clock() + self.every_s
