"""``--omp-passive``, shared by the benchmark scripts: idle OpenMP threads sleep instead of spinning
(``OMP_WAIT_POLICY=PASSIVE``). On a machine shared with other jobs spinning threads make
multi-threaded timings swing by 10-50x; on a quiet one sleeping threads make every small call slower
(about 2-2.5x per step at the small configurations). Off by default, as users run.

OpenMP reads the variable when torch loads it, so a script calls `apply_from_argv()` before
``import torch`` and `add_argument(parser)` when it builds its parser."""
import os
import sys

FLAG = "--omp-passive"
HELP = ("OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spinning; steadier on a "
        "machine shared with other jobs, slower per call (off by default, as users run)")


def apply_from_argv() -> None:
    if FLAG in sys.argv:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def add_argument(parser) -> None:
    parser.add_argument(FLAG, action="store_true", help=HELP)
