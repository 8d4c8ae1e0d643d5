"""The task contract: what one workflow (language model, classifier, tagger, ...) gives the trainer and
the command line, and the one training flow every task runs through.

A task is a subclass of `Task` registered by name in `rnnkit.tasks.TASKS`. It declares::

    name               "lm": what `rnnkit train --task` and config.json's "task" say
    Config             a dataclass of its options; `rnnkit train --task NAME` derives its flags from it
    section            config.json's key for those options (default: ``name``)
    primary_metric     the validation metric that picks the best weights and drives early stopping
    higher_is_better   its direction
    count_unit         what the counts of ``loss`` count ("tokens", "sentences"): the speed shown

and implements, in the order `train` calls them::

    load_data(run, progress)   read and encode the data (on resume, with the run's saved vocabularies)
    choose(echo)               optional: fill options left to a recipe (may replace the configs)
    check()                    optional: refuse data and options that cannot train together
    build_model()              -> nn.Module (on the CPU; `train` moves it)
    save_artifacts(run)        optional: vocabularies and the like, written once into the run folder
    start()                    optional: batches, carried state (the model is on its device now)

then the trainer's protocol (`rnnkit.train.trainer`): ``steps_per_epoch``, ``next_batch()``,
``loss(batch) -> (loss_sum, count)``, ``evaluate() -> metrics``, ``train_metrics(loss)``,
``state_dict()`` / ``load_state_dict()``, and ``callbacks()``. After training, class methods work on
a run folder: ``evaluate_run(run, data, ...)`` (metrics on new data) and ``predict(run, inputs)``,
each with a ``format_*`` that turns its result into what the command line prints.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from rnnkit.errors import CheckpointError, ConfigError, data_errors
from rnnkit.train import ProgressBar, RunFolder, RunFolderError, TrainConfig, Trainer, resolve_device
from rnnkit.train.checkpoint import CONFIG, LOCK, OWN_FILES, VOCAB
from rnnkit.train.distributed import Dist
from rnnkit.train.runtime import RunLock
from rnnkit.train.threads import ThreadWatch
from rnnkit.train.trainer import check_plan
from rnnkit.train.config import describe, from_dict, to_dict

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: options of the trainer a resumed run may change; every other change would make it another run
RESUMABLE_OPTIONS = ("epochs", "steps", "minutes", "threads", "device", "log_every", "patience")


class Task:
    """One workflow. Subclasses set the class attributes and implement the methods below."""

    name: ClassVar[str]
    Config: ClassVar[type[DataclassInstance]]
    section: ClassVar[str | None] = None
    primary_metric: ClassVar[str] = "loss"
    higher_is_better: ClassVar[bool] = False
    count_unit: ClassVar[str] = "examples"
    #: the budget when the user gives none (None: the trainer's, `DEFAULT_MINUTES`)
    default_budget: ClassVar[dict | None] = None
    #: the second panel of curves.png and the progress bar's metric (None: the primary metric)
    plot_metric: str | None = None   # (an instance sets it to the primary metric when None)
    plot_label: ClassVar[str | None] = None
    #: the model: `build_model`'s (set by the training flow), or a loaded run's
    model: nn.Module

    def __init__(self, config, train_config: TrainConfig, device: torch.device | str = "cpu"):
        self.config, self.train_config = config, train_config
        self.device = torch.device(device)
        self.data: Any = None
        if self.plot_metric is None:
            self.plot_metric = self.primary_metric

    @classmethod
    def variant(cls, config) -> type[Task]:
        """The class that trains ``config``: a task may have variants its options choose (the
        language model's conditional one); by default the task itself."""
        return cls

    @classmethod
    def config_section(cls) -> str:
        return cls.section or cls.name

    # -- building ---------------------------------------------------------------------------------
    def load_data(self, run: RunFolder | None, progress: bool | None) -> None:
        raise NotImplementedError

    def choose(self, echo: Callable[[str], None]) -> None:
        """Fill the options left to a recipe; the default chooses nothing."""

    def check(self) -> None:
        """Refuse data and options that cannot train together (after `choose`), with a clear error."""

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def describe_data(self) -> str:
        """One line about the data and the model, printed before training."""
        n = sum(p.numel() for p in self.model.parameters())
        return f"model: {n:,} parameters on {self.device}"

    def save_artifacts(self, run: RunFolder) -> None:
        """Write what the run folder needs besides config.json and weights (e.g. vocabularies)."""

    def config_sections(self) -> dict[str, Any]:
        """config.json's sections: the task's options, the trainer's, and the model's arguments."""
        config = getattr(self.model, "config", None)   # the model's constructor arguments
        model_config = config() if config is not None else {}
        return {self.config_section(): to_dict(self.config), "train": to_dict(self.train_config),
                "model": model_config}

    def start(self) -> None:
        """Prepare batches and state once the model is on its device."""

    # -- the trainer's protocol -------------------------------------------------------------------
    steps_per_epoch: int

    def next_batch(self):
        raise NotImplementedError

    def loss(self, batch) -> tuple[torch.Tensor, int | torch.Tensor]:
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        raise NotImplementedError

    def train_metrics(self, loss: float) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, d: dict) -> None:
        pass

    def callbacks(self) -> list:
        return []

    @classmethod
    def new_run_config(cls, config):
        """``config`` with what a new run settles once and records in config.json (a resumed or
        replayed run reads it back as it was): nothing here; the language model's default split."""
        return config

    def summary(self, best: dict) -> str:
        """What the closing message says of the best validation record."""
        return (f"best validation: {self.primary_metric} {best[self.primary_metric]:.4f} "
                f"at step {best['step']}")

    # -- after training ---------------------------------------------------------------------------
    @classmethod
    def evaluate_run(cls, run, data: str | None = None, **options) -> dict:
        raise NotImplementedError(f"task {cls.name!r} has no evaluation on new data yet")

    @classmethod
    def format_evaluation(cls, result: dict) -> str:
        return "\n".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}"
                         for k, v in result.items()) + "\n"

    @classmethod
    def predict(cls, run, inputs: list[str], **options) -> list:
        raise NotImplementedError(f"task {cls.name!r} has no prediction yet")

    @classmethod
    def format_prediction(cls, inputs: list[str], predictions: list) -> str:
        return "".join(f"{p}\n" for p in predictions)

    @classmethod
    def read_configs(cls, run: RunFolder, *, verify: bool = True) -> tuple[Any, TrainConfig, dict]:
        """The run's task options, trainer options and model arguments from config.json (the files
        it binds checked unless ``verify=False``)."""
        d = run.read_config(cls.name, verify=verify)
        section = cls.config_section()
        try:
            return (from_dict(cls.Config, d[section], where=f"{run / CONFIG} [{section}]"),
                    from_dict(TrainConfig, d["train"], where=f"{run / CONFIG} [train]"),
                    dict(d.get("model") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise RunFolderError(f"{run / CONFIG} is corrupt: {type(exc).__name__}: {exc}") from None


# -- the training flow every task runs ------------------------------------------------------------
def split_options(task_cls: type[Task], options: dict) -> tuple[dict, dict]:
    """``options`` split into the task's and the trainer's; unknown names are a ``TypeError``."""
    own, tr = set(task_cls.Config.__dataclass_fields__), set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(options) - own - tr)
    if unknown:
        raise TypeError(f"train --task {task_cls.name}: unknown option(s) {unknown}; known options: "
                        f"{sorted(own | tr)}")
    return ({k: v for k, v in options.items() if k in own},
            {k: v for k, v in options.items() if k in tr})


def default_run_name(task_cls: type[Task], config) -> Path:
    """``runs/<data>-<what>-<date-time>`` (a suffix when that folder exists already)."""
    data = getattr(config, "data", "data")
    stem = "stdin" if data == "-" else Path(str(data)).stem or "data"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)
    what = getattr(config, "cell", task_cls.name)
    base = Path("runs") / f"{stem}-{what}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def resume_configs(task_cls: type[Task], run: RunFolder, options: dict) -> tuple[Any, TrainConfig]:
    """The configurations of the run being resumed, with the changes resuming allows."""
    cfg, tr_cfg, _ = task_cls.read_configs(run)
    split_options(task_cls, options)  # unknown names are refused first
    own = task_cls.Config.__dataclass_fields__
    changed = {k: v for k, v in options.items() if getattr(cfg if k in own else tr_cfg, k, v) != v}
    refused = sorted(set(changed) - set(RESUMABLE_OPTIONS))
    if refused:
        raise ConfigError(f"resume: {refused} cannot change when resuming {run.path} (it would be "
                         f"another run); only {list(RESUMABLE_OPTIONS)} can")
    tr = to_dict(tr_cfg)
    if any(k in options for k in ("epochs", "steps", "minutes")):
        tr.update(epochs=None, steps=None, minutes=None)
    tr.update({k: v for k, v in options.items() if k in tr})
    return cfg, TrainConfig(**tr)


