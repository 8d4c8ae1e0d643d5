"""Typed configuration: dataclasses checked on construction, read from dicts, turned into CLI flags.

Every knob of a run is a field of a dataclass (`TrainConfig` here; each task adds its own). A field's
``metadata`` carries its help text (``help``), its allowed values (``choices``) and optionally its
flag (``flag``) and extra aliases (``aliases``). From that one declaration:

- :func:`from_dict` builds a config from a dict (``config.json``, or Python keyword arguments),
  refusing unknown keys (``ValueError``) and wrong types (``TypeError``);
- :func:`add_arguments` derives ``argparse`` flags (``--weight-decay``, ``--tie-weights/--no-...``)
  whose default is *absent*, so :func:`given_options` returns only what the user typed: a resumed run
  can tell a deliberate change from a default;
- :func:`to_dict` writes it back (what ``config.json`` holds).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union


def option(default: Any, help: str, *, choices: tuple | Callable[[], tuple] | None = None,
           flag: str | None = None, aliases: tuple[str, ...] = (), metavar: str | None = None) -> Any:
    """A dataclass field with the metadata the helpers below read. ``choices`` may be a function
    returning them (read when used, so a registry filled later counts)."""
    meta = {"help": help, "choices": choices, "flag": flag, "aliases": aliases, "metavar": metavar}
    return field(default=default, metadata=meta)


def _base_type(annotation: Any) -> tuple[type, bool]:
    """``int | None`` -> ``(int, True)``; ``float`` -> ``(float, False)``."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"config fields support one type or one type | None, got {annotation}")
        return args[0], True
    return annotation, False


def _fields(cls) -> dict[str, tuple[dataclasses.Field, type, bool]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, *_base_type(hints[f.name])) for f in dataclasses.fields(cls)}


def check_value(owner: str, name: str, value: Any, base: type, optional: bool,
                choices: tuple | None = None) -> Any:
    """``value`` checked against the field's type (an int is accepted for a float) and choices."""
    if value is None:
        if optional:
            return None
        raise TypeError(f"{owner}: {name} must be {base.__name__}, got None")
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, base) and not (base is int and isinstance(value, bool))
    if not ok:
        raise TypeError(f"{owner}: {name} must be {base.__name__}"
                        f"{' or None' if optional else ''}, got {type(value).__name__} {value!r}")
    if base is int and not -2 ** 63 <= value < 2 ** 63:   # what torch and NumPy take as an int
        raise ValueError(f"{owner}: {name} must be an int below 2**63 in size, got {value!r}")
    if base is float and not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    if callable(choices):
        choices = choices()
    if choices is not None and value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {list(choices)}, got {value!r}")
    return value


def check_fields(config) -> None:
    """Check every field's type and choices; call from a config's ``__post_init__``."""
    owner = type(config).__name__
    for name, (f, base, optional) in _fields(type(config)).items():
        setattr(config, name, check_value(owner, name, getattr(config, name), base, optional,
                                          f.metadata.get("choices")))


def from_dict(cls, data: dict[str, Any], *, where: str | None = None):
    """``cls(**data)`` with unknown keys refused by name (``ValueError`` listing the known ones)."""
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise TypeError(f"{where}: expected a dict of options, got {type(data).__name__}")
    known = _fields(cls)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {unknown}; known options: {sorted(known)}")
    return cls(**data)


def to_dict(config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _parse(base: type, name: str):
    def parse(text: str):
        if text.lower() == "none":
            return None
        try:
            return base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {base.__name__} (or none), "
                                             f"got {text!r}") from None
    parse.__name__ = base.__name__  # argparse names the type in its error message
    return parse


def add_arguments(parser, cls, *, skip: tuple[str, ...] = ()) -> None:
    """Add one flag per field of ``cls`` to ``parser`` (or an argument group), default absent."""
    for name, (f, base, optional) in _fields(cls).items():
        if name in skip:
            continue
        meta = f.metadata
        help_text = meta.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else None
        if default is not None and base is not bool:  # None's meaning is in the help text
            help_text += f" (default: {default})"
        flags = [flag_of(f), *meta.get("aliases", ())]
        common = dict(dest=name, default=argparse.SUPPRESS, help=help_text)
        if base is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        else:
            parse = _parse(base, name) if optional else base
            choices = meta.get("choices")
            parser.add_argument(*flags, type=parse, choices=choices() if callable(choices) else choices,
                                metavar=meta.get("metavar"), **common)


