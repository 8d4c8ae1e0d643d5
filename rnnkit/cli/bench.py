"""``rnnkit bench``: the speed table (training, inference, generation, memory) of this machine.

The same table as ``benchmarks/bench_speed.py``; the measuring is `rnnkit.cli.speedtable`."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="time rnnkit's kernels against torch.nn, a textbook "
                                            "loop and Keras 3 on this machine",
                              description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="configuration (a) and a short generation only (about a minute)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory probes (each runs in a fresh process)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's own choice, one per core)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time (default), or process CPU time: with --threads 1 the work done, "
                        "steady on a machine shared with other processes")
    p.set_defaults(handler=run)
    return p


def run(args) -> dict:
    import torch

    from rnnkit.cli import speedtable as benchmark
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    return benchmark.run(quick=args.quick, memory=not args.no_memory, clock_name=args.clock)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_speed")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    args = parser.parse_args(["bench"] + list(argv if argv is not None else __import__("sys").argv[1:]))
    run(args)
    return 0
