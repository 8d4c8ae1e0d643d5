"""`rnnkit bench` (`rnnkit.cli.bench` over `rnnkit.cli.speedtable`) on tiny sizes: every contender runs,
the table has a row per contender, and the figures are consistent with each other. No time is
asserted (benchmarks are not tests)."""
from __future__ import annotations

import argparse
import functools

import pytest
import torch

from rnnkit.cli import speedtable as benchmark
from rnnkit.cli import bench


def test_flops_count_matches_a_hand_count():
    # LSTM, 2 layers, I=3, H=5: 2*4*5*(3+5) + 2*4*5*(5+5)
    assert benchmark.flops_per_token("LSTM", 3, 5, 2) == 320 + 400


def test_bench_command_prints_the_whole_table(monkeypatch):
    monkeypatch.setattr(benchmark, "CONFIGS", {"a": (3, 8, 2, 2, 4)})
    monkeypatch.setattr(benchmark, "bench_generation",
                        functools.partial(benchmark.bench_generation, H=8, batches=(1, 2)))
    parser = argparse.ArgumentParser()
    bench.add_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "--quick", "--threads", "1"])
    threads = torch.get_num_threads()
    try:
        result = args.handler(args)
    finally:
        torch.set_num_threads(threads)
    rows = result["training"]
    assert {(r["cell"], r["contender"]) for r in rows} == {
        (c, n) for c in benchmark.CELLS for n in benchmark.CONTENDERS}
    assert all(r["fb_tps"] > 0 and r["fw_tps"] > 0 for r in rows if r["missing"] is None)
    # fp32: the plain loop's tokens; bf16 draws its own
    assert all(g["same"] for g in result["generation"] if g["same"] is not None)
    assert {g["contender"] for g in result["generation"] if g["same"] is None} == {"rnnkit Sampler bf16"}
    with pytest.raises(ValueError, match="--threads must be >= 1, got 0"):
        args.threads = 0
        bench.run(args)


def test_figures_follow_the_timings(monkeypatch):
    """With the clock replaced by known times, every figure of a row is recomputed here by hand:
    tokens/s from the median time, the spread from the extremes, GFLOP/s from a hand count of the
    LSTM's multiply-adds (forward + backward = 3x forward), the share of the peak, the ratio to
    torch.nn from the paired times."""
    times = {"rnnkit": [0.5, 0.25, 1.0], "torch.nn": [1.0, 1.0, 2.0]}
    monkeypatch.setattr(benchmark, "CONFIGS", {"a": (3, 5, 2, 2, 4)})   # I, H, L, B, T
    monkeypatch.setattr(benchmark, "CELLS", ("LSTM",))
    monkeypatch.setattr(benchmark, "time_interleaved",
                        lambda fns, repeats, warmup: {n: times.get(n, [1.0, 1.0, 1.0]) for n in fns})
    rows = benchmark.bench_training(["a"], repeats=3, warmup=0, peak=2.0, out=lambda s: None)
    (r,) = [r for r in rows if r["contender"] == "rnnkit"]
    tokens, flops = 2 * 4, 2 * 4 * 5 * (3 + 5) + 2 * 4 * 5 * (5 + 5)     # B*T; two LSTM layers
    assert r["fb_tps"] == pytest.approx(tokens / 0.5)
    assert (r["fb_min"], r["fb_max"]) == pytest.approx((tokens / 1.0, tokens / 0.25))
    assert r["fb_gflops"] == pytest.approx(tokens * 3 * flops / 0.5 / 1e9)
    assert r["fw_gflops"] == pytest.approx(tokens * flops / 0.5 / 1e9)
    assert r["fb_peak"] == pytest.approx(tokens * 3 * flops / 0.5 / 1e9 / 2.0)
    assert r["ratio_fb"] == pytest.approx(2.0)       # median of 1/0.5, 1/0.25, 2/1
