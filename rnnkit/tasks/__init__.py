"""Workflows, one place each, on one contract (`rnnkit.tasks.base.Task`), found by name here.

Adding a task is one new module and one line in `TASKS` (``"name": "module:Class"``, imported only
when used, so a task's dependencies cost nothing to the others).
"""
from __future__ import annotations

import importlib

#: every task rnnkit trains, by the name `rnnkit train --task` and config.json's "task" use
TASKS = {
    "lm": "rnnkit.tasks.lm.task:LanguageModelTask",
    "tag": "rnnkit.tasks.tag:TagTask",
    "translate": "rnnkit.tasks.translate:TranslationTask",
    "classify": "rnnkit.tasks.classify.task:ClassifyTask",
    "forecast": "rnnkit.tasks.forecast:ForecastTask",
}


def task_names() -> tuple[str, ...]:
    return tuple(TASKS)


def get_task(name: str):
    """The `Task` class registered as ``name``; a ``ValueError`` listing the known ones otherwise."""
    if name not in TASKS:
        raise ValueError(f"task: unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def task_of_run(run):
    """The `Task` class of a run folder, from its config.json's ``"task"``."""
    from rnnkit.train import RunFolder
    folder = run if isinstance(run, RunFolder) else RunFolder(run)
    return get_task(folder.task_name())
