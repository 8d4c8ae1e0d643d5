"""Forward+backward speed of rnnkit.nn.LSTM/GRU/RNN against torch.nn.LSTM/GRU/RNN (CPU).

    python benchmarks/bench_core.py            # full run (~2-3 minutes on 2 cores)
    python benchmarks/bench_core.py --quick    # smoke run (seconds)

Contenders per case: ``torch.nn`` (the baseline), ``rnnkit`` with ``kernel="auto"`` (the fused
kernel: PyTorch's own function, so it should match torch, or rnnkit's C++ kernel where one serves;
the label says which) and ``rnnkit`` with ``kernel="loop"`` (the engine's own time loop). All share
the same weights and input and run in one process, interleaved: every repeat times each contender
once, in a rotating order, so load changes on a shared machine hit all alike.
Reported: tokens/s = batch * steps / seconds for one forward+backward, median with min-max over the
repeats, and the speed ratio to torch.nn: the median of the per-repeat ratios (pairs runs timed side
by side) and the ratio of the best times (the least disturbed run of each, the steadiest estimate of
the intrinsic cost when other processes share the cores).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import omp_policy  # noqa: E402  (benchmarks/: the script's own folder)

omp_policy.apply_from_argv()  # before torch loads OpenMP

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install
import rnnkit.nn  # noqa: E402

CASES = {  # name: (input I, hidden H, layers L, batch B, steps T, repeats, warm-up)
    "a: I=28 H=256 L=1 B=32 T=35": (28, 256, 1, 32, 35, 31, 3),
    "b: I=64 H=512 L=2 B=64 T=100": (64, 512, 2, 64, 100, 9, 1),
}
CELLS = ("LSTM", "GRU", "RNN")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def contenders(cell: str, I: int, H: int, L: int) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    base = getattr(torch.nn, cell)(I, H, num_layers=L)
    out = {"torch.nn": base}
    for kernel in ("auto", "loop"):
        m = getattr(rnnkit.nn, cell)(I, H, num_layers=L, kernel=kernel)
        m.load_state_dict(base.state_dict())
        label = f"rnnkit {m.kernel}"
        if kernel == "auto" and m.kernel == "fused":
            # the fused kernel is PyTorch's function, or rnnkit's C++ kernel where one serves
            label += " (auto, " + ("torch._VF" if m.fast_path_unavailable("native") else "C++") + ")"
        out[label] = m
    return out


def fwd_bwd_seconds(model: torch.nn.Module, x: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    out, _ = model(x)
    out.sum().backward()
    return time.perf_counter() - t0


def bench_case(cell: str, I: int, H: int, L: int, B: int, T: int, repeats: int, warmup: int):
    models = contenders(cell, I, H, L)
    x = torch.randn(T, B, I)
    for _ in range(warmup):
        for m in models.values():
            fwd_bwd_seconds(m, x)
    names = list(models)
    times = {n: [] for n in names}
    for r in range(repeats):
        for n in names[r % len(names):] + names[:r % len(names)]:  # rotate the order
            times[n].append(fwd_bwd_seconds(models[n], x))
    rows = []
    for n in names:
        tok = [B * T / t for t in times[n]]
        paired = [tb / t for tb, t in zip(times["torch.nn"], times[n])]
        best = min(times["torch.nn"]) / min(times[n])
        rows.append((n, statistics.median(tok), min(tok), max(tok), statistics.median(paired), best))
    return rows


def main(argv=None) -> list[tuple]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 repeats, no warm-up beyond one")
    ap.add_argument("--repeats", type=int, default=None, help="override the repeats of every case")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    omp_policy.add_argument(ap)
    ap.add_argument("--cases", default="ab", help="which cases to run, by letter (default: ab)")
    ap.add_argument("--cells", default=",".join(CELLS), help="comma-separated, default: all")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores, load average {load:.1f}); torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}; Python {platform.python_version()}")
    print("forward+backward tokens/s (tokens = batch * steps), median [min-max] over repeats; "
          "x torch = speed vs torch.nn: median of per-repeat ratios, and best time vs best time\n")
    print("| case | cell | implementation | tokens/s | min-max | x torch (median) | x torch (best) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    results = []
    for case, (I, H, L, B, T, repeats, warmup) in CASES.items():
        if case[0] not in args.cases:
            continue
        if args.quick:
            repeats, warmup = 2, 1
        repeats = args.repeats or repeats
        for cell in args.cells.split(","):
            for name, med, lo, hi, ratio, best in bench_case(cell, I, H, L, B, T, repeats, warmup):
                print(f"| {case} | {cell} | {name} | {med:,.0f} | {lo:,.0f}-{hi:,.0f} | {ratio:.3f} "
                      f"| {best:.3f} |", flush=True)
                results.append((case, cell, name, med, lo, hi, ratio, best))
    return results


if __name__ == "__main__":
    main()
