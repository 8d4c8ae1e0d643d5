"""Speed and learning of the modern cells (issue 5), beside PyTorch's fused LSTM.

    python benchmarks/bench_cells.py [--only speed,scan,learn] [--repeats 5] [--lm-seconds 60]

Three tables, all measured in this one process, the contenders interleaved (round-robin, so a
slow phase of a busy machine hits all of them alike), each number the median of the repeats:

1. speed: training tokens/s (forward + backward of the recurrent layers on random input) of every
   cell against ``torch.nn.LSTM`` (fused, oneDNN) of the same size. Configs (a) and (b) are those of
   the core benchmark; (m64) and (m512) are the minGRU/minLSTM target, hidden 512, batch 32,
   T=1000, with the input width of a character model's embedding (64) and of a stacked layer (512).
2. scan: the three scan algorithms of `rnnkit.core.scan` for minGRU at several (T, B, H) and
   thread counts, and what ``choose_algorithm`` picks — the measurements behind that choice.
3. learn: each cell as a character language model of The Time Machine (letters and space, 28
   tokens) trained by `rnnkit.tasks.language_model` for the same wall-clock budget: validation
   perplexity beside training tokens/s. Needs ``RNNKIT_DATA`` (or ../shared/data) for the text.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnnkit.cells import MinGRUCell  # noqa: E402
from rnnkit.core import RecurrentStack, scan  # noqa: E402

#          I    H    L   B    T
CONFIGS = {"a": (28, 256, 1, 32, 35), "b": (64, 512, 2, 64, 100),
           "m64": (64, 512, 1, 32, 1000), "m512": (512, 512, 1, 32, 1000)}
CELLS_AB = ("lstm", "gru", "lnlstm", "lngru", "indrnn", "mingru", "minlstm")
CELLS_M = ("mingru", "minlstm")
LM_CELLS = ("lstm", "gru", "rnn", "lnlstm", "lngru", "indrnn", "mingru", "minlstm")


def interleaved(fns: dict, repeats: int, warmup: int = 1) -> dict:
    """Median seconds of each function, called round-robin ``repeats`` times after a warm-up."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            start = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def train_step(m, x):
    def f():
        out, _ = m(x)
        out.sum().backward()
        m.zero_grad(set_to_none=True)
    return f


def speed_table(repeats: int) -> list[dict]:
    rows = []
    for name, (I, H, L, B, T) in CONFIGS.items():
        torch.manual_seed(0)
        x = torch.randn(T, B, I)
        cells = CELLS_M if name.startswith("m") else CELLS_AB
        models = {"torch.nn.LSTM (fused)": torch.nn.LSTM(I, H, L)}
        models.update({c: RecurrentStack(c, I, H, L) for c in cells})
        # short configs are noisy on a shared machine: more repeats; long ones: fewer
        n = {"a": 3 * repeats, "b": repeats}.get(name, max(3, repeats // 2))
        secs = interleaved({k: train_step(m, x) for k, m in models.items()}, n)
        base = secs["torch.nn.LSTM (fused)"]
        for k, s in secs.items():
            kernel = models[k].kernel if isinstance(models[k], RecurrentStack) else "fused"
            rows.append({"config": name, "I,H,L,B,T": f"{I},{H},{L},{B},{T}", "cell": k,
                         "kernel": kernel, "tokens/s": round(T * B / s),
                         "x fused LSTM": round(base / s, 2)})
            print(rows[-1], flush=True)
    return rows


def scan_table(repeats: int) -> list[dict]:
    rows = []
    threads0 = torch.get_num_threads()
    for threads in sorted({1, threads0}):
        torch.set_num_threads(threads)
        for T, B, H in ((1000, 32, 512), (1000, 8, 128), (1000, 1, 64), (100, 32, 512),
                        (4000, 4, 64)):
            torch.manual_seed(0)
            cell = MinGRUCell(H, H)
            x = torch.randn(T, B, H)
            h0 = torch.zeros(B, H)

            def run(algorithm):
                def f():
                    xp = cell.project_inputs(x)
                    out, _ = scan.run_scan(cell, xp, (h0,), None, "zero", algorithm)
                    out.sum().backward()
                    cell.zero_grad(set_to_none=True)
                return f
            secs = interleaved({a: run(a) for a in scan.ALGORITHMS[1:]}, repeats)
            row = {"threads": threads, "T,B,H": f"{T},{B},{H}",
                   **{f"{a} ms": round(s * 1e3, 1) for a, s in secs.items()},
                   "fastest": min(secs, key=secs.get),
                   "auto picks": scan.choose_algorithm(T, B, H, threads=threads)}
            rows.append(row)
            print(row, flush=True)
    torch.set_num_threads(threads0)
    return rows


def learn_table(seconds: float) -> list[dict]:
    from rnnkit.tasks import language_model
    from rnnkit.train.trainer import TrainingDiverged
    rows = []
    for cell in LM_CELLS:
        with tempfile.TemporaryDirectory() as tmp:
            note = ""
            try:
                result = language_model.train(
                    "timemachine", out=Path(tmp) / "run", progress=False, echo=None, cell=cell,
                    letters_only=True, minutes=seconds / 60, sample_length=0,
                    threads=torch.get_num_threads(), seed=0)
                steps, best = result.step, result.best
            except TrainingDiverged as e:  # a finding to report, not a reason to stop the table
                note, steps, best = f"diverged at step {e.step}", e.step, None
            history = [json.loads(line) for line in open(Path(tmp) / "run" / "history.jsonl")]
        speeds = [r["tokens_per_s"] for r in history if r.get("split") == "train"]
        vals = [r["ppl"] for r in history if r.get("split") == "val"]
        best_ppl = best["ppl"] if best else (min(vals) if vals else None)
        rows.append({"cell": cell, "steps": steps,
                     "train tokens/s": round(statistics.median(speeds)) if speeds else None,
                     "best val ppl": round(best_ppl, 3) if best_ppl else None, "note": note})
        print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default="speed,scan,learn", help="tables to make (comma-separated)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per contender")
    p.add_argument("--lm-seconds", type=float, default=60.0, help="training budget per cell")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("RNNKIT_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    tables = {}
    only = args.only.split(",")
    if "speed" in only:
        tables["speed"] = speed_table(args.repeats)
    if "scan" in only:
        tables["scan"] = scan_table(args.repeats)
    if "learn" in only:
        tables["learn"] = learn_table(args.lm_seconds)
    for name, rows in tables.items():
        print(f"\n## {name}\n\n{markdown(rows)}")


if __name__ == "__main__":
    main()
