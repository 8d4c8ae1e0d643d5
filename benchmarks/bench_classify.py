"""Text classification on the UCI "Sentiment Labelled Sentences" (3,000 sentences): rnnkit's defaults
against TF-IDF + logistic regression, 10-fold cross-validated; and one training step of the classifier
against the same model written plainly in PyTorch (torch.nn.LSTM on a PackedSequence).

    .venv/bin/python benchmarks/bench_classify.py                  # both tables (an hour on 2 busy cores)
    .venv/bin/python benchmarks/bench_classify.py --speed-only     # the step-time table (a minute)
    .venv/bin/python benchmarks/bench_classify.py --jobs 2         # folds in 2 processes
    ... --accuracy-only --set ngrams=262144                       # rnnkit with an option changed

Accuracy: every fold trains ``rnnkit train --task classify`` with nothing but ``--folds 10 --fold i``
(and the options ``--set`` changes; the defaults: early stopping on a validation slice of the fold's
training part; the fold's test part is never seen until the end). The baseline sees the same
training part (validation slice included) and picks its regularisation C by 5-fold cross-validation
inside it. scikit-learn is used for the baseline only.

Speed: the same architecture (embedding -> bidirectional LSTM or GRU with lengths -> max over time ->
dense; no subword features, which the plain model lacks), the same weights' shapes, the same bucketed
batches of real sentences; forward, backward and an AdamW step, one CPU thread, the two
implementations interleaved round by round; the median per step.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.data.padded import BucketBatcher, pad_batch
from rnnkit.tasks import classify
from rnnkit.tasks.classify.config import ClassifyConfig
from rnnkit.tasks.classify.data import (
    Examples, build_vocab, encode, find_files, read_labelled, stratified_split)

DATA = Path(os.environ.get("RNNKIT_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


def load_pool(folder: Path) -> Examples:
    ex = Examples()
    for p in find_files(folder)["pool"]:
        ex.extend(read_labelled(p))
    return ex


# -- accuracy --------------------------------------------------------------------------------------
def rnnkit_fold(args: tuple[str, int, int, int, dict]) -> dict:
    data, folds, fold, seed, options = args
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        classify.train(data=data, folds=folds, fold=fold, seed=seed, out=Path(tmp) / "run", progress=False,
                       echo=None, **options)
        seconds = time.perf_counter() - t0
        r = classify.evaluate(Path(tmp) / "run", split="test")
    return {"fold": fold, "accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "seconds": seconds,
            "examples": r["examples"]}


def baseline_fold(ex: Examples, folds: int, fold: int) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    # the same test fold as rnnkit's (same seed, same stratified dealing)
    cfg = ClassifyConfig(data="-", folds=folds, fold=fold)
    tr, va, te = stratified_split(ex.labels, val_fraction=cfg.val_fraction, test_fraction=0.0,
                                  folds=folds, fold=fold, seed=cfg.split_seed)
    train = tr + va
    model = make_pipeline(TfidfVectorizer(), LogisticRegressionCV(Cs=[0.1, 1, 10, 100], cv=5,
                                                                  scoring="accuracy", max_iter=2000))
    with warnings.catch_warnings():   # scikit-learn 1.9 announces default changes of LogisticRegressionCV
        warnings.simplefilter("ignore", FutureWarning)
        model.fit([ex.texts[i] for i in train], [ex.labels[i] for i in train])
    gold = [ex.labels[i] for i in te]
    pred = model.predict([ex.texts[i] for i in te])
    return {"fold": fold, "accuracy": accuracy_score(gold, pred),
            "macro_f1": f1_score(gold, pred, average="macro")}


def summary(rows: list[dict], key: str) -> str:
    v = [r[key] for r in rows]
    return f"{100 * statistics.mean(v):.1f} ± {100 * statistics.stdev(v):.1f}"


def accuracy_table(data: Path, folds: int, jobs: int, seed: int = 0, options: dict | None = None) -> str:
    options = options or {}
    ex = load_pool(data)
    t0 = time.perf_counter()
    base = [baseline_fold(ex, folds, k) for k in range(folds)]
    base_s = time.perf_counter() - t0
    work = [(str(data), folds, k, seed, options) for k in range(folds)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            futures = [pool.submit(rnnkit_fold, w) for w in work]
            for f in as_completed(futures):
                r = f.result()
                print(f"  fold {r['fold']}: rnnkit {r['accuracy']:.4f} ({r['seconds']:.0f} s), "
                      f"baseline {base[r['fold']]['accuracy']:.4f}", file=sys.stderr, flush=True)
            ours = [f.result() for f in futures]
    else:
        ours = []
        for w in work:
            ours.append(rnnkit_fold(w))
            print(f"  fold {w[2]}: rnnkit {ours[-1]['accuracy']:.4f} ({ours[-1]['seconds']:.0f} s), "
                  f"baseline {base[w[2]]['accuracy']:.4f}", file=sys.stderr, flush=True)
    defaults = ClassifyConfig()
    lines = [f"{folds}-fold cross-validation on {len(ex):,} sentences ({data.name}), mean ± standard "
             f"deviation over the folds:", "",
             "| model | accuracy % | macro-F1 % | training time per fold |",
             "| --- | --- | --- | --- |",
             f"| rnnkit defaults: word {'Bi' if defaults.bidirectional else ''}{defaults.cell.upper()} "
             f"{defaults.hidden}, {defaults.pooling} pooling, word dropout {defaults.word_dropout:g}"
             f"{f', subword n-grams ({defaults.subwords:,} buckets)' if defaults.subwords else ''}"
             f"{f', NBSVM branch ({defaults.ngrams:,} buckets)' if defaults.ngrams else ''}"
             f"{f', ensemble of {defaults.ensemble}' if defaults.ensemble > 1 else ''}"
             f"{''.join(f'; --{k.replace(chr(95), chr(45))} {v}' for k, v in options.items())} | "
             f"{summary(ours, 'accuracy')} | {summary(ours, 'macro_f1')} | "
             f"{statistics.mean(r['seconds'] for r in ours):.0f} s |",
             f"| TF-IDF + logistic regression (scikit-learn, C by inner 5-fold CV) | "
             f"{summary(base, 'accuracy')} | {summary(base, 'macro_f1')} | {base_s / folds:.1f} s |",
             "", "per fold (accuracy): rnnkit " + " ".join(f"{r['accuracy']:.3f}" for r in ours)
             + "; baseline " + " ".join(f"{r['accuracy']:.3f}" for r in base)]
    return "\n".join(lines)


# -- speed -----------------------------------------------------------------------------------------
class PlainClassifier(nn.Module):
    """The same model written plainly in PyTorch: nn.Embedding, nn.LSTM/GRU on a PackedSequence,
    max over the valid steps, nn.Linear."""

    def __init__(self, vocab_size, num_classes, cell, hidden, embedding, dropout):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(embedding, hidden, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, num_classes)

    def forward(self, ids, lengths):
        x = self.drop(self.embed(ids.t()))                                # (T, B, E)
        out, _ = self.rnn(pack_padded_sequence(x, lengths, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, padding_value=float("-inf"))    # (T, B, 2H)
        return self.head(self.drop(out.amax(0)))


def step_time(model, batches, rounds_out: list, steps: int) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    t0 = time.perf_counter()
    for ids, lengths, y in batches[:steps]:
        loss = F.cross_entropy(model(ids, lengths), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    rounds_out.append((time.perf_counter() - t0) / steps)


def speed_table(data: Path, rounds: int = 7, steps: int = 20) -> str:
    torch.set_num_threads(1)
    ex = load_pool(data)
    cfg = ClassifyConfig(data=str(data))
    vocab = build_vocab(cfg, ex.texts)
    x = encode(vocab, ex, cfg.max_len)
    labels = sorted(set(ex.labels))
    y = np.array([labels.index(v) for v in ex.labels])
    batcher = BucketBatcher([len(s) for s in x], cfg.batch_size, seed=0)
    batches = []
    for idx in batcher:
        ids, lengths = pad_batch([x[i] for i in idx], vocab.pad_id)
        batches.append((ids, lengths, torch.from_numpy(y[idx])))
    lines = ["| model (word, bidirectional, max pooling, batch 32) | rnnkit ms/step | PyTorch ms/step | "
             "PyTorch / rnnkit |", "| --- | --- | --- | --- |"]
    for cell in ("lstm", "gru"):
        torch.manual_seed(0)
        ours = classify.TextClassifier(len(vocab), len(labels), cell=cell, hidden=cfg.hidden,
                                       embedding=cfg.embedding, pooling="max", dropout=cfg.dropout)
        plain = PlainClassifier(len(vocab), len(labels), cell, cfg.hidden, cfg.embedding, cfg.dropout)
        t_ours: list[float] = []
        t_plain: list[float] = []
        step_time(ours, batches, [], 3)                                    # warm-up
        step_time(plain, batches, [], 3)
        for r in range(rounds):
            sample = [batches[(r * steps + i) % len(batches)] for i in range(steps)]
            step_time(ours, sample, t_ours, steps)
            step_time(plain, sample, t_plain, steps)
        a, b = statistics.median(t_ours) * 1e3, statistics.median(t_plain) * 1e3
        lines.append(f"| Bi{cell.upper()} {cfg.hidden}, embedding {cfg.embedding} | {a:.1f} | {b:.1f} | "
                     f"{b / a:.2f} |")
    return "\n".join(lines)


def parse_sets(items: list[str]) -> dict:
    """``["ngrams=262144", "cell=lstm"]`` -> options with the types of `ClassifyConfig`'s defaults."""
    fields = {f.name: f for f in dataclasses.fields(ClassifyConfig)}
    out: dict = {}
    for item in items:
        name, eq, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not eq or name not in fields:
            raise SystemExit(f"--set: expected OPTION=VALUE with OPTION one of {sorted(fields)}, "
                             f"got {item!r}")
        default = getattr(ClassifyConfig(), name)
        kind = type(default) if default is not None else str
        out[name] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA / "sentiment-labelled-sentences")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--jobs", type=int, default=1, help="folds trained in parallel processes")
    p.add_argument("--seed", type=int, default=0, help="rnnkit's training seed (the folds stay the same)")
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                   help="train rnnkit with this option changed from its default (repeatable), e.g. "
                        "--set ngrams=262144")
    p.add_argument("--speed-only", action="store_true")
    p.add_argument("--accuracy-only", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the tables here")
    args = p.parse_args(argv)
    if not args.data.is_dir():
        print(f"data folder {args.data} not found; set RNNKIT_DATA or --data", file=sys.stderr)
        return 2
    out = {}
    if not args.speed_only:
        out["accuracy"] = accuracy_table(args.data, args.folds, args.jobs, args.seed, parse_sets(args.set))
        print(out["accuracy"] + "\n", flush=True)
    if not args.accuracy_only:
        out["speed"] = speed_table(args.data)
        print(out["speed"], flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
