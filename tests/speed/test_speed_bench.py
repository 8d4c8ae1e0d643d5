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
    for r in rows:
        if r["missing"] is None:
            assert r["fb_min"] <= r["fb_tps"] <= r["fb_max"]
            assert r["fb_gflops"] == pytest.approx(r["fb_peak"] * result["peak_fp32"])
    assert all(g["same"] for g in result["generation"])  # the sampler draws the plain loop's tokens
    with pytest.raises(ValueError, match="--threads must be >= 1, got 0"):
        args.threads = 0
        bench.run(args)
