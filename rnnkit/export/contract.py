"""What a task gives the exporter: a run folder -> graphs (modules + example inputs + dynamic axes) +
files to write beside them. One function per task, registered by the task's name in config.json.

A task makes its run exportable with one function ``plan(run: RunFolder) -> ExportPlan`` and one line
``register("task-name", plan)`` (or an entry in `EXPORTERS`, imported on first use). Everything else
— the formats, the output folder, checking the exported numbers, the manifest — is the exporter's.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from rnnkit.errors import RnnkitError
from rnnkit.train import RunFolder, RunFolderError
from rnnkit.train.checkpoint import CONFIG


class ExportError(RnnkitError, ValueError):
    """A model that cannot be exported, or whose written file does not give rnnkit's numbers (the
    message says which and why); the command line prints it as one message (exit status 1)."""


@dataclass
class Graph:
    """One exported model file (``<name>.onnx`` / ``<name>.pt2``).

    - ``module``: the computation in exportable PyTorch operators, in eval mode; ``forward`` takes
      the inputs positionally, in ``input_names`` order, and returns a tuple in ``output_names`` order.
    - ``sample(batch, time)``: inputs of that size (``time`` is ignored by graphs without a time
      axis); the export traces ``sample(2, 3)`` and checks the file on another size.
    - ``dynamic``: for each input and output name, ``{axis: axis name}`` of its dynamic axes
      ("batch", "time"); axes with the same name are the same size.
    - ``reference``: the same outputs computed by rnnkit itself (its engine and fused kernels), the
      oracle the exported file is checked against.
    """

    name: str
    module: nn.Module
    sample: Callable[[int, int], tuple[Tensor, ...]]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic: dict[str, dict[int, str]]
    reference: Callable[..., tuple[Tensor, ...]]
    doc: str = ""


@dataclass
class ExportPlan:
    """Everything one run exports: its graphs, the files written beside them (name -> bytes, e.g.
    the vocabulary), and ``info``: what a consumer needs to know, recorded in export.json."""

    task: str
    graphs: list[Graph]
    files: dict[str, bytes] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


#: task name (config.json's "task") -> its plan function, or "module:function" imported on first use
EXPORTERS: dict[str, Callable[[RunFolder], ExportPlan] | str] = {
    "lm": "rnnkit.export.language_model:plan",
    "forecast": "rnnkit.export.forecast:plan",
    "classify": "rnnkit.export.classify:plan",
    "tag": "rnnkit.export.tag:plan",
    "translate": "rnnkit.export.translate:plan",
}


def register(task: str, plan: Callable[[RunFolder], ExportPlan]) -> None:
    """Make runs of ``task`` exportable with ``plan`` (replaces an earlier registration)."""
    if not isinstance(task, str) or not task:
        raise ValueError(f"register: task must be a non-empty str, got {task!r}")
    if not callable(plan):
        raise TypeError(f"register: plan must be callable (RunFolder -> ExportPlan), got {plan!r}")
    EXPORTERS[task] = plan


def run_task(run: RunFolder) -> str:
    """config.json's "task" of ``run``, with a clear error when the folder is not a run."""
    d = run.read_json(CONFIG)
    if not isinstance(d, dict) or not isinstance(d.get("task"), str):
        raise RunFolderError(f"{run / CONFIG} has no \"task\" field; it is not the configuration of "
                             f"an rnnkit run")
    return d["task"]


def plan_for(run: RunFolder) -> ExportPlan:
    """The export plan of ``run``, by its task."""
    task = run_task(run)
    plan = EXPORTERS.get(task)
    if plan is None:
        raise ExportError(f"{run / CONFIG}: runs of task {task!r} cannot be exported yet; exportable "
                          f"tasks: {sorted(EXPORTERS)}")
    if isinstance(plan, str):
        module, name = plan.split(":")
        plan = EXPORTERS[task] = getattr(importlib.import_module(module), name)
    result = plan(run)
    if not isinstance(result, ExportPlan) or not result.graphs:
        raise TypeError(f"the exporter of task {task!r} returned {result!r}, expected an ExportPlan "
                        f"with at least one graph")
    return result


def run_files(run: RunFolder, names) -> dict[str, bytes]:
    """The bytes of the run's files ``names`` that an export copies beside its graphs; a missing or
    unreadable one is a `RunFolderError` naming it."""
    files = {}
    for name in names:
        try:
            files[name] = run.require(name).read_bytes()
        except OSError as exc:
            raise RunFolderError(f"{run / name} cannot be read: {exc}") from None
    return files
