"""The run folder: everything a run writes, written atomically, bound together, read back with clear errors.

This module is the one owner of the folder's layout and of config.json's envelope::

    RUN/config.json         {"format": "rnnkit.run", "version": 2, "task": NAME, "run_id": HEX,
                             "files": {"vocab.json": SHA-256, ...}, <the task's sections>, "plan": ...}
    RUN/vocab.json          the task's artifacts (vocabularies, label lists), bound by "files"
    RUN/checkpoint.json     the manifest of the current checkpoint, written last (below)
    RUN/checkpoints/step-000000120-XXXX/
        model.safetensors   the best weights by validation (the latest ones before any validation)
        last.safetensors    the latest weights, for resuming
        trainer_state.pt    optimizer, schedule, RNG, data position, step (tensors and plain values)
        history.jsonl       the history up to this checkpoint
    RUN/model.safetensors   hard links to the current checkpoint's best weights and history, for
    RUN/history.jsonl       tools that read the folder directly (rnnkit reads through the manifest)
    RUN/curves.png          loss and the task's metric against steps
    RUN/samples.txt         language models: the samples printed at each validation
    RUN/.lock               held (``flock``) by the process training into the folder

**A checkpoint switches in one step.** Its files are written (each atomically, fsynced) into a new
folder of their own; then ``checkpoint.json`` -- the step, that folder, and each file's SHA-256 and
size -- replaces the previous manifest with one atomic rename; only then are older checkpoint
folders deleted. A kill or a full disk at any moment leaves the previous manifest pointing at the
previous, complete checkpoint. Every read goes through the manifest and checks the checksums, so a
damaged or swapped file is an error, never a silently wrong model.

**Files are bound to their run.** config.json carries a random ``run_id`` and the SHA-256 of the
artifacts written before it (``"files"``); the manifest repeats the ``run_id``. `read_config` (which
every command calls) checks the artifacts, the checkpoint reads check the manifest: a vocabulary or
weights from another run are refused.

**What is loaded how.** JSON files with `json`; weights with ``safetensors`` (no code can run);
``trainer_state.pt`` with ``torch.load(weights_only=True)``: PyTorch's restricted unpickler, which
builds only tensors, plain containers and numbers and refuses any other class or function (a
planted pickle is an error, `tests/reliability/test_malicious_files.py`). Weights load onto the CPU
first, so a run trained on a GPU loads anywhere.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from rnnkit.data.atomic import FILE_MODE, _fsync_dir, atomic_path, atomic_write
from rnnkit.errors import CheckpointError

CONFIG, VOCAB, BEST, LAST = "config.json", "vocab.json", "model.safetensors", "last.safetensors"
TRAINER_STATE, HISTORY, CURVES, SAMPLES = "trainer_state.pt", "history.jsonl", "curves.png", "samples.txt"
MANIFEST, CHECKPOINTS, LOCK = "checkpoint.json", "checkpoints", ".lock"
#: the files of one checkpoint folder
CHECKPOINT_FILES = (BEST, LAST, TRAINER_STATE, HISTORY)
#: names rnnkit writes itself; anything else written before config.json is a task artifact
OWN_FILES = {CONFIG, MANIFEST, CHECKPOINTS, LOCK, BEST, HISTORY, CURVES, SAMPLES}

#: config.json's envelope: what every run folder says about itself
FORMAT, VERSION = "rnnkit.run", 2
MANIFEST_FORMAT, MANIFEST_VERSION = "rnnkit.checkpoint", 1

#: the old name of `CheckpointError` (kept: code catches it)
RunFolderError = CheckpointError


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state as a dict of detached CPU copies, each shared (tied) tensor once, under its
    first name: what ``safetensors`` stores (it refuses shared memory)."""
    out, seen = {}, set()
    for name, t in model.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape)) if t.numel() else name
        if key in seen:
            continue
        seen.add(key)
        out[name] = t.detach().to("cpu", copy=True).contiguous()
    return out


