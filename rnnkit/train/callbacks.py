"""Callbacks: what happens around the training loop without being the loop.

A callback overrides any of the hooks below; the `Trainer` calls them in list order. Hooks receive the
trainer (``trainer.step``, ``trainer.model``, ``trainer.history``, ``trainer.echo`` ...) and, for logs
and validations, the record being written to ``history.jsonl`` (a hook may add keys to it).
"""
from __future__ import annotations

import sys

from tqdm.auto import tqdm


class Callback:
    def on_train_start(self, trainer) -> None:
        """After the optimizer and state are set up (and restored, on resume)."""

    def on_step_end(self, trainer) -> None:
        """After every optimizer step; keep it cheap (no ``.item()``)."""

    def on_log(self, trainer, record: dict) -> None:
        """Every ``log_every`` steps, with the training record (mean loss, tokens/s, ...)."""

    def on_validation(self, trainer, record: dict) -> None:
        """After each validation, before the record is saved; may add keys (e.g. ``"sample"``)."""

    def on_train_end(self, trainer, result) -> None:
        """After the last checkpoint, with the `FitResult` (not called when training diverged)."""


#: short names of the tasks' count units on the progress bar
UNIT_ABBREVIATIONS = {"tokens": "tok", "sentences": "sent", "examples": "ex", "windows": "win"}


class ProgressBar(Callback):
    """A tqdm bar over the steps: the last log's loss, the task's display metric (e.g. perplexity)
    and speed (e.g. tokens/s), and the best validation value of that metric.

    While it is shown the trainer's messages go through ``tqdm.write`` so they do not break it."""

    def __init__(self, file=None, disable: bool | None = None):
        self.file = file or sys.stderr
        self.disable = disable
        self.bar: tqdm | None = None

    def on_train_start(self, trainer) -> None:
        self.bar = tqdm(total=trainer.total_steps, initial=trainer.step, unit="step",
                        file=self.file, disable=self.disable, dynamic_ncols=True, leave=True)
        self._shown = trainer.step
        if not self.bar.disable:
            trainer.echo = lambda text: tqdm.write(text, file=sys.stdout)

    def on_log(self, trainer, record: dict) -> None:
        if self.bar is None:
            return
        if self.bar.total != trainer.total_steps:
            self.bar.total = trainer.total_steps
        self.bar.update(trainer.step - self._shown)
        self._shown = trainer.step
        shown = getattr(trainer.task, "plot_metric", trainer.primary)
        unit = trainer.count_unit
        post = {"loss": f"{record['loss']:.3f}"}
        if shown in record and shown != "loss":
            post[shown] = f"{record[shown]:.2f}"
        post[f"{UNIT_ABBREVIATIONS.get(unit, unit)}/s"] = f"{record[f'{unit}_per_s']:,.0f}"
        if trainer.best is not None and shown in trainer.best:
            post[f"best val {shown}"] = f"{trainer.best[shown]:.3f}"
        self.bar.set_postfix(post, refresh=True)

    def on_train_end(self, trainer, result) -> None:
        self.close(trainer)

    def close(self, trainer) -> None:
        if self.bar is not None:
            self.bar.update(trainer.step - self._shown)
            self.bar.close()
            self.bar = None
            trainer.echo = print