def read_replay(task_cls: type[Task] | None, path) -> tuple[type[Task], Any, TrainConfig, list[dict]]:
    """The task, configurations and plan of a config.json to replay (`train` with ``config=``)."""
    from rnnkit.tasks import get_task
    path = Path(path)
    folder = RunFolder(path.parent)
    if path.name != CONFIG:
        raise ConfigError(f"--config: expected a run's {CONFIG}, got {str(path)!r}")
    d = folder.read_config(verify=False)
    cls = task_cls or get_task(d["task"])
    if cls.name != d["task"]:
        raise ConfigError(f"--config {path} is a {d['task']!r} run; --task {cls.name} was given")
    cfg, tr_cfg, _ = cls.read_configs(folder, verify=False)
    plan = (d.get("plan") or {}).get("phases")
    if plan is None:
        raise ConfigError(f"--config {path} has no \"plan\" (written by an older rnnkit?): "
                          f"nothing to replay")
    return cls, cfg, tr_cfg, check_plan(plan, f"{path} [plan]")


def prepare_out(run: RunFolder, force: bool) -> None:
    """Refuse to write over an existing run unless ``force``; with it, remove the old run."""
    if not run.path.exists():
        return
    if not run.path.is_dir():
        raise ConfigError(f"out: {str(run.path)!r} is a file, not a folder")
    entries = [p.name for p in run.path.iterdir() if p.name != LOCK]
    if not entries:
        return
    if run.exists() and not run.has_checkpoint() and not force:
        raise ConfigError(f"out: {str(run.path)!r} holds a run stopped before its first checkpoint; "
                          f"start it again with --resume {run.path} (its saved configuration, from "
                          f"step 0), or replace it with --force")
    if not force:
        what = "a run" if run.exists() else "files (not a complete run)"
        hint = f"continue it with --resume {run.path}, " if run.exists() else ""
        raise ConfigError(f"out: {str(run.path)!r} already holds {what}; {hint}choose another --out, "
                          f"or --force to replace it")
    known = OWN_FILES | {VOCAB}
    if not run.exists() and not all(n in known or n.startswith(".") for n in entries):
        raise ConfigError(f"out: {str(run.path)!r} holds files that are not an rnnkit run "
                          f"({sorted(entries)[:5]}); --force only replaces run folders")
    for p in run.path.iterdir():
        if p.name == LOCK:
            continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def train(task_cls: type[Task], *, out=None, resume=None, config=None, force: bool = False,
          progress: bool = True, callbacks=(), echo: Callable[[str], None] | None = print, **options):
    """Train ``task_cls`` with ``options`` (its `Config`'s fields and `TrainConfig`'s); returns the
    `rnnkit.train.FitResult` (``.run`` is the run folder).

    ``resume=RUN`` continues that run exactly (only `RESUMABLE_OPTIONS` may change; a new budget
    adds a phase, see `rnnkit.train.trainer`); a run stopped before its first checkpoint starts again
    from step 0 with its saved configuration. ``config=RUN/config.json`` replays that run (its
    options, recorded measurements and plan) into ``out``. ``out`` must not hold a run unless
    ``force``. ``echo=None`` prints nothing.

    Under ``torchrun`` (or with a process group the caller initialised) every rank calls this with
    the same options: rank 0 chooses, measures, prints and writes the run folder, the others follow
    (`rnnkit.train.distributed`)."""
    dist = Dist.from_environment("cuda" if torch.cuda.is_available() else "cpu")
    if dist.enabled and torch.cuda.is_available():
        torch.cuda.set_device(dist.local_rank)
    if not dist.is_main:
        echo, progress = None, False
    echo = echo or (lambda text: None)
    plan = None
    if resume is not None:
        if config is not None:
            raise ConfigError("give --resume RUN or --config FILE, not both")
        run = RunFolder(resume)
        run.require(CONFIG)
    else:
        if config is not None:
            task_cls, cfg, tr_cfg, plan = read_replay(task_cls, config)
            extra = sorted(set(options) - {"threads", "device", "log_every"})
            if extra:
                raise ConfigError(f"--config replays a run as recorded; {extra} cannot be given with it "
                                  f"(only threads, device and log_every)")
            tr_cfg = TrainConfig(**{**to_dict(tr_cfg), **options})
        else:
            own, tr = split_options(task_cls, options)
            if task_cls.default_budget and not {"epochs", "steps", "minutes"} & set(tr):
                tr.update(task_cls.default_budget)
            cfg, tr_cfg = task_cls.new_run_config(task_cls.Config(**own)), TrainConfig(**tr)
        run = RunFolder(out if out is not None else default_run_name(task_cls, cfg))
    if not dist.is_main:   # rank 0 owns the folder; the others only read it (to resume)
        if resume is not None:
            cfg, tr_cfg = resume_configs(task_cls, run, options)
            plan = (run.read_config(task_cls.name).get("plan") or {}).get("phases")
        return _train(task_cls, run, cfg, tr_cfg, plan, resume is not None, config,
                      progress, callbacks, echo, dist)
    created = not run.path.exists()
    lock = RunLock(run.path)
    lock.acquire()
    try:
        if lock.stale:
            echo(f"note: {run.path} was locked by {lock.stale}, which is gone (killed?); taking it over")
        if resume is not None:
            cfg, tr_cfg = resume_configs(task_cls, run, options)
            plan = (run.read_config(task_cls.name).get("plan") or {}).get("phases")
        else:
            prepare_out(run, force)
        return _train(task_cls, run, cfg, tr_cfg, plan, resume is not None, config,
                      progress, callbacks, echo, dist)
    finally:
        lock.release()
        if created and [p.name for p in run.path.iterdir()] == [LOCK]:  # nothing written: no trace
            (run / LOCK).unlink()
            run.path.rmdir()


