"""rnnkit's C++ kernels (``rnnkit/core/csrc``): compiled on first use, cached, and optional.

The sources are compiled once per machine with the C++ compiler that builds PyTorch extensions
(``torch.utils.cpp_extension``, which needs ``ninja``) into the torch extensions folder
(``$TORCH_EXTENSIONS_DIR``, or ``~/.cache/torch_extensions``); later processes only load the
library. Concurrent first uses (pytest-xdist workers) wait for the first one's build instead of
compiling twice (`claim_build`); a build killed mid-compile leaves a lock that the next process
detects as stale (its owner is gone) and removes, and a wait longer than a time limit falls back to
PyTorch's kernels with the reason. A first-use build says so on stderr. The build name carries a
hash of the sources, the flags, the torch version and the
CPU's instruction sets (the code is compiled with ``-march=native``), so a changed source or another
CPU gets a fresh build.

Where there is no compiler, no ninja, or the build fails, `unavailable()` returns the reason and the
engine uses PyTorch's fused kernel instead (`rnnkit.core.fast_paths.fast_path_unavailable`). Setting
``RNNKIT_NATIVE=0`` turns the C++ kernels off.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
from torch import Tensor

try:
    import fcntl
except ImportError:  # Windows: no stale-lock detection
    fcntl = None  # type: ignore[assignment]

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = ("recurrence.cpp", "sampler.cpp", "minscan.cpp", "layernorm.cpp", "bindings.cpp")
HEADERS = ("common.h", "kernels.h")
FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp", "-fno-math-errno"]

#: give up waiting for another process's build after this long (seconds) and use PyTorch's kernels
BUILD_TIMEOUT_S = 900.0

_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "error": None}


def unavailable() -> str | None:
    """Why the C++ kernels cannot run here (building them on the first call), or None."""
    if os.environ.get("RNNKIT_NATIVE", "1").strip().lower() in ("0", "off", "false", "no"):
        return "rnnkit's C++ kernels are turned off (RNNKIT_NATIVE=0)"
    with _lock:
        if not _state["tried"]:
            _state["error"] = _build()
            _state["tried"] = True
    error: str | None = _state["error"]
    return error


def ops() -> Any:  # operators registered at run time (signatures in csrc/bindings.cpp)
    """The kernels as PyTorch operators (``torch.ops.rnnkit``); call `unavailable()` first."""
    return torch.ops.rnnkit


def build_name() -> str:
    """The extension's name: ``rnnkit_native_<hash of everything the binary depends on>``."""
    h = hashlib.sha256()
    for name in SOURCES + HEADERS:
        h.update((CSRC / name).read_bytes())
    h.update(" ".join(FLAGS).encode())
    h.update(f"{torch.__version__} {sys.version_info[:2]} {platform.machine()} {_cpu_flags()}".encode())
    return "rnnkit_native_" + h.hexdigest()[:16]


def _build() -> str | None:
    """Compile (or load the cached build); the reason it failed, or None."""
    from torch.utils import cpp_extension

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler: {compiler!r} is not on PATH (install g++ or set CXX)"
    _put_venv_ninja_on_path()
    if not cpp_extension.is_ninja_available():
        return "ninja is not installed (pip install ninja), needed to build the C++ kernels"
    name = build_name()
    build_dir = Path(cpp_extension._get_build_directory(name, verbose=False))
    claim = claim_build(build_dir)
    if isinstance(claim, str):
        return claim
    try:
        if not (build_dir / f"{name}.so").is_file():
            print("rnnkit: building the C++ kernels for this machine (first use only, about a minute; "
                  "RNNKIT_NATIVE=0 skips them)", file=sys.stderr, flush=True)
        cpp_extension.load(name, [str(CSRC / s) for s in SOURCES], extra_cflags=FLAGS,
                           extra_ldflags=["-lm", "-fopenmp"], is_python_module=False, verbose=False)
    except (RuntimeError, OSError, ImportError, subprocess.CalledProcessError) as e:
        # RuntimeError: the compiler or linker failed (its output is in the message); OSError /
        # ImportError: the library does not load (e.g. a BLAS symbol this torch build lacks).
        return f"building rnnkit's C++ kernels failed: {type(e).__name__}: {_tail(str(e))}"
    finally:
        os.close(claim)
    _register_fake_kernels()
    return None


