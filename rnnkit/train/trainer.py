"""The training loop every task uses: `Trainer(task, config, run).fit()`.

The trainer knows no task: no perplexity, no tokens, no samples. A *task* (`rnnkit.tasks.base.Task`
implements this for every workflow) supplies the model and the data and knows its loss and metrics::

    task.model                  nn.Module, already on its device
    task.steps_per_epoch        int: batches in one pass over the training data
    task.next_batch()           the next training batch (the task wraps epochs)
    task.loss(batch)            (loss_sum, count): the summed loss over ``count`` targets (an int or
                                a 0-d tensor); the trainer minimises loss_sum / count
    task.evaluate()             validation metrics: a dict with "loss" and the task's own
    task.state_dict()           plain values and tensors: data position, carried state
    task.load_state_dict(d)

and optionally (defaults in brackets)::

    task.primary_metric         the validation metric that picks the best weights ["loss"]
    task.higher_is_better       its direction [False]
    task.count_unit             what ``count`` counts, for the speed "<unit>_per_s" ["examples"]
    task.train_metrics(loss)    extra training-log metrics from the mean loss, e.g. {"ppl": ...} [{}]
    task.plot_metric            the second panel of curves.png [the primary metric]

The trainer owns the rest: optimizer and schedule, gradient clipping, the budget, validation every
``eval_every`` steps with best-by-validation checkpoints, the history, SIGINT/SIGTERM (finish the
step, write the last checkpoint, return), a non-finite loss (stop, name the step, keep the last good
checkpoint) and exact resumption (optimizer, schedule, RNG, data position, pending log window: a
resumed run's losses equal an uninterrupted run's, bit for bit).

**A run is a function of its plan and seed.** The budget becomes a *plan* once, before the first
step: a list of phases ``{"start", "end", "eval_every", "budget"}`` in steps. Steps and epochs
convert by arithmetic; a budget in minutes by `calibrate` (a few timed steps and one timed
validation on a throwaway copy of the state, so the run itself is untouched), whose measurements
the phase records. The plan is saved (config.json's ``"plan"``, and the trainer state), so
resuming, or replaying config.json, never measures again. A new budget given on resume starts a new
phase at the current step (`extend_plan`): the schedule restarts its shape there (a warm restart)
and the phase is recorded, so the extended run can be replayed exactly too.

The per-step path has no host-device synchronisation: losses are kept as tensors and read once per
``log_every`` steps.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass

import torch

from rnnkit.errors import CheckpointError, ConfigError, RnnkitError
from rnnkit.train import history as hist
from rnnkit.train.checkpoint import CURVES, LAST, RunFolder, load_weights_file, weights_of
from rnnkit.train.config import TrainConfig
from rnnkit.train.distributed import Dist
from rnnkit.train.optim import Schedule, build_optimizer, clip_grad_norm
from rnnkit.train.runtime import StopOnSignals, rng_state, set_rng_state

STATE_VERSION = 2
#: aim for about this many validations in a run when ``eval_every`` is not given
VALIDATIONS_PER_RUN = 20
#: with a budget in minutes, validations take at most about this share of it (and at least 3 happen)
VALIDATION_SHARE = 0.05
#: calibration of a budget in minutes: time steps for at least this long (and this share of the
#: budget), at least `CALIBRATION_MIN_STEPS` steps, at most `CALIBRATION_MAX_STEPS`
CALIBRATION_SECONDS, CALIBRATION_SHARE = 2.0, 0.01
CALIBRATION_MIN_STEPS, CALIBRATION_MAX_STEPS = 5, 200
#: redraw curves.png at most this often (seconds) during a run; always at its end
PLOT_EVERY_S = 60.0


class TrainingDiverged(RnnkitError, RuntimeError):
    """The loss (or gradient norm) became NaN or infinite; ``.step`` is the first bad step."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


@dataclass
class FitResult:
    status: str            # "finished", "interrupted" (SIGINT/SIGTERM), "stopped" (a callback) or "diverged"
    step: int              # optimizer steps done in all
    best: dict | None      # the best validation record
    last: dict | None      # the last validation record
    message: str
    reason: str | None = None  # why it stopped early: "SIGINT", "SIGTERM", a callback's reason
    run: object = None         # the run folder's path (set by the task that ran it)


