"""Translation benchmark: test BLEU after a fixed CPU training time (with and without attention),
rnnkit's training step against the same model written plainly in PyTorch, and beam-5 against greedy
decoding time.

    RNNKIT_DATA=../shared/data python benchmarks/bench_translate.py speed           # a few minutes
    RNNKIT_DATA=../shared/data python benchmarks/bench_translate.py quality --minutes 15
    python benchmarks/bench_translate.py report RUN_WITH RUN_WITHOUT                # tables of 2 runs

``quality`` trains the defaults (`rnnkit train --task translate`, English -> French, pairs of at most
10 words) twice, ``--attention general`` (the default) and ``--attention none``, side by side (two
processes at once, ``--threads`` each, so load on a shared machine hits both alike), then prints test
BLEU/chrF greedy and beam 5 (written by each run into test_metrics.json) and the dev BLEU curve
against training time (history.jsonl), which says where attention starts to win.

``speed``: one batch stream, two models with the same weights, timed one training step each in turn
(forward, loss, backward, AdamW step):

1. **rnnkit**: `rnnkit.tasks.translate_model.Seq2Seq` -- the encoder over the padded batch with
   lengths, the decoder over the whole target in one fused-kernel call, attention as two batched
   products, the output layer only at real target positions;
2. **plain PyTorch**: the same layers as ``torch.nn`` modules (``nn.GRU`` with a packed source), the
   decoder called once per target step with attention per step, the output layer and the
   cross-entropy at every position (``ignore_index`` for padding) -- the tutorial way.

Both compute the same loss from the same weights (checked before timing, to 1e-4).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import omp_policy  # noqa: E402  (benchmarks/: the script's own folder)

omp_policy.apply_from_argv()  # before torch loads OpenMP

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rnnkit.tasks.translate import TranslateConfig, load_data  # noqa: E402
from rnnkit.tasks.translate_data import PairBatcher  # noqa: E402
from rnnkit.tasks.translate_model import Seq2Seq  # noqa: E402


# -- the plain PyTorch model --------------------------------------------------------------------
class PlainSeq2Seq(nn.Module):
    """`Seq2Seq`'s maths written the tutorial way, parameter names alike (so weights load)."""

    def __init__(self, vs, vt, hidden=256, embedding=256, dropout=0.2, pad_id=1, tie_weights=False):
        super().__init__()
        self.pad_id, self.hidden = pad_id, hidden
        self.src_embed = nn.Embedding(vs, embedding, padding_idx=pad_id)
        self.encoder = nn.GRU(embedding, hidden, bidirectional=True)
        self.tgt_embed = nn.Embedding(vt, embedding, padding_idx=pad_id)
        self.decoder = nn.GRU(embedding, hidden)
        self.join_memory = nn.Linear(2 * hidden, hidden, bias=False)
        self.join_state = nn.Linear(2 * hidden, hidden)
        self.attention = nn.Module()
        self.attention.w = nn.Linear(hidden, hidden, bias=False)
        self.combine = nn.Linear(2 * hidden, hidden, bias=False)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vt)
        if tie_weights:
            self.head.weight = self.tgt_embed.weight

    def loss(self, src, src_len, tgt_in, tgt_out):
        packed = pack_padded_sequence(self.drop(self.src_embed(src)), src_len, enforce_sorted=False)
        out, h = self.encoder(packed)
        out, _ = pad_packed_sequence(out, total_length=src.shape[0])          # (S, B, 2H)
        memory = self.join_memory(out.transpose(0, 1))                          # (B, S, H)
        keys = self.attention.w(memory)
        state = torch.tanh(self.join_state(torch.cat([h[0], h[1]], -1))).unsqueeze(0)   # (1, B, H)
        mask = torch.arange(src.shape[0]).unsqueeze(0) < src_len.unsqueeze(1)  # (B, S)
        outputs = []
        for t in range(tgt_in.shape[0]):                                        # one step at a time
            o, state = self.decoder(self.drop(self.tgt_embed(tgt_in[t:t + 1])), state)
            q = o[0]                                                            # (B, H)
            scores = torch.bmm(keys, q.unsqueeze(-1)).squeeze(-1).masked_fill(~mask, float("-inf"))
            context = torch.bmm(scores.softmax(-1).unsqueeze(1), memory).squeeze(1)
            outputs.append(self.head(self.drop(torch.tanh(self.combine(torch.cat([context, q], -1))))))
        logits = torch.stack(outputs)                                           # (T, B, V) everywhere
        target = tgt_out
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                               ignore_index=self.pad_id, reduction="sum")
        return loss, int((target != self.pad_id).sum())


