"""The run folder: everything a run writes, written atomically, read back with clear errors.

::

    RUN/config.json         the resolved configuration ({"task": ..., "<section>": {...}})
    RUN/vocab.json          the vocabulary (written by the task)
    RUN/model.safetensors   the best weights by validation loss (the latest ones before any validation)
    RUN/last.safetensors    the latest weights, for resuming
    RUN/trainer_state.pt    optimizer, schedule, RNG, data position, step (tensors and plain values)
    RUN/history.jsonl       one JSON object per line: training logs and validations
    RUN/curves.png          loss and perplexity against steps
    RUN/samples.txt         the samples printed at each validation

Every file is written to a temporary file in the folder and renamed into place, so a crash leaves the
old file or the new one. ``last.safetensors`` and ``trainer_state.pt`` both record the step; resuming
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
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_model
from torch import nn

from rnnkit.data.textio import atomic_write_bytes

CONFIG, VOCAB, BEST, LAST = "config.json", "vocab.json", "model.safetensors", "last.safetensors"
TRAINER_STATE, HISTORY, CURVES, SAMPLES = "trainer_state.pt", "history.jsonl", "curves.png", "samples.txt"


_UMASK = os.umask(0)
os.umask(_UMASK)
#: permissions of the files a run writes: what open() would give (mkstemp alone gives 0600)
FILE_MODE = 0o666 & ~_UMASK


class RunFolderError(ValueError):
    """A run folder is missing a file, or one of its files is corrupt or from another run."""


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically, readable by others
    (`rnnkit.data.textio.atomic_write_bytes`: a temporary file in the same folder, then ``os.replace``)."""
    atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data, mode=FILE_MODE)


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

    # -- weights --------------------------------------------------------------------------------
    def save_weights(self, name: str, model: nn.Module, step: int) -> None:
        """``model``'s weights as safetensors (tied tensors stored once), stamped with ``step``."""
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        try:
            save_model(model, tmp, metadata={"step": str(step)})
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, self / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

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