def budget_dict(cfg: TrainConfig) -> dict:
    kind, value = cfg.budget
    return {kind: value}


def check_plan(plan, where: str = "plan") -> list[dict]:
    """``plan`` (from config.json or a trainer state) checked: contiguous phases of whole steps."""
    ok = isinstance(plan, list) and bool(plan)
    for i, ph in enumerate(plan if ok else []):
        ok = ok and isinstance(ph, dict) and all(
            type(ph.get(k)) is int for k in ("start", "end", "eval_every")) and ph["eval_every"] >= 1 \
            and ph["start"] <= ph["end"] and ph["start"] == (plan[i - 1]["end"] if i else 0) \
            and isinstance(ph.get("budget"), dict)
    if not ok:
        raise CheckpointError(f"{where} is corrupt: expected a list of phases {{\"start\", \"end\", "
                              f"\"eval_every\", \"budget\"}} in whole steps, each starting where the "
                              f"last ended, got {plan!r:.200}")
    return plan


class Trainer:
    """Runs ``task`` under ``config`` writing into ``run`` (a `RunFolder`, a path, or None for none).

    ``resume=True`` continues from the run's last checkpoint (the task must already hold the same
    configuration). ``plan``: the run's phases (config.json's, when a run folder has one); None: made
    from the budget (or, on resume, read from the checkpoint) -- see the module docstring.
    ``echo`` prints messages (replaced by the progress bar's writer while it runs). ``dist``: this
    process's place in a distributed run (`rnnkit.train.distributed`; default: a single process):
    each rank trains on its rows of every batch under DDP, and rank 0 alone writes ``run``.
    """

    def __init__(self, task, config: TrainConfig, run=None, *, callbacks=(), resume: bool = False,
                 echo=print, plan: list[dict] | None = None, dist: Dist | None = None):
        self.task, self.cfg = task, config
        self.dist = dist or Dist()
        self._ddp: torch.nn.Module | None = None   # the DDP wrapper of a distributed run
        self._task_state: dict | None = None   # the ranks' task states merged, for a checkpoint
        self.model = task.model
        self.run: RunFolder | None = run if isinstance(run, RunFolder) or run is None else RunFolder(run)
        if resume and self.run is None:
            raise ValueError("Trainer: resume=True needs a run folder to resume from")
        self.callbacks = list(callbacks)
        self.resume, self.echo = resume, echo
        self.plan = None if plan is None else [dict(p) for p in check_plan(plan)]
        self.step = 0
        self.history: list[dict] = []
        self.best: dict | None = None
        self.last_val: dict | None = None
        self.elapsed = 0.0          # training seconds, over all sessions of this run
        self.seen = 0               # training targets seen (the tasks' counts: tokens, sentences...)
        self.primary = getattr(task, "primary_metric", "loss")
        self.higher_is_better = bool(getattr(task, "higher_is_better", False))
        self.count_unit = getattr(task, "count_unit", "examples")
        self._since_best = 0        # validations since the primary metric last improved
        self.stop_reason: str | None = None
        self._window: list[torch.Tensor] = []       # per-step losses since the last log (tensors)
        self._norms: list[torch.Tensor] = []
        self._window_count: float | torch.Tensor = 0   # a tensor between logs (no sync per step)
        self._carried: list[float] = []             # window losses read back (resume, interrupt)
        self._norms_carried: list[float] = []
        self._validated_at = -1
        self._best_weights: dict | None = None      # the best weights not yet in a checkpoint
        self._last_plot = 0.0
        self._prepared = False

    # -- setup ----------------------------------------------------------------------------------
    def prepare(self) -> list[dict]:
        """Build the optimizer, restore the checkpoint (on resume) and settle the plan (measuring a
        budget in minutes); returns the plan. `fit` calls it when it was not called before."""
        if self._prepared and self.plan is not None:   # a prepared trainer always has its plan
            return self.plan
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = next(self.model.parameters()).device
        self.optimizer = build_optimizer(self.model, cfg)
        self._params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self._ema = [p.detach().clone() for p in self._params] if cfg.ema else None
        self.schedule = Schedule(self.optimizer, cfg)
        if self.resume:
            saved_plan = self._load()
            if self.plan is None:
                self.plan = saved_plan
        if self.plan is None:
            self.plan = []
        self.plan = extend_plan(self, self.plan, cfg)
        self.schedule.phases = [(p["start"], p["end"]) for p in self.plan]
        self.schedule.total_steps = self.plan[-1]["end"]
        self.schedule.set(self.step)
        self._autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                          if cfg.precision == "bf16" else contextlib.nullcontext())
        if self.dist.enabled:  # every rank follows rank 0's plan (its measurement of a budget)
            self.plan = self.dist.broadcast(self.plan)
            self.schedule.phases = [(p["start"], p["end"]) for p in self.plan]
            self.schedule.total_steps = self.plan[-1]["end"]
            self.schedule.set(self.step)
            self._ddp = self.dist.wrap(self.task)
            if not self.dist.is_main:
                self.run = None   # read to resume; only rank 0 writes
        self._prepared = True
        return self.plan

    @property
    def total_steps(self) -> int | None:
        return self.plan[-1]["end"] if self.plan else None

    @property
    def phase(self) -> dict:
        """The phase the next step belongs to (the last one once the plan is done)."""
        plan = self.plan or []
        return next((p for p in plan if p["start"] <= self.step < p["end"]), plan[-1])

    @property
    def eval_every(self) -> int | None:
        return self.phase["eval_every"] if self.plan else self.cfg.eval_every

    def _load(self) -> list[dict]:
        """Restore the last checkpoint; returns the plan it was saved with."""
        run = self._run_folder()
        state = run.load_trainer_state()
        weights_step = load_weights_file(run.checkpoint_file(LAST), self.model)
        if weights_step != state["step"]:
            raise CheckpointError(f"{run.path}: {LAST} is from step {weights_step} but "
                                  f"trainer_state.pt from step {state['step']}; the checkpoint is "
                                  f"inconsistent and cannot be resumed exactly")
        if state.get("version") != STATE_VERSION:
            raise CheckpointError(f"{run.path}: trainer_state.pt has version {state.get('version')!r}, "
                                  f"expected {STATE_VERSION}")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            self.task.load_state_dict(state["task"])
            if hasattr(self.task, "take_shard"):   # this rank's part of a merged state
                self.task.take_shard(self.dist.rank, self.dist.world)
            set_rng_state(state["rng"])
            self.step, self.elapsed, self.seen = state["step"], state["elapsed"], state["tokens"]
            self._since_best = state.get("since_best", 0)
            self.best, self.last_val = state["best"], state["last_val"]
            self._carried, self._window_count = list(state["window"]), state["window_tokens"]
            self._norms_carried = list(state["window_norms"])
            plan = check_plan(state["plan"], f"{run.path}: trainer_state.pt's plan")
        except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{run.path}: trainer_state.pt does not fit this run's "
                                  f"configuration ({type(exc).__name__}: {exc})") from None
        if self._ema is not None:
            if state.get("ema") is None or len(state["ema"]) != len(self._ema):
                raise CheckpointError(f"{run.path}: trainer_state.pt holds no averaged weights for "
                                      f"ema={self.cfg.ema}")
            self._ema = [t.to(p.device) for t, p in zip(state["ema"], self._params)]
        self.history = run.read_history()
        return plan

    def state_dict(self) -> dict:
        pending = self._carried + [float(x) for x in self._window]
        norms = self._norms_carried + [float(x) for x in self._norms]
        return {"version": STATE_VERSION, "step": self.step, "elapsed": self.elapsed,
                "tokens": self.seen, "plan": self.plan, "since_best": self._since_best,
                "best": self.best,
                "last_val": self.last_val, "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "rng": rng_state(),
                "task": self._task_state if self._task_state is not None else self.task.state_dict(),
                "window": pending, "window_norms": norms,
                "window_tokens": int(self._window_count),
                "ema": None if self._ema is None else [t.cpu() for t in self._ema]}

    # -- the loop -------------------------------------------------------------------------------
    def fit(self) -> FitResult:
        plan = self.prepare()
        total_steps = plan[-1]["end"]
        cfg, task, model, opt, params = self.cfg, self.task, self.model, self.optimizer, self._params
        if self.run is not None and not self.resume:
            self._best_weights = weights_of(model)
            self.checkpoint()  # the folder is complete from the start
        for cb in self.callbacks:
            cb.on_train_start(self)
        model.train()
        t_start = time.perf_counter() - self.elapsed
        self._last_plot = time.perf_counter()
        self._t_log, self._paused = time.perf_counter(), 0.0
        if self.step >= total_steps:
            self.stop_reason = f"the run already did {self.step} of its {total_steps} steps"
        status = "finished"
        with StopOnSignals(self):
            while self.step < total_steps:
                batch = self.dist.shard(task.next_batch())
                with self._autocast:
                    if self._ddp is None:
                        loss_sum, count = task.loss(batch)
                        loss = loss_sum / count
                    else:  # scaled so that DDP's mean over ranks is the global batch's mean loss
                        loss_sum, count = self._ddp(batch)
                        total = self.dist.all_sum([float(count)])[0]
                        loss = loss_sum * (self.dist.world / total)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.clip > 0:
                    self._norms.append(clip_grad_norm(params, cfg.clip))
                opt.step()
                if self._ema is not None:
                    self._update_average()
                self.step += 1
                self.elapsed = time.perf_counter() - t_start
                self.schedule.set(self.step)
                self._window.append(loss.detach())
                self._window_count += count
                for cb in self.callbacks:
                    cb.on_step_end(self)
                phase = next(p for p in plan if p["start"] < self.step <= p["end"])
                validate = (self.step - phase["start"]) % phase["eval_every"] == 0 \
                    or self.step == phase["end"]
                if self.step % cfg.log_every == 0 or validate:
                    self._log()
                if validate and self._validated_at != self.step:
                    self.validate()
                if self._stop_now():
                    status = "interrupted" if (self.stop_reason or "").startswith("SIG") else "stopped"
                    self._carried, self._norms_carried = self._read_window()
                    self._window, self._norms = [], []
                    break
        self._gather_task_state()
        if self.run is not None:
            self.checkpoint()
            self._write_plot(force=True)
        result = FitResult(status, self.step, self.best, self.last_val, self._message(status),
                           self.stop_reason)
        for cb in self.callbacks:
            cb.on_train_end(self, result)
        return result

    def _improves(self, metrics: dict) -> bool:
        """Whether ``metrics`` beat the best so far on the task's primary metric (a non-finite
        value never does)."""
        if self.primary not in metrics:
            raise KeyError(f"the task's evaluate() returned {sorted(metrics)}, without its primary "
                           f"metric {self.primary!r}")
        value = metrics[self.primary]
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        best = self.best[self.primary]
        return value > best if self.higher_is_better else value < best

    def _read_window(self) -> tuple[list[float], list[float]]:
        """The losses and gradient norms since the last log, read from the device at once (the one
        synchronisation point) and checked: a non-finite one stops training."""
        losses = self._carried + (torch.stack(self._window).tolist() if self._window else [])
        norms = self._norms_carried + (torch.stack(self._norms).tolist() if self._norms else [])
        bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
        bad_norm = [i for i, v in enumerate(norms) if not math.isfinite(v)]
        if bad or bad_norm:
            self._diverged(self.step - len(losses) + 1, losses, norms, bad, bad_norm)
        return losses, norms

    def _log(self) -> None:
        """Record the mean training loss, the task's training metrics and the speed since the last
        log."""
        if not self._window and not self._carried:
            return
        losses, norms = self._read_window()
        now = time.perf_counter()
        seconds = max(1e-9, now - self._t_log - self._paused)
        if self.dist.enabled:  # each rank's share of the global losses, and all ranks' counts
            *losses, total = self.dist.all_sum([*losses, float(self._window_count)])
            losses = [v / self.dist.world for v in losses]
            self._window_count = total
        mean = sum(losses) / len(losses)
        extra = self.task.train_metrics(mean) if hasattr(self.task, "train_metrics") else {}
        count = int(self._window_count)  # one read of a count kept as a tensor (no sync per step)
        record = {"split": "train", "step": self.step, "epoch": round(self.epoch, 4), "loss": mean,
                  **extra, "lr": self.optimizer.param_groups[0]["lr"],
                  f"{self.count_unit}_per_s": count / seconds, "elapsed": round(self.elapsed, 3)}
        if norms:
            record["grad_norm"] = sum(norms) / len(norms)
        self.seen += count
        self._window, self._norms, self._carried, self._norms_carried = [], [], [], []
        self._window_count, self._t_log, self._paused = 0, now, 0.0
        self.history.append(record)
        for cb in self.callbacks:
            cb.on_log(self, record)

    @property
    def epoch(self) -> float:
        return self.step / max(1, self.task.steps_per_epoch)

    def _update_average(self) -> None:
        """Exponential moving average of the weights, its decay warmed up as ``(1+t)/(10+t)`` so
        that early averages do not drag the random initial weights along."""
        decay = min(self.cfg.ema, (1 + self.step) / (10 + self.step))
        if self._ema is None:   # called only with ema > 0
            return
        with torch.no_grad():
            torch._foreach_lerp_(self._ema, [p.detach() for p in self._params], 1 - decay)

    @contextlib.contextmanager
    def averaged_weights(self):
        """Within this context the model holds the averaged weights (with ``ema`` > 0)."""
        if self._ema is None:
            yield
            return
        with torch.no_grad():
            raw = [p.detach().clone() for p in self._params]
            torch._foreach_copy_([p.detach() for p in self._params], self._ema)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_([p.detach() for p in self._params], raw)

    def validate(self) -> dict:
        """Evaluate on the validation data (with the averaged weights when ``ema`` > 0), keep the
        best, checkpoint. Returns the record."""
        t = time.perf_counter()
        self._validated_at = self.step
        with self.averaged_weights():
            self.model.eval()
            with torch.no_grad(), self._autocast:
                metrics = self.task.evaluate()
            self.model.train()
            train = next((r for r in reversed(self.history) if r["split"] == "train"), None)
            record = {"split": "val", "step": self.step, "epoch": round(self.epoch, 4), **metrics}
            if train is not None:   # the training metrics beside the validation ones, never instead
                skip = {"split", "step", "epoch", "lr", "grad_norm", "elapsed"}
                record.update({f"train_{k}": v for k, v in train.items()
                               if k not in skip and not k.endswith("_per_s")})
            is_best = self._improves(metrics)
            record["best"] = is_best
            self.echo(_val_line(record))
            for cb in self.callbacks:  # inside: a callback sees the weights that were validated
                cb.on_validation(self, record)
            if is_best and self.run is not None:
                self._best_weights = weights_of(self.model)  # written by the next checkpoint
        value = metrics[self.primary]
        self.schedule.observe(-value if self.higher_is_better else value)
        self.schedule.set(self.step)
        self.history.append(record)
        self.last_val = {k: v for k, v in record.items() if not isinstance(v, str)}
        if is_best:
            self.best = self.last_val
            self._since_best = 0
        else:
            self._since_best += 1
            patience = self.cfg.patience
            if patience is not None and self._since_best >= patience and not self.stop_reason:
                self.stop_reason = (f"early stopping: validation {self.primary} has not improved "
                                    f"for {patience} validations (best {self.best[self.primary]:.4f} at "
                                    f"step {self.best['step']})" if self.best is not None else
                                    f"early stopping: no finite validation {self.primary} in "
                                    f"{patience} validations")
        self._gather_task_state()
        if self.run is not None:
            self.checkpoint()
            self._write_plot()
        self._paused += time.perf_counter() - t
        return record

    # -- checkpoints ----------------------------------------------------------------------------
    def _stop_now(self) -> bool:
        """Whether to stop after this step. Distributed, every rank decides alike from the flags of
        all ranks at this point (a signal that arrives later counts at the next step): a signal on
        one rank stops every rank after the same step."""
        if not self.dist.enabled:
            return bool(self.stop_reason)
        asked = self.dist.all_sum([1.0 if self.stop_reason else 0.0])[0] > 0
        if asked and not self.stop_reason:
            self.echo("another rank was asked to stop: stopping after this step")
            self.stop_reason = "SIGTERM"
        return asked

    def _gather_task_state(self) -> None:
        """Distributed: every rank's task state (e.g. a language model's carried state of its own
        streams) merged into one (`task.merge_shard_states`), so a checkpoint resumes with any number
        of ranks. Every rank calls it at the same steps (it is a collective)."""
        self._task_state = None
        if self.dist.enabled and hasattr(self.task, "merge_shard_states"):
            self._task_state = self.task.merge_shard_states(
                self.dist.all_gather_object(self.task.state_dict()))

    def checkpoint(self) -> None:
        """Write a checkpoint (the latest weights, the best ones when a validation improved since
        the last checkpoint, the trainer state and the history) and switch the run to it at once."""
        best, self._best_weights = self._best_weights, None
        try:
            self._run_folder().save_checkpoint(self.step, weights_of(self.model), best, self.state_dict(),
                                     self.history)
        except BaseException:
            self._best_weights = best  # not written: the next checkpoint writes them
            raise

    def _run_folder(self) -> RunFolder:
        """The run folder, for the methods that write it (their callers check `run` first)."""
        if self.run is None:
            raise RnnkitError("Trainer: this trainer writes no run folder (run=None)")
        return self.run

    def _write_plot(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last_plot >= PLOT_EVERY_S:
            run = self._run_folder()
            hist.plot_curves(self.history, run / CURVES, title=str(run.path.name),
                             metric=getattr(self.task, "plot_metric", self.primary),
                             metric_label=getattr(self.task, "plot_label", None))
            self._last_plot = time.perf_counter()

    # -- endings --------------------------------------------------------------------------------
    def _diverged(self, first, losses, norms, bad, bad_norm) -> None:
        i = min(bad + bad_norm)
        step = first + i
        what = (f"the loss became {losses[i]}" if i in bad
                else f"the gradient norm became {norms[i]} (loss {losses[i]:.4g})")
        cfg = self.cfg
        if cfg.precision == "bf16":
            cause = "bf16 arithmetic overflowed; retry with --precision fp32"
        elif cfg.clip == 0:
            cause = "exploding gradients with clipping off; retry with --clip 1"
        else:
            lr = cfg.learning_rate
            cause = (f"the learning rate ({lr:g} with {cfg.optimizer}) is too high for this model "
                     f"and data; retry with a lower --lr (say {lr / 4:g}) or with --warmup")
        kept = (f"the last good checkpoint is kept in {self.run.path} (step "
                f"{self.run.read_manifest()['step']})" if self.run is not None
                and self.run.has_checkpoint() else "no checkpoint was written")
        message = f"training stopped: {what} at step {step}. Likely cause: {cause}. {kept}."
        result = FitResult("diverged", step, self.best, self.last_val, message, "diverged")
        for cb in self.callbacks:
            cb.on_train_end(self, result)
        raise TrainingDiverged(message, step)

    def _message(self, status: str) -> str:
        where = f" in {self.run.path}" if self.run is not None else ""
        if status == "finished":
            return f"finished: {self.step} steps{where}"
        return f"{status} ({self.stop_reason}) at step {self.step}; last checkpoint written{where}"

    def request_stop(self, reason: str = "stopped by a callback") -> None:
        """Finish the current step, write the last checkpoint and return from `fit`."""
        self.stop_reason = reason


def _val_line(r: dict) -> str:
    skip = {"split", "step", "epoch", "best"}
    val = ", ".join(f"{k} {v:.4f}" for k, v in r.items()
                    if k not in skip and not k.startswith("train_") and isinstance(v, float))
    line = f"step {r['step']} (epoch {r['epoch']:.2f}) | validation: {val}"
    train = ", ".join(f"{k[6:]} {v:.4f}" for k, v in r.items()
                      if k.startswith("train_") and isinstance(v, float))
    if train:
        line += f" | training: {train}"
    return line + (" | best" if r["best"] else "")


# -- the plan: a budget turned into steps once -----------------------------------------------------
def extend_plan(trainer: Trainer, plan: list[dict], cfg: TrainConfig) -> list[dict]:
    """``plan`` with the budget of ``cfg`` applied at ``trainer.step``: unchanged when the last
    phase already has that budget; else a new phase from the current step (the current phase is cut
    there). Steps and epochs are totals (the run goes on to that many); minutes are more training
    time, measured into steps by `calibrate`."""
    budget = budget_dict(cfg)
    if plan and plan[-1]["budget"] == budget:
        return plan
    kind, value = cfg.budget
    step = trainer.step
    measured = None
    if kind == "steps":
        end = int(value)
    elif kind == "epochs":
        end = max(1, math.ceil(value * trainer.task.steps_per_epoch))
    else:
        measured = calibrate(trainer, value)
        end = step + measured["steps"]
    if end <= step:
        raise ConfigError(f"{kind}: the run is at step {step} already; a budget of {value:g} {kind} "
                          f"({end} steps in all) would not train it further (steps and epochs count "
                          f"from the start of the run)")
    n = end - step
    eval_every = cfg.eval_every or (measured["eval_every"] if measured else
                                    max(1, math.ceil(n / VALIDATIONS_PER_RUN)))
    plan = [dict(p) for p in plan]
    if plan:
        plan[-1]["end"] = min(plan[-1]["end"], step)
        if plan[-1]["start"] == plan[-1]["end"]:  # a phase that never ran leaves no trace
            plan.pop()
    phase = {"start": step, "end": end, "eval_every": eval_every, "budget": budget}
    if measured:
        phase["measured"] = {k: v for k, v in measured.items() if k not in ("steps", "eval_every")}
    return plan + [phase]


def calibrate(trainer: Trainer, minutes: float) -> dict:
    """How many steps (and validations) fit in ``minutes`` here: time a few training steps after two
    warm-up ones, and one validation, on a throwaway copy of the state (the model's weights, the
    task's data position and carried state, the RNG are restored after: the run itself does not
    change). Returns ``{"steps", "eval_every", "step_seconds", "validation_seconds",
    "calibration_seconds", "minutes"}``."""
    task, model, cfg = trainer.task, trainer.model, trainer.cfg
    t_begin = time.perf_counter()
    saved_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved_task = copy.deepcopy(task.state_dict())
    device = next(model.parameters()).device
    devices = [device.index or 0] if device.type == "cuda" else []
    budget_s = minutes * 60
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if cfg.precision == "bf16"
                else contextlib.nullcontext())
    with torch.random.fork_rng(devices=devices):
        opt = build_optimizer(model, cfg)
        params = [p for g in opt.param_groups for p in g["params"]]
        model.train()
        steps, t0, spent = 0, 0.0, 0.0
        while True:
            with autocast:
                loss_sum, count = task.loss(task.next_batch())
                loss = loss_sum / count
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip > 0:
                clip_grad_norm(params, cfg.clip)
            opt.step()
            float(loss.detach())   # wait for the device
            steps += 1
            if steps == 2:
                t0 = time.perf_counter()
            elif steps > 2:
                n, spent = steps - 2, time.perf_counter() - t0
                long_enough = spent >= min(CALIBRATION_SECONDS, CALIBRATION_SHARE * budget_s)
                if (n >= CALIBRATION_MIN_STEPS and long_enough) or n >= CALIBRATION_MAX_STEPS:
                    break
        step_s = spent / (steps - 2)
        model.eval()
        t = time.perf_counter()
        with torch.no_grad(), autocast:
            task.evaluate()
        eval_s = time.perf_counter() - t
        model.train()
    opt.zero_grad(set_to_none=True)
    del opt
    for p in model.parameters():
        p.grad = None
    with torch.no_grad():
        model.load_state_dict(saved_weights)
    task.load_state_dict(saved_task)
    spent_s = time.perf_counter() - t_begin
    left = max(0.0, budget_s - spent_s - eval_s)
    evals = max(3, min(VALIDATIONS_PER_RUN, int(VALIDATION_SHARE * left / max(eval_s, 1e-6))))
    n = max(1, int((left - evals * eval_s) / step_s))
    eval_every = cfg.eval_every or max(1, math.ceil(n / evals))
    trainer.echo(f"budget: {minutes:g} minutes -> {n:,} steps (measured {step_s * 1e3:.1f} ms a step, "
                 f"{eval_s:.2f} s a validation), validating every {eval_every}; recorded in the plan, "
                 f"so resuming and replaying do not measure again")
    return {"steps": n, "eval_every": eval_every, "minutes": minutes, "step_seconds": step_s,
            "validation_seconds": eval_s, "calibration_seconds": spent_s}