def bench_speed(args) -> dict:
    torch.set_num_threads(args.threads)
    cfg = TranslateConfig(data="fra-eng.txt")
    data = load_data(cfg, 0)
    V_s, V_t = len(data.src_vocab), len(data.tgt_vocab)
    torch.manual_seed(0)
    ours = Seq2Seq(V_s, V_t, **cfg.model_kwargs())
    plain = PlainSeq2Seq(V_s, V_t, cfg.hidden, cfg.embedding, cfg.dropout,
                         tie_weights=cfg.model_kwargs()["tie_weights"])
    plain.load_state_dict(ours.state_dict())
    batcher = PairBatcher(data.train, cfg.batch_size, data.src_vocab, data.tgt_vocab, 0)
    check = batcher.next()
    ours.eval(), plain.eval()
    with torch.no_grad():
        a, na = ours.loss(check.src, check.src_len, check.tgt_in, check.tgt_out)
        b, nb = plain.loss(check.src, check.src_len, check.tgt_in, check.tgt_out)
    same = abs(float(a) - float(b)) <= 1e-4 * abs(float(b)) and na == nb
    print(f"same loss from the same weights: rnnkit {float(a) / na:.6f}, plain {float(b) / nb:.6f} "
          f"per token -> {'yes' if same else 'NO'}")
    ours.train(), plain.train()
    opts = {"rnnkit": torch.optim.AdamW(ours.parameters(), 3e-3),
            "plain PyTorch": torch.optim.AdamW(plain.parameters(), 3e-3)}
    models = {"rnnkit": ours, "plain PyTorch": plain}
    times: dict[str, list[float]] = {n: [] for n in models}
    batches = [batcher.next() for _ in range(args.steps + 2)]
    for i, batch in enumerate(batches):
        order = list(models) if i % 2 == 0 else list(models)[::-1]   # alternate who goes first
        for name in order:
            t = time.perf_counter()
            loss, n = models[name].loss(batch.src, batch.src_len, batch.tgt_in, batch.tgt_out)
            opts[name].zero_grad(set_to_none=True)
            (loss / n).backward()
            opts[name].step()
            if i >= 2:                                                 # two warm-up steps
                times[name].append(time.perf_counter() - t)
    med = {n: statistics.median(v) for n, v in times.items()}
    ratio = statistics.median(p / o for o, p in zip(times["rnnkit"], times["plain PyTorch"]))
    print(f"\ntraining step, batch {cfg.batch_size}, GRU {cfg.hidden}, general attention, "
          f"{V_t:,} target words, {args.threads} thread(s), {args.steps} steps each, interleaved:")
    print("| contender | median ms/step (min–max) | rnnkit speed-up |")
    print("|---|---|---|")
    for n, v in times.items():
        print(f"| {n} | {med[n] * 1e3:.0f} ({min(v) * 1e3:.0f}–{max(v) * 1e3:.0f}) | "
              f"{ratio if n == 'rnnkit' else 1.0:.2f}× |")
    return {"same": same, "median_s": med, "ratio": ratio}


# -- quality: two training runs side by side -----------------------------------------------------
def bench_quality(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)      # the runs' logs sit beside their folders
    procs = {}
    for att in ("general", "none"):
        run = out / f"attention-{att}"
        cmd = [sys.executable, "-m", "rnnkit", "train", "--task", "translate", "--attention", att,
               "--minutes", str(args.minutes), "--threads", str(args.threads), "--out", str(run),
               "--no-progress"]
        print(" ".join(cmd[1:]))
        procs[att] = subprocess.Popen(cmd, stdout=open(f"{run}.log", "w"), stderr=subprocess.STDOUT,
                                      cwd=ROOT)
    for p in procs.values():
        p.wait()
    report([out / "attention-general", out / "attention-none"])


def report(runs) -> None:
    print("| attention | steps | test BLEU greedy (multi-ref) | test BLEU beam 5 (multi-ref) "
          "| chrF greedy / beam 5 | greedy s | beam 5 s |")
    print("|---|---|---|---|---|---|---|")
    curves = {}
    for run in map(Path, runs):
        cfg = json.loads((run / "config.json").read_text())
        att = cfg["translate"]["attention"]
        m = json.loads((run / "test_metrics.json").read_text())
        hist = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
        val = [r for r in hist if r.get("split") == "val"]
        elapsed = {r["step"]: r["elapsed"] for r in hist if r.get("split") == "train" and "elapsed" in r}
        curves[att] = [(elapsed.get(r["step"]), r["step"], r["bleu"]) for r in val]
        steps = val[-1]["step"] if val else 0
        print(f"| {att} | {steps:,} | {m['bleu_greedy']:.2f} ({m['bleu_multi_greedy']:.2f}) | "
              f"{m['bleu_beam5']:.2f} ({m['bleu_multi_beam5']:.2f}) | {m['chrf_greedy']:.1f} / "
              f"{m['chrf_beam5']:.1f} | {m['seconds_greedy']:.1f} | {m['seconds_beam5']:.1f} |")
    print("\ndev BLEU (greedy, 500 dev pairs spread over the dev split) against training time:")
    for att, pts in curves.items():
        print(f"  {att}: " + ", ".join(f"{(e or 0) / 60:.1f} min {b:.1f}" for e, _, b in pts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--threads", type=int, default=torch.get_num_threads())
    q = sub.add_parser("quality")
    q.add_argument("--minutes", type=float, default=15)
    q.add_argument("--threads", type=int, default=1)
    q.add_argument("--out", default="runs/bench-translate")
    r = sub.add_parser("report")
    r.add_argument("runs", nargs="+")
    for x in (s, q, r):
        omp_policy.add_argument(x)
    args = p.parse_args()
    if args.what == "speed":
        bench_speed(args)
    elif args.what == "quality":
        bench_quality(args)
    else:
        report(args.runs)


if __name__ == "__main__":
    os.environ.setdefault("RNNKIT_DATA", str(ROOT.parent / "shared" / "data"))
    main()