def watch_threads(task, tr_cfg: TrainConfig, most: int, dist: Dist) -> bool:
    """Whether a run re-checks its thread count while it trains (`rnnkit.train.threads`): a budget in
    minutes on the CPU, in one process, with a count the user left to rnnkit (unset, or chosen by a
    recipe's measurement) and more than one thread to choose from."""
    chosen = "threads" in (getattr(task, "measured", None) or {})
    return (tr_cfg.budget[0] == "minutes" and task.device.type == "cpu" and not dist.enabled
            and most > 1 and (tr_cfg.threads is None or chosen))


def _train(task_cls, run: RunFolder, cfg, tr_cfg: TrainConfig, plan, resuming: bool, replay,
           progress: bool, callbacks, echo, dist: Dist):
    task_cls = task_cls.variant(cfg)
    restart = resuming and not run.has_checkpoint()
    echo(f"run folder: {run.path}" + (" (resuming)" if resuming and not restart else "") +
         (" (stopped before its first checkpoint: starting again from step 0 with its saved "
          "configuration)" if restart else ""))
    most = torch.get_num_threads()   # before a run's own count is set: what ThreadWatch may use
    if tr_cfg.threads:
        torch.set_num_threads(tr_cfg.threads)
    task = task_cls(cfg, tr_cfg, resolve_device(tr_cfg.device))
    with data_errors("data"):   # a loader's refusal is a DataError; OSError (a missing file) keeps its type
        task.load_data(run if resuming else None, None if progress else False)
    try:
        if not resuming and not replay:
            task.choose(echo)    # may build and time a model (the language model's recipe)
        if task.train_config.precision is None:    # no recipe chose it
            task.train_config = dataclasses.replace(task.train_config, precision="fp32")
        if dist.enabled:   # rank 0's choices (measured speed) for every rank: one model
            task.config, task.train_config = dist.broadcast((task.config, task.train_config))
            task.measured = dist.broadcast(getattr(task, "measured", None))
            dist.check_divides(getattr(task.config, "batch_size", None) or dist.world)
        task.check()
        echo("configuration:\n" + describe(task.config) + "\n" + describe(task.train_config))
        tr_cfg = task.train_config
        torch.manual_seed(tr_cfg.seed)
        task.model = task.build_model().to(task.device)
    except (RuntimeError, MemoryError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not (isinstance(exc, MemoryError) or "alloc" in first.lower() or "out of memory" in first):
            raise
        raise ConfigError(f"the model of these options cannot be built here ({first}); choose a smaller "
                          f"--hidden / --layers / --embedding") from None
    echo(task.describe_data())
    sections = task.config_sections()
    if resuming:
        saved = run.read_config(task_cls.name)
        if saved.get("model") != json.loads(json.dumps(sections.get("model"))):
            raise CheckpointError(f"{run / CONFIG}: its \"model\" section {saved.get('model')!r:.300} "
                                  f"differs from the model its options build; the file was damaged or "
                                  f"edited")
    elif dist.is_main:
        task.save_artifacts(run)
    task.start()
    cbs = list(task.callbacks())
    if watch_threads(task, tr_cfg, most, dist):
        cbs.append(ThreadWatch(most))
    if progress:
        cbs.append(ProgressBar())
    trainer = Trainer(task, tr_cfg, run, callbacks=[*cbs, *callbacks], resume=resuming and not restart,
                      echo=echo, plan=plan, dist=dist)
    new_plan = trainer.prepare()
    if dist.is_main and (new_plan != plan or not resuming):
        measured = getattr(task, "measured", None)
        if resuming:
            measured = (saved.get("plan") or {}).get("recipe")
        elif replay:   # the replayed run's record
            measured = (RunFolder(Path(replay).parent).read_config(verify=False).get("plan") or {}
                        ).get("recipe")
        run.write_config(task_cls.name, {**sections, "plan": {"phases": new_plan, "recipe": measured}})
    result = trainer.fit()
    result.run = run.path
    if result.status in ("interrupted", "stopped"):
        result.message += f"; resume with: rnnkit train --resume {run.path}"
    if result.best is not None:
        result.message += "; " + task.summary(result.best)
    echo(result.message)
    return result
