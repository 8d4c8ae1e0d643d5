"""The run folder: everything a run writes, written atomically, read back with clear errors.

This module is the one owner of the folder's layout and of config.json's envelope::

    RUN/config.json         {"format": "rnnkit.run", "version": 1, "task": NAME, <the task's sections>}
    RUN/vocab.json          the vocabulary, for tasks that have one (written by the task)
    RUN/model.safetensors   the best weights by validation loss (the latest ones before any validation)
    RUN/last.safetensors    the latest weights, for resuming
    RUN/trainer_state.pt    optimizer, schedule, RNG, data position, step (tensors and plain values)
    RUN/history.jsonl       one JSON object per line: training logs and validations
    RUN/curves.png          loss and perplexity against steps
    RUN/samples.txt         language models: the samples printed at each validation

Every file goes through `rnnkit.data.atomic` (a temporary file unique to the writer, fsync, rename),
so a crash leaves the old file or the new one. ``last.safetensors`` and ``trainer_state.pt`` both record the step; resuming
refuses a pair from different steps. Loading never unpickles: ``safetensors`` for weights,
``torch.load(weights_only=True)`` for the trainer state, JSON for the rest. Weights load onto the CPU
first, so a run trained on a GPU loads anywhere.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_model
from torch import nn

from rnnkit.data.atomic import FILE_MODE, atomic_path, atomic_write

CONFIG, VOCAB, BEST, LAST = "config.json", "vocab.json", "model.safetensors", "last.safetensors"
TRAINER_STATE, HISTORY, CURVES, SAMPLES = "trainer_state.pt", "history.jsonl", "curves.png", "samples.txt"


#: config.json's envelope: what every run folder says about itself
FORMAT, VERSION = "rnnkit.run", 1


class RunFolderError(ValueError):
    """A run folder is missing a file, or one of its files is corrupt or from another run."""


class RunFolder:
    """Paths and readers/writers of one run folder (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def exists(self) -> bool:
        return (self / CONFIG).is_file()

    def require(self, name: str) -> Path:
        """The path of file ``name``, or `RunFolderError` saying what is missing."""
        if not self.path.is_dir():
            raise RunFolderError(f"run folder {str(self.path)!r} does not exist")
        p = self / name
        if not p.is_file():
            raise RunFolderError(f"run folder {str(self.path)!r} has no {name}; it is not a complete "
                                 f"rnnkit run (was training interrupted before its first checkpoint?)")
        return p

    # -- JSON -----------------------------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> None:
        atomic_write(self / name, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")

    def read_json(self, name: str) -> Any:
        p = self.require(name)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunFolderError(f"{p} is corrupt (not valid JSON: {exc})") from None

    # -- config.json ----------------------------------------------------------------------------
    def write_config(self, task: str, sections: dict[str, Any]) -> None:
        """config.json: the envelope (format, version, task) and the task's ``sections``."""
        reserved = {"format", "version", "task"} & set(sections)
        if reserved:
            raise ValueError(f"config sections may not be named {sorted(reserved)}")
        self.write_json(CONFIG, {"format": FORMAT, "version": VERSION, "task": task, **sections})

    def read_config(self, task: str | None = None) -> dict[str, Any]:
        """config.json, its envelope checked (and its ``task`` when given); `RunFolderError` else."""
        d = self.read_json(CONFIG)
        p = self / CONFIG
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise RunFolderError(f"{p} is not the configuration of an rnnkit run (expected "
                                 f"\"format\": {FORMAT!r})")
        version = d.get("version")
        if type(version) is not int or version != VERSION:
            raise RunFolderError(f"{p} has format version {version!r}; this rnnkit reads version "
                                 f"{VERSION} (an integer)")
        if not isinstance(d.get("task"), str):
            raise RunFolderError(f"{p} names no task (expected \"task\": a string such as \"lm\")")
        if task is not None and d["task"] != task:
            raise RunFolderError(f"{p} is a {d['task']!r} run, expected a {task!r} run")
        return d

    def task_name(self) -> str:
        """The ``"task"`` of config.json (checked as `read_config` does)."""
        return self.read_config()["task"]

    # -- weights --------------------------------------------------------------------------------
    def save_weights(self, name: str, model: nn.Module, step: int) -> None:
        """``model``'s weights as safetensors (tied tensors stored once), stamped with ``step``."""
        with atomic_path(self / name, mode=FILE_MODE) as tmp:
            save_model(model, tmp, metadata={"step": str(step)})

    def load_weights(self, name: str, model: nn.Module) -> int:
        """Load ``name`` into ``model`` (on the model's device); returns the step it was saved at."""
        p = self.require(name)
        try:
            tensors = load_file(p, device="cpu")
            with open(p, "rb") as f:  # the header holds the metadata
                header_len = int.from_bytes(f.read(8), "little")
                meta = json.loads(f.read(header_len)).get("__metadata__", {})
        except (SafetensorError, OSError, ValueError) as exc:
            raise RunFolderError(f"{p} is corrupt or not a safetensors file ({exc})") from None
        own = model.state_dict()
        names = {n for n in own if n in tensors}
        # tied weights are stored under one name; every name sharing that tensor is satisfied by it
        shared = {n for n in own if n not in tensors and any(
            own[n].data_ptr() == own[m].data_ptr() for m in names)}
        missing = sorted(set(own) - names - shared)
        unexpected = sorted(set(tensors) - set(own))
        if missing or unexpected:
            raise RunFolderError(f"{p} does not match the model of {CONFIG}: missing {missing}, "
                                 f"unexpected {unexpected}")
        for n in names:
            if tensors[n].shape != own[n].shape:
                raise RunFolderError(f"{p}: tensor {n} has shape {tuple(tensors[n].shape)}, the model "
                                     f"of {CONFIG} expects {tuple(own[n].shape)}")
        with torch.no_grad():
            for n in names:
                own[n].copy_(tensors[n])
        return int(meta.get("step", -1))

    # -- trainer state --------------------------------------------------------------------------
    def save_trainer_state(self, state: dict) -> None:
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write(self / TRAINER_STATE, buf.getvalue())

    def load_trainer_state(self) -> dict:
        p = self.require(TRAINER_STATE)
        if not zipfile.is_zipfile(p):  # torch.save always writes a zip archive
            raise RunFolderError(f"{p} is corrupt (not the zip archive torch.save writes)")
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
                struct.error) as exc:
            raise RunFolderError(f"{p} is corrupt ({type(exc).__name__}: {exc})") from None
        if not isinstance(state, dict) or "step" not in state:
            raise RunFolderError(f"{p} is not an rnnkit trainer state")
        return state

    # -- history --------------------------------------------------------------------------------
    def write_history(self, records: list[dict]) -> None:
        atomic_write(self / HISTORY, "".join(json.dumps(r) + "\n" for r in records))

    def read_history(self) -> list[dict]:
        p = self / HISTORY
        if not p.is_file():
            return []
        out = []
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                raise RunFolderError(f"{p} line {i} is corrupt (not a JSON object)") from None
        return out
