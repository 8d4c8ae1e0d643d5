"""The C++ kernels' first-use build: a lock left by a killed build is detected and removed (never
waited on forever), a live builder is waited for up to a time limit and then the PyTorch kernels are
used with the reason; and everything works with the kernels off (``RNNKIT_NATIVE=0``: no compiler)."""
from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnkit.core import native

REPO = Path(__file__).resolve().parents[2]

fcntl = pytest.importorskip("fcntl")


def test_a_lock_left_by_a_killed_build_is_removed(tmp_path, capsys):
    (tmp_path / "lock").write_text("")                        # torch's baton, never released
    (tmp_path / "rnnkit-build.owner").write_text("process 4194999")
    fd = native.claim_build(tmp_path, timeout_s=5)
    assert isinstance(fd, int)
    os.close(fd)
    assert not (tmp_path / "lock").exists()
    err = capsys.readouterr().err
    assert "removing the build lock" in err and "process 4194999" in err


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="finding orphans needs Linux /proc")
def test_a_compiler_left_running_by_a_killed_build_is_stopped(tmp_path, capsys):
    """The killed build's ninja keeps running (its parent died, not it); the next builder stops it
    before building again, and leaves a process of another name (a user's shell there) alone."""
    build = tmp_path / "build"
    build.mkdir()
    (build / "lock").write_text("")
    (build / "rnnkit-build.owner").write_text("process 4194999")
    (tmp_path / "ninja").symlink_to(shutil.which("sleep"))     # a process named ninja
    (tmp_path / "editor").symlink_to(shutil.which("sleep"))
    orphan = subprocess.Popen([str(tmp_path / "ninja"), "60"], cwd=build)
    bystander = subprocess.Popen([str(tmp_path / "editor"), "60"], cwd=build)
    try:
        deadline = time.time() + 10
        while not (Path(f"/proc/{orphan.pid}/comm").exists()
                   and Path(f"/proc/{orphan.pid}/comm").read_text().strip() == "ninja"):
            assert time.time() < deadline
            time.sleep(0.05)
        fd = native.claim_build(build, timeout_s=5)
        assert isinstance(fd, int)
        os.close(fd)
        assert orphan.wait(timeout=10) is not None                 # stopped
        assert bystander.poll() is None                            # not a compiler: left alone
        err = capsys.readouterr().err
        assert "stopped 1 compiler process(es)" in err and f"ninja ({orphan.pid})" in err
    finally:
        for p in (orphan, bystander):
            if p.poll() is None:
                p.kill()
                p.wait()


def hold(path, ready):
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"process {os.getpid()}".encode())
    ready.set()
    time.sleep(60)


def test_a_live_builder_is_waited_for_then_the_pytorch_kernels_are_used(tmp_path, capsys):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    child = ctx.Process(target=hold, args=(str(tmp_path / "rnnkit-build.owner"), ready))
    child.start()
    try:
        assert ready.wait(30)
        t = time.monotonic()
        reason = native.claim_build(tmp_path, timeout_s=0.6)
        assert isinstance(reason, str) and time.monotonic() - t >= 0.6
        assert f"being built by process {child.pid}" in reason and "PyTorch's kernels" in reason
        assert f"waiting for process {child.pid}" in capsys.readouterr().err
    finally:
        child.kill()
        child.join()
    fd = native.claim_build(tmp_path, timeout_s=5)           # the holder died: free at once
    assert isinstance(fd, int)
    os.close(fd)


def test_a_cached_build_with_a_stale_lock_loads_in_a_new_process(tmp_path):
    """The real case: the cached build folder holds torch's ``lock`` from a killed process. Before,
    every later process waited on it forever; now it loads the kernels."""
    from torch.utils import cpp_extension
    if native.unavailable() is not None:
        pytest.skip(f"the C++ kernels are not available here: {native.unavailable()}")
    name = native.build_name()
    src = Path(cpp_extension._get_build_directory(name, verbose=False))
    if not (src / f"{name}.so").is_file():
        pytest.skip(f"no cached build in {src} to copy")
    ext = tmp_path / "ext"            # $TORCH_EXTENSIONS_DIR holds the build folders directly
    dst = ext / src.name
    shutil.copytree(src, dst)
    (dst / "lock").write_text("")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TORCH_EXTENSIONS_DIR": str(ext)}
    code = "from rnnkit.core import native; print(native.unavailable())"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "None", res.stderr
    assert "removing the build lock" in res.stderr


RNNKIT_OFF = """
import torch
from rnnkit.core import native
from rnnkit import nn as rnn
assert native.unavailable() == "rnnkit's C++ kernels are turned off (RNNKIT_NATIVE=0)"
torch.manual_seed(0)
for name in ("GRU", "RNN", "LSTM"):
    ours, theirs = getattr(rnn, name)(3, 5, num_layers=2), getattr(torch.nn, name)(3, 5, num_layers=2)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(7, 2, 3, requires_grad=True)
    a, b = ours(x)[0], theirs(x)[0]
    assert torch.allclose(a, b, atol=1e-6), name
    ga, = torch.autograd.grad(a.sum(), x)
    gb, = torch.autograd.grad(b.sum(), x)
    assert torch.allclose(ga, gb, atol=1e-6), name
from rnnkit.tasks import lm
import sys
r = lm.train(sys.argv[1], out=sys.argv[2], cell="gru", steps=3, hidden=16, embedding=8, batch_size=4,
             seq_len=16, sample_length=0, progress=False, echo=None)
assert r.step == 3
assert len(lm.generate(sys.argv[2], "the", 20, seed=0)[0]) == 23
print("ok")
"""


def test_everything_works_with_the_kernels_off(tmp_path, small_text):
    """RNNKIT_NATIVE=0 (what a machine without a C++ compiler gets): the stock cells equal torch.nn,
    a language model trains and generates."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RNNKIT_NATIVE": "0"}
    res = subprocess.run([sys.executable, "-c", RNNKIT_OFF, str(small_text), str(tmp_path / "run")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
