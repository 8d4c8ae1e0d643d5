"""Does bf16 cost the language model accuracy? Train the same character-level LSTM language model
(2 layers, 512 wide, Time Machine text) from the same seed in fp32 and in bf16
(``precision="bf16"``: rnnkit.core.precision.autocast around embedding, stack and head) and compare
the final validation loss and the time per training step.

    RNNKIT_DATA=../shared/data python benchmarks/bench_bf16_lm.py [--steps 300]
"""
import argparse
import os
import sys
import time
from pathlib import Path

import omp_policy  # noqa: E402  (benchmarks/: the script's own folder)

omp_policy.apply_from_argv()  # before torch loads OpenMP
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import rnnkit.nn  # noqa: E402
from rnnkit.core.precision import autocast  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    omp_policy.add_argument(ap)
    ap.add_argument("--cell", default="LSTM", choices=["LSTM", "GRU", "RNN"])
    args = ap.parse_args()
    data = Path(os.environ.get("RNNKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    text = (data / "timemachine.txt").read_text(encoding="utf-8").lower()
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text])
    split = int(0.9 * len(ids))
    train, val = ids[:split], ids[split:]
    V, B, T = len(chars), 64, 100
    results = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        emb = nn.Embedding(V, 64)
        rnn = getattr(rnnkit.nn, args.cell)(64, 512, 2, precision=precision)
        head = nn.Linear(512, V)
        params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
        opt = torch.optim.Adam(params, lr=2e-3)
        g = torch.Generator().manual_seed(1)

        def loss_of(chunk):  # chunk (B, T+1)
            x, y = chunk[:, :-1].t(), chunk[:, 1:].t()
            with autocast(precision):
                out, _ = rnn(emb(x))
                logits = head(out)
            return nn.functional.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))

        t0 = time.perf_counter()
        for _ in range(args.steps):
            starts = torch.randint(0, len(train) - T - 1, (B,), generator=g)
            chunk = torch.stack([train[s:s + T + 1] for s in starts])
            loss = loss_of(chunk)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        step_s = (time.perf_counter() - t0) / args.steps
        with torch.no_grad():
            n = (len(val) - 1) // (T + 1) * (T + 1)
            chunks = val[:n + 1][:n].view(-1, T + 1)
            val_loss = float(loss_of(chunks))
        results[precision] = (val_loss, step_s)
        print(f"{precision}: validation loss {val_loss:.4f} nats/char, {step_s * 1e3:.0f} ms/step",
              flush=True)
    (l32, s32), (l16, s16) = results["fp32"], results["bf16"]
    print(f"bf16 vs fp32: validation loss {100 * (l16 - l32) / l32:+.2f}%, speed {s32 / s16:.2f}x")


if __name__ == "__main__":
    main()
