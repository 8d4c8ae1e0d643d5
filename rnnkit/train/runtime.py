"""Process-level concerns of a run: the device, the random-number generators, signals, and the lock
that keeps two processes from writing one run folder."""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import torch

from rnnkit.errors import CheckpointError, ConfigError

try:
    import fcntl
except ImportError:  # Windows: the lock falls back to a process-id check
    fcntl = None  # type: ignore[assignment]


def resolve_device(name) -> torch.device:
    """``"auto"``: CUDA when PyTorch sees a GPU, else the CPU. ``"cpu"``, ``"cuda"``, ``"cuda:N"``
    (and the other device names torch knows) are checked: a `ConfigError` names what is wrong."""
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise ConfigError(f"device must be a str such as 'cpu' or 'cuda', got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device: {name!r} is not a device; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} but PyTorch sees no CUDA GPU here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device={name!r} but PyTorch sees {torch.cuda.device_count()} GPU(s) "
                              f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    elif device.type not in ("cpu", "cuda"):
        backend = getattr(torch.backends, device.type, None)
        if backend is None or not getattr(backend, "is_available", lambda: False)():
            raise ConfigError(f"device={name!r}: PyTorch has no {device.type} device here; use "
                              f"--device cpu")
    return device


def rng_state() -> dict:
    """The global torch generators' states (CPU, and each GPU): what dropout draws from."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict) -> None:
    """Restore `rng_state`; GPU states only where the same number of GPUs is present."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class StopOnSignals:
    """SIGINT/SIGTERM ask the trainer to stop after the current step; a second SIGINT aborts.
    Handlers are only installed in the main thread (Python allows no other)."""

    def __init__(self, trainer):
        self.trainer, self.old, self.received = trainer, {}, False

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = True
        self.trainer.stop_reason = name
        self.trainer.echo(f"\n{name} received: stopping after this step and writing the last "
                          f"checkpoint (press Ctrl-C again to abort without saving)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self.old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An exclusive lock on a run folder (``RUN/.lock``) for as long as a process trains into it.

    The kernel holds it (``flock``), so it is released when the process exits, however it exits
    (SIGKILL included); the file says who holds it (pid, host, start time). A lock file left by a
    killed process is *stale*: the next process takes it over and says so (`stale`). Where there
    is no ``flock`` (Windows), a lock file naming a live process on this host counts as held.
    Use as a context manager, or `acquire` / `release`.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / ".lock"
        self.fd: int | None = None
        self.stale: str | None = None   # who held the lock before, when that process was gone

    def _holder(self) -> dict:
        try:
            d = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            return d if isinstance(d, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        holder = self._holder()
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            elif holder.get("pid") and holder.get("host") == socket.gethostname() and \
                    holder["pid"] != os.getpid() and _alive(int(holder["pid"])):
                raise BlockingIOError
        except BlockingIOError:
            os.close(fd)
            who = (f"process {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"
                   if holder else "another process")
            raise CheckpointError(f"run folder {str(self.path.parent)!r} is in use by {who}; two "
                                  f"trainings cannot write one run: wait for it to finish, or choose "
                                  f"another --out") from None
        if holder.get("pid"):  # a previous holder that did not release: it was killed
            self.stale = f"process {holder['pid']} on {holder.get('host')} (started {holder.get('started')})"
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode())
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        """Empty the file (a clean release) and let the lock go. The file stays: removing it could
        let two processes lock two different files of the same name."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        if fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
