"""Training under torchrun: 2 processes (gloo over loopback) with global batch B give the losses of one
process with batch B; resuming with another world size continues the same run; a killed rank makes
the others stop with an error instead of hanging. Everything runs on this machine, CPU only."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.errors import ConfigError
from rnnkit.train.distributed import Dist

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "RNNKIT_DIST_TIMEOUT": "30"}


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = "the cat sat on a mat and dog ran far away with big red ball".split()
    path = tmp_path_factory.mktemp("dist") / "text.txt"
    path.write_text(" ".join(rng.choice(words, 5000)))
    return path


def lm_options(text, out, steps):
    return ["train", "--data", str(text), "--steps", str(steps), "--hidden", "32", "--embedding", "16",
            "--layers", "1", "--batch-size", "8", "--seq-len", "16", "--log-every", "1",
            "--eval-every", "3", "--sample-length", "0", "--threads", "1", "--no-progress",
            "--dropout", "0", "--lr", "0.003", "--out", str(out)]


def launch(args, nproc):
    cmd = ([*TORCHRUN, f"--nproc_per_node={nproc}", "-m", "rnnkit"] if nproc > 1
           else [sys.executable, "-m", "rnnkit"])
    done = subprocess.run(cmd + args, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def losses(run):
    records = [json.loads(line) for line in (Path(run) / "history.jsonl").read_text().splitlines()]
    return ([r["loss"] for r in records if r["split"] == "train"],
            [r["loss"] for r in records if r["split"] == "val"])


def test_two_ranks_give_the_losses_of_one_process_for_the_language_model(text, tmp_path):
    two = launch(lm_options(text, tmp_path / "two", 9), 2)
    launch(lm_options(text, tmp_path / "one", 9), 1)
    (t2, v2), (t1, v1) = losses(tmp_path / "two"), losses(tmp_path / "one")
    assert len(t2) == len(t1) == 9 and len(v2) == len(v1) == 3
    np.testing.assert_allclose(t2, t1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v2, v1, rtol=1e-5, atol=1e-6)
    assert two.stdout.count("finished: 9 steps") == 1   # only rank 0 prints


def test_two_ranks_give_the_losses_of_one_process_for_forecasting(tmp_path):
    rng = np.random.default_rng(0)
    rows = [f"{1900 + i // 12}-{i % 12 + 1:02d},{100 + i + 10 * np.sin(i / 2) + rng.normal():.3f}"
            for i in range(200)]
    data = tmp_path / "s.csv"
    data.write_text("Month,Value\n" + "\n".join(rows) + "\n")
    opts = ["train", "--task", "forecast", "--data", str(data), "--horizon", "4", "--hidden", "16",
            "--dropout", "0", "--batch-size", "10", "--steps", "8", "--eval-every", "4",
            "--log-every", "1", "--threads", "1", "--no-progress"]
    launch([*opts, "--out", str(tmp_path / "two")], 2)
    launch([*opts, "--out", str(tmp_path / "one")], 1)
    (t2, v2), (t1, v1) = losses(tmp_path / "two"), losses(tmp_path / "one")
    np.testing.assert_allclose(t2, t1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v2, v1, rtol=1e-5, atol=1e-6)


def test_resuming_with_another_world_size_continues_the_same_run(text, tmp_path):
    launch(lm_options(text, tmp_path / "a", 6), 2)                       # 2 ranks, then 1
    launch(["train", "--resume", str(tmp_path / "a"), "--steps", "9", "--no-progress"], 1)
    launch(lm_options(text, tmp_path / "b", 6), 1)                       # 1 process, then 1
    launch(["train", "--resume", str(tmp_path / "b"), "--steps", "9", "--no-progress"], 1)
    (ta, va), (tb, vb) = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert len(ta) == 9
    np.testing.assert_allclose(ta, tb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(va, vb, rtol=1e-5, atol=1e-6)


def test_a_killed_rank_stops_the_others_with_an_error(text, tmp_path):
    out = tmp_path / "killed"
    args = lm_options(text, out, 10**6)
    proc = subprocess.Popen([*TORCHRUN, "--nproc_per_node=2", "-m", "rnnkit", *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "history.jsonl").exists():   # training has started on both ranks
            assert proc.poll() is None and time.time() < deadline, "the run did not start"
            time.sleep(0.2)
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                 text=True).stdout.split()
        assert len(workers) == 2, workers
        os.kill(int(workers[-1]), signal.SIGKILL)
        output, _ = proc.communicate(timeout=90)   # no hang: everyone is gone within the timeout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    # the survivor says what happened (our error), or was stopped by torchrun's agent, which names
    # the failed rank; never a silent hang
    assert ("lost the other ranks" in output or "SIGTERM" in output) and "failed" in output.lower(), \
        output[-3000:]


def test_batch_sizes_that_do_not_divide_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"--batch-size 7 cannot be split over 2 processes.*"
                                          r"multiple of 2 \(e.g. 6 or 8\)"):
        Dist(rank=0, world=2).check_divides(7)
    Dist(rank=0, world=2).check_divides(8)
    batch = (torch.arange(10).view(5, 2), torch.arange(5))
    parts = [Dist(rank=r, world=2).shard(batch) for r in range(2)]
    assert torch.equal(torch.cat([p[0] for p in parts]), batch[0])
    assert [len(p[1]) for p in parts] == [3, 2]
    with pytest.raises(ConfigError, match="a batch of 1 rows cannot be split over 2"):
        Dist(rank=1, world=2).shard(torch.zeros(1, 3))


def test_sigterm_on_one_rank_stops_all_after_one_checkpoint_and_resumes(text, tmp_path):
    out = tmp_path / "term"
    proc = subprocess.Popen([*TORCHRUN, "--nproc_per_node=2", "-m", "rnnkit",
                             *lm_options(text, out, 10**6)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "history.jsonl").exists():
            assert proc.poll() is None and time.time() < deadline, "the run did not start"
            time.sleep(0.2)
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                 text=True).stdout.split()
        os.kill(int(workers[-1]), signal.SIGTERM)       # rank 1 only
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopping after this step" in output, output[-3000:]
    step = max(r["step"] for r in map(json.loads, (out / "history.jsonl").read_text().splitlines()))
    done = launch(["train", "--resume", str(out), "--steps", str(step + 2), "--no-progress"], 1)
    assert f"finished: {step + 2} steps" in done.stdout


def test_a_minutes_budget_ends_on_every_rank_at_the_same_step(text, tmp_path):
    args = lm_options(text, tmp_path / "m", 1)
    # a tiny budget: the plan is measured on one process without the per-step collectives, which
    # dominate a model this small (docs/distributed.md), so the run takes longer than its budget
    args[args.index("--steps"):args.index("--steps") + 2] = ["--minutes", "0.02"]
    done = launch(args, 2)
    assert done.stdout.count("budget: 0.02 minutes ->") == 1 and "finished:" in done.stdout


def _gloo_threads() -> list[str]:
    """The names of this process's threads that belong to gloo (Linux: /proc)."""
    tasks = Path("/proc/self/task")
    names = [(t / "comm").read_text().strip() for t in tasks.iterdir()] if tasks.is_dir() else []
    return [n for n in names if "gloo" in n]