class RunFolder:
    """Paths and readers/writers of one run folder (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._config_cache: dict | None = None

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def exists(self) -> bool:
        return (self / CONFIG).is_file()

    def has_checkpoint(self) -> bool:
        return (self / MANIFEST).is_file()

    def require(self, name: str) -> Path:
        """The path of file ``name``, or `CheckpointError` saying what is missing."""
        if not self.path.is_dir():
            raise CheckpointError(f"run folder {str(self.path)!r} does not exist")
        p = self / name
        if not p.is_file():
            raise CheckpointError(f"run folder {str(self.path)!r} has no {name}; it is not a complete "
                                  f"rnnkit run (was training interrupted before its first checkpoint?)")
        return p

    # -- JSON -----------------------------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> None:
        atomic_write(self / name, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")

    def read_json(self, name: str) -> Any:
        p = self.require(name)
        try:
            return json.loads(p.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise CheckpointError(f"{p} is corrupt (not valid JSON: {exc})") from None
        except OSError as exc:
            raise CheckpointError(f"{p} cannot be read: {exc}") from None

    # -- config.json ----------------------------------------------------------------------------
    def artifacts(self) -> list[str]:
        """The task's files in the folder: every top-level file rnnkit does not own."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir()
                      if p.is_file() and p.name not in OWN_FILES and not p.name.startswith("."))

    def write_config(self, task: str, sections: dict[str, Any]) -> None:
        """config.json: the envelope (format, version, task, run_id, the artifacts' checksums) and
        the task's ``sections``. Rewriting it keeps the run's id and checksums."""
        reserved = {"format", "version", "task", "run_id", "files"} & set(sections)
        if reserved:
            raise ValueError(f"config sections may not be named {sorted(reserved)}")
        if self.exists():
            old = self.read_config(task)
            run_id, files = old["run_id"], old["files"]
        else:
            run_id = os.urandom(8).hex()
            files = {name: sha256_file(self / name) for name in self.artifacts()}
        self.write_json(CONFIG, {"format": FORMAT, "version": VERSION, "task": task, "run_id": run_id,
                                 "files": files, **sections})
        self._config_cache = None

    def read_config(self, task: str | None = None, *, verify: bool = True) -> dict[str, Any]:
        """config.json, its envelope checked (and its ``task`` when given), and the files it binds
        checked against their checksums; `CheckpointError` else."""
        d = self.read_json(CONFIG)
        p = self / CONFIG
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CheckpointError(f"{p} is not the configuration of an rnnkit run (expected "
                                  f"\"format\": {FORMAT!r})")
        version = d.get("version")
        if type(version) is not int or version != VERSION:
            raise CheckpointError(f"{p} has format version {version!r}; this rnnkit reads version "
                                  f"{VERSION} (an integer)")
        if not isinstance(d.get("task"), str):
            raise CheckpointError(f"{p} names no task (expected \"task\": a string such as \"lm\")")
        if task is not None and d["task"] != task:
            raise CheckpointError(f"{p} is a {d['task']!r} run, expected a {task!r} run")
        files = d.get("files")
        if not isinstance(d.get("run_id"), str) or not isinstance(files, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise CheckpointError(f"{p} is corrupt: expected \"run_id\" (a string) and \"files\" "
                                  f"(file name -> SHA-256)")
        if verify:
            for name, digest in files.items():
                if "/" in name or "\\" in name or name.startswith("."):
                    raise CheckpointError(f"{p} is corrupt: \"files\" names {name!r}, not a file of "
                                          f"the folder")
                f = self.require(name)
                if sha256_file(f) != digest:
                    raise CheckpointError(f"{f} is not the file this run wrote (its SHA-256 differs from "
                                          f"the one in {CONFIG}): the folder mixes files of two runs, "
                                          f"or the file was damaged")
        return d

    @staticmethod
    def config_digest(d: dict) -> str:
        """SHA-256 of config.json's sections that never change in a run (all but the envelope, the
        trainer's options and the plan, which a resume may extend): the manifest keeps it, so a
        damaged or edited "model" section is refused by every command that loads weights."""
        fixed = {k: v for k, v in d.items() if k not in ("format", "version", "run_id", "files", "train",
                                                         "plan")}
        return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()

    def task_name(self) -> str:
        """The ``"task"`` of config.json (checked as `read_config` does)."""
        return self.read_config()["task"]

    # -- weights outside checkpoints ------------------------------------------------------------
    def save_weights(self, name: str, model: nn.Module, step: int) -> None:
        """``model``'s weights as safetensors at ``RUN/name`` (tied tensors stored once)."""
        with atomic_path(self / name, mode=FILE_MODE) as tmp:
            save_file(weights_of(model), tmp, metadata={"step": str(step)})

    def load_weights(self, name: str, model: nn.Module) -> int:
        """Load ``name`` into ``model`` (on the model's device); returns the step it was saved at.
        The checkpoint's files (``model.safetensors``, ``last.safetensors``) are read through the
        manifest, their checksums checked."""
        p = self.checkpoint_file(name) if name in CHECKPOINT_FILES else self.require(name)
        return load_weights_file(p, model)

    # -- checkpoints ----------------------------------------------------------------------------
    def read_manifest(self) -> dict:
        """checkpoint.json, checked: its format, its run (config.json's ``run_id``), its files."""
        if not self.has_checkpoint():
            if not self.path.is_dir():
                raise CheckpointError(f"run folder {str(self.path)!r} does not exist")
            raise CheckpointError(f"run folder {str(self.path)!r} has no checkpoint yet (training "
                                  f"stopped before its first one); `rnnkit train --resume "
                                  f"{self.path}` starts it again from step 0 with its saved configuration")
        m = self.read_json(MANIFEST)
        p = self / MANIFEST
        if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
            raise CheckpointError(f"{p} is not an rnnkit checkpoint manifest")
        if type(m.get("version")) is not int or m["version"] != MANIFEST_VERSION:
            raise CheckpointError(f"{p} has version {m.get('version')!r}; this rnnkit reads version "
                                  f"{MANIFEST_VERSION} (an integer)")
        files, folder = m.get("files"), m.get("folder")
        if (not isinstance(folder, str) or not folder.startswith(CHECKPOINTS + "/") or ".." in folder
                or not isinstance(files, dict) or set(files) != set(CHECKPOINT_FILES)
                or type(m.get("step")) is not int
                or not all(isinstance(v, dict) and isinstance(v.get("sha256"), str)
                           and type(v.get("bytes")) is int for v in files.values())):
            raise CheckpointError(f"{p} is corrupt (expected step, folder and {list(CHECKPOINT_FILES)} "
                                  f"with their sha256 and bytes)")
        config = self.read_config(verify=False) if self.exists() else None
        run_id = config["run_id"] if config else None
        if m.get("run_id") != run_id:
            raise CheckpointError(f"{p} belongs to another run (run_id {m.get('run_id')!r}, config.json "
                                  f"says {run_id!r}): the folder mixes files of two runs")
        if config and m.get("config_sha256") != self.config_digest(config):
            raise CheckpointError(f"{self / CONFIG} was changed after its checkpoint was written (its "
                                  f"model or task section differs from the one the weights were saved "
                                  f"with): the file was damaged or edited")
        return m

    def checkpoint_file(self, name: str) -> Path:
        """The current checkpoint's file ``name``, its size and SHA-256 checked against the manifest."""
        m = self.read_manifest()
        p = self.path / m["folder"] / name
        if not p.is_file():
            raise CheckpointError(f"{p} is missing: the checkpoint of step {m['step']} is incomplete")
        want = m["files"][name]
        if p.stat().st_size != want["bytes"] or sha256_file(p) != want["sha256"]:
            raise CheckpointError(f"{p} is damaged (its size or SHA-256 differs from {MANIFEST}); the "
                                  f"checkpoint of step {m['step']} cannot be used")
        return p

    def save_checkpoint(self, step: int, last: dict[str, torch.Tensor],
                        best: dict[str, torch.Tensor] | None, state: dict, history: list[dict]) -> None:
        """Write a checkpoint and switch to it in one step (module docstring). ``last``/``best``:
        tensors from `weights_of` (``best=None``: the previous checkpoint's best weights are kept;
        there must be one). A failure (a full disk) is a `CheckpointError`; the previous checkpoint
        is left as it was."""
        config = self.read_config(verify=False) if self.exists() else None
        run_id = config["run_id"] if config else None
        prev = self.read_manifest() if self.has_checkpoint() else None
        if best is None and prev is None:
            raise ValueError("save_checkpoint: the first checkpoint needs best weights")
        root = self / CHECKPOINTS
        root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=root, prefix=f"step-{step:09d}-"))
        try:
            meta = {"step": str(step)}
            atomic_write(folder / LAST, _serialise_weights(last, meta))
            if best is not None:
                atomic_write(folder / BEST, _serialise_weights(best, meta))
            elif prev is not None:   # always, by the check above
                _link_or_copy(self.path / prev["folder"] / BEST, folder / BEST)
            buf = io.BytesIO()
            torch.save(state, buf)
            atomic_write(folder / TRAINER_STATE, buf.getvalue())
            atomic_write(folder / HISTORY, "".join(json.dumps(r) + "\n" for r in history).encode("utf-8"))
            _fsync_dir(folder)
            files = {n: {"sha256": sha256_file(folder / n), "bytes": (folder / n).stat().st_size}
                     for n in CHECKPOINT_FILES}
            self.write_json(MANIFEST, {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
                                       "run_id": run_id, "step": step,
                                       "config_sha256": self.config_digest(config) if config else None,
                                       "folder": f"{CHECKPOINTS}/{folder.name}", "files": files,
                                       "written": time.strftime("%Y-%m-%dT%H:%M:%S")})
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            kept = f"the checkpoint of step {prev['step']} is intact" if prev else "no checkpoint was kept"
            full = " (the disk is full)" if exc.errno == errno.ENOSPC else ""
            raise CheckpointError(f"{self.path}: writing the checkpoint of step {step} failed{full}: "
                                  f"{exc.strerror or exc}; {kept}") from exc
        # the switch is done; what follows only tidies up and may fail without harm
        for name in (BEST, HISTORY):
            try:
                _link_or_copy(folder / name, self / name)
            except OSError:
                pass
        for old in root.iterdir():
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)

    def load_trainer_state(self) -> dict:
        p = self.checkpoint_file(TRAINER_STATE)
        return load_trainer_state_file(p)

    # -- history --------------------------------------------------------------------------------
    def write_history(self, records: list[dict]) -> None:
        atomic_write(self / HISTORY, "".join(json.dumps(r) + "\n" for r in records))

    def read_history(self) -> list[dict]:
        """The history of the current checkpoint (``RUN/history.jsonl`` when there is none)."""
        p = self.checkpoint_file(HISTORY) if self.has_checkpoint() else self / HISTORY
        if not p.is_file():
            return []
        out = []
        try:
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError(f"{p} is corrupt ({exc})") from None
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                r = None
            if not isinstance(r, dict) or type(r.get("step")) is not int:
                raise CheckpointError(f"{p} line {i} is corrupt (expected a JSON object with a step)")
            out.append(r)
        return out


