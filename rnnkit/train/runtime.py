"""Process-level concerns of a run: the device, the random-number generators, and signals."""
from __future__ import annotations

import signal
import threading

import torch


def resolve_device(name: str) -> torch.device:
    """``"auto"``: CUDA when PyTorch sees a GPU, else the CPU; ``"cuda"`` without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but PyTorch sees no CUDA GPU here; use --device cpu")
    return torch.device(name)


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