def _train_in_own_group(rank, store, text, out):
    """A user's own launcher: init the group, then train as usual (rnnkit joins that group)."""
    import warnings
    warnings.filterwarnings("error", "the default process group was initialised before")   # rnnkit's
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                                         world_size=2)
    try:
        from rnnkit.tasks import lm
        lm.train(str(text), out=str(out), steps=4, hidden=32, embedding=16, layers=1, batch_size=8,
                 seq_len=16, log_every=1, eval_every=3, sample_length=0, threads=1, dropout=0.0,
                 lr=0.003, progress=False, echo=None)
    finally:
        torch.distributed.destroy_process_group()
    # destroyed for real: gloo's threads are joined now, not left to race the interpreter's exit
    # (a thread releasing a tensor during finalisation aborts the process: SIGABRT at random)
    assert not _gloo_threads(), _gloo_threads()


def test_the_python_api_joins_a_process_group_the_caller_initialised(text, tmp_path):
    torch.multiprocessing.spawn(_train_in_own_group, args=(tmp_path / "store", text, tmp_path / "two"),
                                nprocs=2, join=True)
    launch(lm_options(text, tmp_path / "one", 4), 1)
    (t2, v2), (t1, v1) = losses(tmp_path / "two"), losses(tmp_path / "one")
    np.testing.assert_allclose(t2, t1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v2, v1, rtol=1e-5, atol=1e-6)