# -- file helpers ---------------------------------------------------------------------------------
def _serialise_weights(tensors: dict[str, torch.Tensor], meta: dict) -> bytes:
    from safetensors.torch import save
    return save(tensors, metadata=meta)


def _link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` the same file as ``src`` atomically: a hard link (no bytes copied) where the
    file system allows, else an atomic copy."""
    tmp = dst.with_name(f".{dst.name}.{os.urandom(4).hex()}.link")
    try:
        os.link(src, tmp)
    except OSError:
        atomic_write(dst, src.read_bytes())
        return
    try:
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_weights_file(p: Path, model: nn.Module) -> int:
    """Load the safetensors file ``p`` into ``model``; the names and shapes must match exactly."""
    try:
        tensors = load_file(p, device="cpu")
        with open(p, "rb") as f:  # the header holds the metadata
            header_len = int.from_bytes(f.read(8), "little")
            meta = json.loads(f.read(header_len)).get("__metadata__") or {}
        step = int(meta.get("step", -1))
    except (SafetensorError, OSError, ValueError, AttributeError, TypeError, RecursionError,
            MemoryError, OverflowError) as exc:
        raise CheckpointError(f"{p} is corrupt or not a safetensors file ({exc})") from None
    own = model.state_dict()
    names = {n for n in own if n in tensors}
    # tied weights are stored under one name; every name sharing that tensor is satisfied by it
    shared = {n for n in own if n not in tensors and any(
        own[n].data_ptr() == own[m].data_ptr() for m in names)}
    missing = sorted(set(own) - names - shared)
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{p} does not match the model of {CONFIG}: missing {missing}, "
                              f"unexpected {unexpected}")
    for n in names:
        if tensors[n].shape != own[n].shape or tensors[n].dtype.is_floating_point != \
                own[n].dtype.is_floating_point:
            raise CheckpointError(f"{p}: tensor {n} has shape {tuple(tensors[n].shape)} "
                                  f"({tensors[n].dtype}), the model of {CONFIG} expects "
                                  f"{tuple(own[n].shape)} ({own[n].dtype})")
    with torch.no_grad():
        for n in names:
            own[n].copy_(tensors[n])
    return step


def load_trainer_state_file(p: Path) -> dict:
    """``torch.load(p, weights_only=True)``: tensors, containers and numbers only (module docstring)."""
    if not zipfile.is_zipfile(p):  # torch.save always writes a zip archive
        raise CheckpointError(f"{p} is corrupt (not the zip archive torch.save writes)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            struct.error, AttributeError, TypeError, KeyError, ImportError, OSError, MemoryError,
            IndexError, OverflowError) as exc:
        raise CheckpointError(f"{p} is corrupt or not allowed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{p} is not an rnnkit trainer state")
    return state