def given_options(cls, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` the user gave on the command line (absent flags are not in ``args``)."""
    return {name: getattr(args, name) for name in _fields(cls) if hasattr(args, name)}


def describe(config) -> str:
    """One ``name = value`` line per field: what a run prints at its start."""
    return "\n".join(f"  {k} = {v!r}" for k, v in to_dict(config).items())


# -- the trainer's own configuration --------------------------------------------------------------
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "constant", "plateau")
PRECISIONS = ("fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
#: learning rate by optimizer when ``lr`` is not given: SGD's is the textbook's 1
DEFAULT_LR = {"adam": 3e-3, "adamw": 3e-3, "sgd": 1.0}
#: the budget when none of epochs/steps/minutes is given
DEFAULT_MINUTES = 3.0


#: the most CPU threads a run may ask for (torch.set_num_threads(100000) crashed the process: segfault)
MAX_THREADS = 1024


@dataclass
class TrainConfig:
    """How to train, whatever the task: optimizer, schedule, budget, validation, precision."""

    optimizer: str = option("adamw", "optimizer", choices=OPTIMIZERS)
    lr: float | None = option(None, "learning rate (none: the task's recipe chooses; else 3e-3 for "
                                    "adam/adamw, 1 for sgd)")
    momentum: float = option(0.0, "SGD momentum")
    weight_decay: float = option(0.1, "weight decay (decoupled for adamw; L2 for adam and sgd); "
                                      "applied to weight matrices, not to biases")
    clip: float = option(1.0, "clip the gradient norm to this (0: no clipping)")
    schedule: str = option("cosine", "learning-rate schedule", choices=SCHEDULES)
    warmup: int = option(0, "steps of linear learning-rate warm-up")
    final_lr: float = option(0.05, "cosine: the last learning rate, as a fraction of lr")
    plateau_factor: float = option(0.5, "plateau: multiply lr by this when validation stalls")
    plateau_patience: int = option(1, "plateau: validations without improvement before cutting lr")
    ema: float = option(0.998, "validate, keep and generate with an exponential moving average of "
                               "the weights with this decay (0: the raw weights)")
    epochs: float | None = option(None, "budget: passes over the training data")
    steps: int | None = option(None, "budget: optimizer steps")
    minutes: float | None = option(None, f"budget: wall-clock minutes of training (the default "
                                         f"budget: {DEFAULT_MINUTES:g} when no budget is given)")
    eval_every: int | None = option(None, "validate every this many steps (none: about 20 times "
                                          "per run)")
    patience: int | None = option(None, "early stopping: stop after this many validations without "
                                        "improvement of the task's primary metric (none: never)")
    log_every: int = option(20, "update the progress bar and history every this many steps")
    seed: int = option(0, "random seed: the same seed on the same machine gives the same run")
    precision: str | None = option(None, "arithmetic of the forward pass (bf16: torch.autocast; none: "
                                         "fp32, or the task's recipe measures both where bf16 is native)",
                                   choices=PRECISIONS)
    threads: int | None = option(None, "CPU threads (torch.set_num_threads; none: PyTorch's choice)")
    device: str = option("auto", "where to train (auto: cuda when available, else cpu)",
                         choices=DEVICES)

    def __post_init__(self):
        owner = "TrainConfig"
        # the seed's own range first: check_fields' generic int bound would name a wider one
        if isinstance(self.seed, int) and not isinstance(self.seed, bool) and not 0 <= self.seed < 2 ** 63:
            raise ValueError(f"{owner}: seed must be an int in [0, 2**63), got {self.seed!r}")
        check_fields(self)
        if not 0 <= self.ema < 1:
            raise ValueError(f"{owner}: ema must be in [0, 1) (0: off), got {self.ema!r}")
        for name in ("clip", "weight_decay", "momentum", "final_lr", "warmup"):
            if getattr(self, name) < 0:
                raise ValueError(f"{owner}: {name} must be >= 0, got {getattr(self, name)!r}")
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"{owner}: lr must be > 0, got {self.lr!r}")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"{owner}: plateau_factor must be in (0, 1), got {self.plateau_factor}")
        budgets = {k: getattr(self, k) for k in ("epochs", "steps", "minutes")
                   if getattr(self, k) is not None}
        if len(budgets) > 1:
            raise ValueError(f"{owner}: give one budget (epochs, steps or minutes), got {budgets}")
        for k, v in budgets.items():
            if v <= 0:
                raise ValueError(f"{owner}: {k} must be > 0, got {v!r}")
        if not budgets:
            self.minutes = DEFAULT_MINUTES
        if not 0 <= self.seed < 2 ** 63:   # what torch's generators take
            raise ValueError(f"{owner}: seed must be an int in [0, 2**63), got {self.seed!r}")
        for name in ("eval_every", "log_every", "threads", "plateau_patience", "patience"):
            v = getattr(self, name)
            if v is not None and v < (0 if name == "plateau_patience" else 1):
                raise ValueError(f"{owner}: {name} must be >= 1, got {v!r}")
        if self.threads is not None and self.threads > MAX_THREADS:
            raise ValueError(f"{owner}: threads must be at most {MAX_THREADS}, got {self.threads!r}")

    @property
    def learning_rate(self) -> float:
        """``lr``, or the optimizer's default when it is None."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def budget(self) -> tuple[str, float]:
        """``("steps", 500)``, ``("epochs", 2.0)`` or ``("minutes", 3.0)``."""
        for k in ("steps", "epochs", "minutes"):
            if getattr(self, k) is not None:
                return k, getattr(self, k)
        raise AssertionError("unreachable: __post_init__ always sets a budget")
