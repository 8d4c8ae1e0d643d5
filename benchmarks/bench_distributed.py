"""Data-parallel scaling on this machine: `rnnkit train` of a character LSTM language model in 1 process
and under `torchrun --nproc_per_node=2` (gloo over loopback), each process with one thread, the same
global batch; prints the training speed (tokens/s over all ranks, from history.jsonl, the first log
left out as warm-up) and the ratio.

    RNNKIT_DATA=../shared/data python benchmarks/bench_distributed.py [--steps 300] [--hidden 256]

Run it alone: two processes on two cores are what is being measured.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run(nproc: int, args, out: Path) -> float:
    opts = ["train", "--data", args.data, "--steps", str(args.steps), "--hidden", str(args.hidden),
            "--layers", "1", "--batch-size", str(args.batch_size), "--seq-len", "32",
            "--log-every", "25", "--eval-every", str(args.steps), "--sample-length", "0",
            "--threads", "1", "--no-progress", "--out", str(out)]
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={nproc}"] if nproc > 1 else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*launcher, "-m", "rnnkit", *opts], env=env, check=True, capture_output=True)
    logs = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    speeds = [r["tokens_per_s"] for r in logs if r["split"] == "train"][1:]
    return sum(speeds) / len(speeds)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="timemachine")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        one = run(1, args, Path(tmp) / "one")
        two = run(2, args, Path(tmp) / "two")
    print("| processes (1 thread each) | tokens/s | speed-up |")
    print("|---|---|---|")
    print(f"| 1 | {one:,.0f} | 1.00x |")
    print(f"| 2 (torchrun, gloo) | {two:,.0f} | {two / one:.2f}x |")


if __name__ == "__main__":
    main()
