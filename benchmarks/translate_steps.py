"""Translation defaults compared at equal step counts (what a busy machine can still measure):
``learn`` trains one variant for ``--steps`` the way `rnnkit train --task translate` does (AdamW with
the trainer's parameter groups, cosine schedule over the run, gradient clipping, the weight average)
and prints the dev BLEU (greedy, single reference, ``eval_sentences`` dev pairs spread over the split:
what the task validates with) of the raw and the averaged weights at each checkpoint; ``time`` times one
training step of several variants interleaved in one process, as ratios to the first.

    RNNKIT_DATA=../shared/data python benchmarks/translate_steps.py learn --steps 400 --evals 200,400 \\
        --set min_freq=5 --set tie_weights=true
    RNNKIT_DATA=../shared/data python benchmarks/translate_steps.py time \\
        'old=min_freq=2,tie_weights=false,batch_size=64' 'new='

A variant is ``--set NAME=VALUE`` (learn) or ``label=NAME=VALUE,...`` (time) over `TranslateConfig`'s
and `TrainConfig`'s fields; unset fields keep the current defaults. The plain PyTorch reference
trained the same way is `benchmarks/translate_reference.py`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rnnkit.tasks.translate import (TranslateConfig, bleu_scores, dev_sample, load_data,  # noqa: E402
                                   translate_tokens)
from rnnkit.tasks.translate_data import PairBatcher  # noqa: E402
from rnnkit.tasks.translate_model import Seq2Seq  # noqa: E402
from rnnkit.train.config import TrainConfig  # noqa: E402
from rnnkit.train.optim import Schedule, build_optimizer, clip_grad_norm  # noqa: E402

TASK_FIELDS = {f.name for f in dataclasses.fields(TranslateConfig)}
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def parse_settings(items: list[str]) -> tuple[dict, dict]:
    """``["min_freq=5", "lr=0.001"]`` -> (task options, trainer options), values read as JSON."""
    task, train = {}, {}
    for item in items:
        name, _, text = item.partition("=")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if name in TASK_FIELDS:
            task[name] = value
        elif name in TRAIN_FIELDS:
            train[name] = value
        else:
            raise SystemExit(f"unknown setting {name!r}: not a TranslateConfig or TrainConfig field")
    return task, train


class Variant:
    """A model, its optimizer and its batches, set up as the task and the trainer set them up."""

    def __init__(self, task_opts: dict, train_opts: dict, steps: int, data_cache: dict):
        self.cfg = TranslateConfig(**task_opts)
        self.tr = TrainConfig(**{**train_opts, "steps": steps})
        key = (self.cfg.min_freq, self.cfg.max_len, self.cfg.reverse)
        if key not in data_cache:
            data_cache[key] = load_data(self.cfg, self.tr.seed)
        self.data = d = data_cache[key]
        torch.manual_seed(self.tr.seed)
        self.model = Seq2Seq(len(d.src_vocab), len(d.tgt_vocab), pad_id=d.tgt_vocab.pad_id,
                             **self.cfg.model_kwargs())
        self.opt = build_optimizer(self.model, self.tr)
        self.schedule = Schedule(self.opt, self.tr, total_steps=steps)
        self.params = [p for g in self.opt.param_groups for p in g["params"]]
        self.ema = [p.detach().clone() for p in self.params] if self.tr.ema else None
        self.batches = PairBatcher(d.train, self.cfg.batch_size, d.src_vocab, d.tgt_vocab, self.tr.seed)
        self.generator = torch.Generator().manual_seed(self.tr.seed)
        self.step = 0

    def train_step(self, batch=None) -> float:
        b = batch if batch is not None else self.batches.next()
        loss, n = self.model.loss(b.src, b.src_len, b.tgt_in, b.tgt_out,
                                  teacher_forcing=self.cfg.teacher_forcing, generator=self.generator)
        self.opt.zero_grad(set_to_none=True)
        (loss / n).backward()
        if self.tr.clip > 0:
            clip_grad_norm(self.params, self.tr.clip)
        self.opt.step()
        self.step += 1
        self.schedule.set(self.step)
        if self.ema is not None:      # the trainer's average, its decay warmed up the same way
            decay = min(self.tr.ema, self.step / (9 + self.step))
            with torch.no_grad():
                torch._foreach_lerp_(self.ema, [p.detach() for p in self.params], 1 - decay)
        return float(loss.detach()) / n

    def dev_bleu(self, averaged: bool) -> float:
        d, raw = self.data, None
        if averaged:
            raw = [p.detach().clone() for p in self.params]
            with torch.no_grad():
                torch._foreach_copy_([p.detach() for p in self.params], self.ema)
        part = dev_sample(d.dev, self.cfg.eval_sentences)
        hyps = translate_tokens(self.model, d.src_vocab, d.tgt_vocab, [p.src for p in part], self.cfg.max_len)
        if raw is not None:
            with torch.no_grad():
                torch._foreach_copy_([p.detach() for p in self.params], raw)
        return bleu_scores(part, hyps)["bleu"]


def learn(args) -> None:
    task_opts, train_opts = parse_settings(args.set)
    v = Variant(task_opts, train_opts, args.steps, {})
    evals = sorted({int(x) for x in args.evals.split(",")} | {args.steps})
    spent, label = 0.0, " ".join(args.set) or "defaults"
    for step in range(1, args.steps + 1):
        t = time.perf_counter()
        loss = v.train_step()
        spent += time.perf_counter() - t
        if step in evals:
            bleu = {"raw": v.dev_bleu(False)}
            if v.ema is not None:
                bleu["averaged"] = v.dev_bleu(True)
            print(f"[{label}] step {step}: train loss {loss:.3f}, dev BLEU " +
                  ", ".join(f"{k} {b:.2f}" for k, b in bleu.items()) + f"; {spent / step:.3f} s/step",
                  flush=True)


def time_variants(args) -> None:
    cache: dict = {}
    variants = {}
    for spec in args.variants:
        label, _, rest = spec.partition("=")
        variants[label] = Variant(*parse_settings([s for s in rest.split(",") if s]), args.steps + 2, cache)
    batches = {k: [v.batches.next() for _ in range(args.steps + 2)] for k, v in variants.items()}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(args.steps + 2):
        order = list(variants) if i % 2 == 0 else list(variants)[::-1]   # alternate who goes first
        for k in order:
            t = time.perf_counter()
            variants[k].train_step(batches[k][i])
            if i >= 2:                                                 # two warm-up steps
                times[k].append(time.perf_counter() - t)
    first = next(iter(times))
    print(f"training step, {torch.get_num_threads()} thread(s), {args.steps} steps each, interleaved:")
    print(f"| variant | target words | median ms/step | step time / {first} |")
    print("|---|---|---|---|")
    for k, ts in times.items():
        ratio = statistics.median(a / b for a, b in zip(ts, times[first]))
        words = len(variants[k].data.tgt_vocab)
        print(f"| {k} | {words:,} | {statistics.median(ts) * 1e3:.0f} | {ratio:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("learn")
    a.add_argument("--steps", type=int, default=400)
    a.add_argument("--evals", default="200", help="steps at which to score the dev pairs (and the last)")
    a.add_argument("--set", action="append", default=[], help="NAME=VALUE over the defaults")
    t = sub.add_parser("time")
    t.add_argument("variants", nargs="+", help="label=NAME=VALUE,NAME=VALUE (the first is the baseline)")
    t.add_argument("--steps", type=int, default=10)
    for x in (a, t):
        x.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    learn(args) if args.what == "learn" else time_variants(args)


if __name__ == "__main__":
    os.environ.setdefault("RNNKIT_DATA", str(ROOT.parent / "shared" / "data"))
    main()