def _register_fake_kernels() -> None:
    """Shape functions of the operators for `torch.compile` / `torch.export` (which trace with
    "fake" tensors that have shapes but no data). A bias gradient the kernel leaves undefined is an
    empty tensor here (its Function drops it)."""
    from torch.library import register_fake

    def new(like: Tensor, *shape: int) -> Tensor:
        return like.new_empty(shape)

    def fake(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        # torch.library.register_fake has no return annotation; it returns the registering decorator
        return cast("Callable[[Callable[..., Any]], Callable[..., Any]]", register_fake(f"rnnkit::{name}"))

    @fake("gru_forward")
    def _(xp: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor, reverse: bool, save: bool,
          bf16: bool) -> list[Tensor]:
        S, B, H = xp.shape[0], xp.shape[1], h0.shape[1]
        return [new(xp, S, B, H), new(xp, S if save else 1, B, 4 * H)]

    @fake("gru_backward")
    def _(d_out: Tensor, d_hn: Tensor, out: Tensor, h0: Tensor, ws: Tensor, w_hh: Tensor, has_bias: bool,
          reverse: bool, bf16: bool) -> list[Tensor]:
        S, B, H = out.shape
        return [new(out, S, B, 3 * H), new(out, B, H), new(out, 3 * H, H),
                new(out, 3 * H if has_bias else 0)]

    @fake("rnn_forward")
    def _(xp: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor, relu: bool, reverse: bool,
          bf16: bool) -> Tensor:
        return new(xp, *xp.shape)

    @fake("rnn_backward")
    def _(d_out: Tensor, d_hn: Tensor, out: Tensor, h0: Tensor, w_hh: Tensor, has_bias: bool, relu: bool,
          reverse: bool, bf16: bool) -> list[Tensor]:
        S, B, H = out.shape
        return [new(out, S, B, H), new(out, B, H), new(out, H, H), new(out, H if has_bias else 0)]

    @fake("sample_step")
    def _(pre0: Tensor, h: Tensor, c: Tensor, w: list[Tensor], b: list[Tensor], head_w: Tensor,
          head_b: Tensor, mode: int) -> Tensor:
        return new(h, h.shape[1], head_w.shape[1])

    @fake("min_scan_forward")
    def _(xp: Tensor, bias: Tensor, h0: Tensor, gates: int) -> Tensor:
        return new(xp, xp.shape[0], xp.shape[1], h0.shape[1])

    @fake("min_scan_backward")
    def _(g_out: Tensor, xp: Tensor, bias: Tensor, out: Tensor, h0: Tensor, gates: int) -> list[Tensor]:
        return [new(xp, *xp.shape), new(h0, *h0.shape)]

    @fake("lnlstm_forward")
    def _(xp: Tensor, h0: Tensor, c0: Tensor, W: Tensor, g_hh: Tensor, b_hh: Tensor, g_c: Tensor,
          b_c: Tensor, eps: float) -> list[Tensor]:
        S, B, N = xp.shape
        H = h0.shape[1]
        return [new(xp, S, B, H), new(xp, S, B, H), new(xp, S, B, N), new(xp, S, B, 4)]

    @fake("lnlstm_backward")
    def _(d_out: Tensor, d_hT: Tensor, d_cT: Tensor, xp: Tensor, c0: Tensor, W: Tensor, g_hh: Tensor,
          b_hh: Tensor, g_c: Tensor, b_c: Tensor, call: Tensor, hp: Tensor, stats: Tensor) -> list[Tensor]:
        S, B, N = xp.shape
        H = c0.shape[1]
        return [new(xp, S, B, N), new(xp, S, B, N), new(xp, B, H), new(xp, B, H), new(xp, N),
                new(xp, N), new(xp, H), new(xp, H)]

    @fake("lngru_forward")
    def _(xp: Tensor, h0: Tensor, W: Tensor, g_hh: Tensor, b_hh: Tensor, eps: float) -> list[Tensor]:
        S, B, N = xp.shape
        return [new(xp, S, B, h0.shape[1]), new(xp, S, B, N), new(xp, S, B, 4)]

    @fake("lngru_backward")
    def _(d_out: Tensor, d_hT: Tensor, xp: Tensor, h0: Tensor, W: Tensor, g_hh: Tensor, b_hh: Tensor,
          out: Tensor, hp: Tensor, stats: Tensor) -> list[Tensor]:
        S, B, N = xp.shape
        return [new(xp, S, B, N), new(xp, S, B, N), new(xp, B, h0.shape[1]), new(xp, N), new(xp, N)]


def claim_build(build_dir: Path, timeout_s: float | None = None) -> int | str:
    """Become the one process that builds (or loads) the kernels in ``build_dir``: an ``flock`` on
    ``rnnkit-build.owner`` there, held until the returned descriptor is closed (the kernel releases
    it when a process dies, however it dies). While another live process holds it, wait (saying so
    once) up to ``timeout_s`` (``$RNNKIT_NATIVE_BUILD_TIMEOUT``, default `BUILD_TIMEOUT_S`), then
    give up: the reason is returned and the engine falls back to PyTorch's kernels.

    Holding it, a ``lock`` file of torch's builder left in the folder is stale (its builder was
    killed mid-compile; torch would wait on it forever): it is removed, with a note on stderr, and
    the build starts again."""
    if timeout_s is None:
        timeout_s = float(os.environ.get("RNNKIT_NATIVE_BUILD_TIMEOUT", BUILD_TIMEOUT_S))
    build_dir.mkdir(parents=True, exist_ok=True)
    owner = build_dir / "rnnkit-build.owner"
    fd = os.open(owner, os.O_RDWR | os.O_CREAT, 0o644)
    deadline, said = time.monotonic() + timeout_s, False
    while fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = owner.read_text(errors="replace").strip() or "another process"
            if time.monotonic() >= deadline:
                os.close(fd)
                return (f"rnnkit's C++ kernels are being built by {holder} in {build_dir} for more than "
                        f"{timeout_s:g} s; using PyTorch's kernels meanwhile")
            if not said:
                print(f"rnnkit: waiting for {holder}, which is building the C++ kernels in {build_dir}",
                      file=sys.stderr, flush=True)
                said = True
            time.sleep(0.2)
    stale = build_dir / "lock"
    if stale.exists():
        before = owner.read_text(errors="replace").strip() or "an unknown process"
        print(f"rnnkit: removing the build lock {stale} left by {before}, which is gone (killed while "
              f"compiling?); building again", file=sys.stderr, flush=True)
        stale.unlink(missing_ok=True)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"process {os.getpid()}".encode())
    return fd


def _put_venv_ninja_on_path() -> None:
    """``pip install ninja`` puts the binary beside the interpreter, which is not on PATH when the
    virtual environment is used without being activated (``.venv/bin/python -m pytest``)."""
    bindir = str(Path(sys.executable).parent)
    if (Path(bindir) / "ninja").exists() and bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def _tail(text: str, limit: int = 1500) -> str:
    """The part of a long build log that says what went wrong."""
    lines = [ln for ln in text.splitlines() if "error" in ln.lower()] or text.splitlines()
    out = "\n".join(lines[-12:])
    return out[-limit:]
