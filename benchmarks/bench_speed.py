"""The speed table of the README: rnnkit's kernels against torch.nn, a textbook loop and Keras 3.

    python benchmarks/bench_speed.py            # everything (~10 minutes on 2 cores)
    python benchmarks/bench_speed.py --quick    # configuration (a) and a short generation only
    python benchmarks/bench_speed.py --threads 1 --clock cpu   # steady on a shared machine

On a machine shared with other processes, wall-clock timings of multi-threaded code swing by 10×
or more (see the min–max columns); one thread timed by its process's CPU time measures the work
itself and keeps ratios steady.

Same table as ``rnnkit bench``; what is measured and how: `rnnkit.cli.speedtable`. Benchmarks are not
tests: nothing asserts a time.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from rnnkit.cli.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
