"""Does memory stay flat? Resident memory (RSS) sampled while a language model generates 1,000,000
characters, and during a long training run (checkpoints, validations and history included); the
slope is a least-squares line through the samples after a warm-up (the first fifth).

    python benchmarks/memory_slope.py [--chars 1000000] [--steps 3000] [--trim]

``--trim`` calls glibc's ``malloc_trim(0)`` before each sample: what is left is memory in use, not
freed memory the allocator keeps (the training growth without it is the latter: see the README).

Prints one line per measurement and a Markdown table (the README's reliability table quotes it).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mib() -> float:
    """Resident set size of this process, MiB (Linux /proc; ru_maxrss elsewhere is the peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def slope(xs, ys) -> float:
    """Least-squares slope of ys over xs after the first fifth of the samples (warm-up)."""
    k = len(xs) // 5
    x, y = np.asarray(xs[k:], float), np.asarray(ys[k:], float)
    return float(np.polyfit(x, y, 1)[0])


def text_file(folder: Path) -> Path:
    data = Path(os.environ.get("RNNKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    src = data / "timemachine.txt"
    text = src.read_text() if src.is_file() else ("the time traveller said that the machine was ready. "
                                                  * 4000)
    path = folder / "text.txt"
    path.write_text(text)
    return path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chars", type=int, default=1_000_000)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--trim", action="store_true", help="malloc_trim(0) before each sample (glibc)")
    args = p.parse_args(argv)
    if args.trim:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")

        def sample() -> float:
            libc.malloc_trim(0)
            return rss_mib()
    else:
        sample = rss_mib
    import torch

    from rnnkit.tasks import lm
    from rnnkit.train import Callback
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        text = text_file(folder)

        class Sample(Callback):
            def __init__(self):
                self.steps, self.rss = [], []

            def on_step_end(self, trainer):
                if trainer.step % 50 == 0:
                    self.steps.append(trainer.step)
                    self.rss.append(sample())

        s = Sample()
        t = time.perf_counter()
        lm.train(str(text), out=folder / "run", steps=args.steps, eval_every=100, hidden=128,
                 sample_length=50, progress=False, echo=None, callbacks=[s])
        train_s = time.perf_counter() - t
        per_1000 = slope(s.steps, s.rss) * 1000
        print(f"training: {args.steps} steps in {train_s:.0f} s, RSS {s.rss[0]:.0f} -> {s.rss[-1]:.0f} MiB, "
              f"slope {per_1000:+.3f} MiB per 1,000 steps")
        rows.append(("training", f"{args.steps:,} steps (validation + checkpoint every 100)",
                     s.rss[0], s.rss[-1], f"{per_1000:+.3f} MiB / 1,000 steps"))

        loaded = lm.load(folder / "run")
        xs, ys, n = [], [], 0
        t = time.perf_counter()
        for piece in lm.iter_generate(loaded, "the ", args.chars, temperature=1.0, seed=0):
            n += len(piece)
            if n % 20_000 == 0:
                xs.append(n)
                ys.append(sample())
        gen_s = time.perf_counter() - t
        per_100k = slope(xs, ys) * 100_000
        print(f"generation: {n:,} characters in {gen_s:.0f} s, RSS {ys[0]:.0f} -> {ys[-1]:.0f} MiB, "
              f"slope {per_100k:+.3f} MiB per 100,000 characters")
        rows.append(("generation", f"{n:,} characters", ys[0], ys[-1],
                     f"{per_100k:+.3f} MiB / 100,000 chars"))
    print("\n| run | length | RSS start (MiB) | RSS end (MiB) | slope after warm-up |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.0f} | {r[3]:.0f} | {r[4]} |")


if __name__ == "__main__":
    main()
