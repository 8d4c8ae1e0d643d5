"""How many fuzzed inputs make a loader raise something other than rnnkit's own errors? The loaders
and payloads of ``tests/reliability/test_fuzz_loaders.py`` (each loader called directly, without the
training flow's `rnnkit.errors.data_errors` boundary), the same seeded examples; where the test
stops at the first foreign exception, this counts them all, by type and raising line.

    python benchmarks/fuzz_counts.py [--examples 150] [LOADER-NAME-PART ...]

Prints one block per loader and a Markdown table (the README's reliability table quotes it).
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "reliability"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=150, help="fuzzed inputs per loader")
    parser.add_argument("only", nargs="*", help="loaders whose name contains one of these")
    args = parser.parse_args()
    os.environ["RNNKIT_FUZZ_EXAMPLES"] = str(args.examples)   # read when the test module is imported
    from hypothesis import given

    import test_fuzz_loaders as fuzz_tests
    from rnnkit.errors import RnnkitError

    rows = []
    for name, sample, call in fuzz_tests.LOADERS:
        if args.only and not any(part in name for part in args.only):
            continue
        foreign: collections.Counter = collections.Counter()
        first: dict[tuple[str, str], str] = {}
        cases = [0]
        suffix = getattr(call, "suffix", ".txt")

        @fuzz_tests.FUZZ
        @given(fuzz_tests.payloads(sample.encode("utf-8")))
        def run(data: bytes) -> None:
            cases[0] += 1
            with tempfile.TemporaryDirectory() as d:
                path = Path(d) / ("input" + suffix)
                path.write_bytes(data)
                try:
                    call(path)
                except RnnkitError:
                    pass
                except Exception as exc:  # noqa: BLE001 -- counting exactly these is the point
                    frame = traceback.extract_tb(exc.__traceback__)[-1]
                    kind = type(exc).__qualname__
                    if type(exc).__module__ not in ("builtins", "_csv"):
                        kind = f"{type(exc).__module__}.{kind}"
                    elif type(exc).__module__ == "_csv":
                        kind = f"csv.{kind}"
                    key = (kind, f"{Path(frame.filename).name}:{frame.lineno}")
                    foreign[key] += 1
                    first.setdefault(key, str(exc)[:120])

        run()
        total = sum(foreign.values())
        print(f"{name}: {cases[0]} cases, {total} foreign exceptions", flush=True)
        for (kind, where), n in foreign.most_common():
            print(f"    {n:4d} {kind} at {where}: {first[(kind, where)]}")
        by_kind: collections.Counter = collections.Counter()
        for (kind, _), n in foreign.items():
            by_kind[kind] += n
        kinds = ", ".join(f"{n} {k}" for k, n in by_kind.most_common())
        rows.append((name, cases[0], total, kinds))
    print("\n| loader | cases | foreign exceptions |\n| --- | --- | --- |")
    for name, cases, total, kinds in rows:
        print(f"| {name} | {cases} | {total}{f' ({kinds})' if kinds else ''} |")


if __name__ == "__main__":
    main()
