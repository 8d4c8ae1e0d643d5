"""Tagging benchmark on UD English EWT (UPOS): baselines, a budgeted training run, and the training
step of the tagger against the same model written plainly in PyTorch.

    RNNKIT_DATA=../shared/data python benchmarks/bench_tag.py baselines
    RNNKIT_DATA=../shared/data python benchmarks/bench_tag.py train --minutes 15 [--threads 1]
    RNNKIT_DATA=../shared/data python benchmarks/bench_tag.py speed [--threads 1]

``baselines``: the most-frequent-tag tagger (each training word's most frequent tag; an unknown word
gets the most frequent tag of all), and the same with suffix rules for unknown words (numbers get the
tag numbers get; a word known in another case that word's tag; other words the most frequent tag of
training words rarer than 3 occurrences that share the longest suffix, up to 3 characters, and the
capitalisation). ``train``: ``rnnkit train
--task tag`` with the default options for ``--minutes``, then ``rnnkit evaluate`` on the test split,
printed beside the baselines and UDPipe 2's published 97.5% (multilingual BERT inside).
``speed``: one training step (forward, loss, backward, AdamW step) of `rnnkit.tasks.tag_model.Tagger`
and of ``PlainTagger`` below (``torch.nn.LSTM`` + ``pack_padded_sequence``, the same parameters:
their weights are copied across and their losses compared first), both learning the tags alone, and
of the default tagger with its auxiliary output layers (``--aux-cols auto``), timed in turn on the
same batches of real sentences, so load on a shared machine hits all alike.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import omp_policy  # noqa: E402  (benchmarks/: the script's own folder)

omp_policy.apply_from_argv()  # before torch loads OpenMP

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

from rnnkit.tasks.tag_data import find_splits, read_tagged  # noqa: E402

UDPIPE2 = 0.975   # UDPipe 2 (with multilingual BERT), UPOS on EWT, as published
_NUMBER = re.compile(r"[\d.,:/-]*\d[\d.,:/-]*")


def ewt() -> Path:
    return Path(os.environ.get("RNNKIT_DATA", "../shared/data")) / "ud-english-ewt"


# -- baselines ----------------------------------------------------------------------------------
def _shape(w: str) -> str:
    return "C" if w[:1].isupper() else "l"


def baselines(folder: Path) -> dict:
    splits = find_splits(folder)
    train = read_tagged(splits["train"][0]).sentences
    test = read_tagged(splits["test"][0]).sentences
    by_word: dict[str, Counter] = defaultdict(Counter)
    for s in train:
        for w, t in zip(s.words, s.tags):
            by_word[w][t] += 1
    overall = Counter(t for c in by_word.values() for t in c.elements()).most_common(1)[0][0]
    best = {w: c.most_common(1)[0][0] for w, c in by_word.items()}
    # suffix rules learned from rare training words: the unknown words of new text look like them
    suffix: dict[tuple, Counter] = defaultdict(Counter)
    numbers: Counter = Counter()
    lower: dict[str, Counter] = defaultdict(Counter)
    for w, c in by_word.items():
        n = sum(c.values())
        lower[w.lower()].update(c)
        if _NUMBER.fullmatch(w):
            numbers.update(c)
        if n < 3:
            for k in range(1, 4):
                suffix[(_shape(w), w[-k:].lower())].update(c)

    def guess(w: str) -> str:
        if _NUMBER.fullmatch(w) and numbers:
            return numbers.most_common(1)[0][0]
        if w.lower() in lower:          # known in another case ("NEVER", sentence-initial "Never")
            return lower[w.lower()].most_common(1)[0][0]
        for k in range(3, 0, -1):
            c = suffix.get((_shape(w), w[-k:].lower()))
            if c:
                return c.most_common(1)[0][0]
        return overall

    n = plain = rules = unknown = 0
    for s in test:
        for w, t in zip(s.words, s.tags):
            n += 1
            known = w in best
            unknown += not known
            plain += (best[w] if known else overall) == t
            rules += (best[w] if known else guess(w)) == t
    return {"most_frequent": plain / n, "most_frequent_suffix": rules / n, "test_words": n,
            "unknown_words": unknown}


# -- a budgeted training run ----------------------------------------------------------------------
def train(folder: Path, minutes: float, out: Path, threads: int | None, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "rnnkit", "train", "--task", "tag", "--data", str(folder),
           "--minutes", f"{minutes:g}", "--out", str(out), "--no-progress", *extra]
    if threads:
        cmd += ["--threads", str(threads)]
    print("$", " ".join(cmd), flush=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t
    history = [json.loads(line) for line in open(out / "history.jsonl")]
    last_train = [r for r in history if r["split"] == "train"][-1]
    best_val = max((r for r in history if r["split"] == "val"), key=lambda r: r["accuracy"])
    t = time.perf_counter()
    from rnnkit.tasks.tag_api import evaluate
    r = evaluate(out)
    eval_s = time.perf_counter() - t
    return {"command": " ".join(cmd[1:]), "wall_s": wall, "train_s": last_train["elapsed"],
            "steps": last_train["step"], "epochs": last_train["epoch"],
            "best_val_accuracy": best_val["accuracy"], "best_val_step": best_val["step"],
            "test_accuracy": r["accuracy"], "test_oov_accuracy": r["oov_accuracy"],
            "test_oov_words": r["oov_words"], "test_words": r["words"], "eval_s": eval_s}


# -- the same model, written plainly in PyTorch ---------------------------------------------------
class PlainTagger(nn.Module):
    """`Tagger` (LSTM cells; a char LSTM or char CNN) as one would write it with ``torch.nn.LSTM`` and
    packing; parameter names equal the rnnkit model's so weights copy across."""

    def __init__(self, num_words, num_chars, num_tags, *, embedding=100, char_embedding=32,
                 char_hidden=64, char_encoder="lstm", char_widths=(3,), hidden=200, layers=2, dropout=0.33,
                 **_):
        super().__init__()
        self.embed = nn.Embedding(num_words, embedding, padding_idx=0)
        self.chars = nn.Module()
        self.chars.embed = nn.Embedding(num_chars, char_embedding, padding_idx=0)
        self.char_encoder, self.char_widths = char_encoder, tuple(char_widths)
        if char_encoder == "lstm":
            self.chars.rnn = nn.LSTM(char_embedding, char_hidden, batch_first=True, bidirectional=True)
            spelled = 2 * char_hidden
        else:
            self.chars.convs = nn.ModuleList(nn.Conv1d(char_embedding, char_hidden, w) for w in char_widths)
            spelled = char_hidden * len(char_widths)
        self.drop = nn.Dropout(dropout)
        self.rnn = nn.LSTM(embedding + spelled, hidden, layers, batch_first=True,
                           bidirectional=True, dropout=dropout)
        self.out = nn.Linear(2 * hidden, num_tags)

    def spell(self, b):
        if self.char_encoder == "lstm":
            packed = pack_padded_sequence(self.chars.embed(b.chars), b.char_lengths, batch_first=True,
                                          enforce_sorted=False)
            _, (h, _) = self.chars.rnn(packed)
            return torch.cat([h[0], h[1]], dim=1)
        real = torch.arange(b.chars.shape[1]) < b.char_lengths.unsqueeze(1)     # (U, C)
        x = (self.chars.embed(b.chars) * real.unsqueeze(2)).transpose(1, 2)     # zeros past the end
        pooled = [conv(nn.functional.pad(x, ((w - 1) // 2, w // 2))).masked_fill(~real.unsqueeze(1),
                                                                                   float("-inf")).amax(2)
                  for w, conv in zip(self.char_widths, self.chars.convs)]
        return torch.cat(pooled, 1)

    def forward(self, b):
        x = torch.cat([self.embed(b.words), self.spell(b)[b.forms]], dim=2)
        packed = pack_padded_sequence(self.drop(x), b.lengths, batch_first=True, enforce_sorted=False)
        h, _ = self.rnn(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        return self.out(self.drop(h))

    def loss(self, b):
        logits = self(b)
        return nn.functional.cross_entropy(logits.flatten(0, 1), b.tags.flatten(), reduction="sum",
                                           ignore_index=-100), (b.tags >= 0).sum()


def speed(folder: Path, steps: int, batch_size: int) -> dict:
    from rnnkit.tasks.tag import TagConfig
    from rnnkit.data.padded import BucketBatcher
    from rnnkit.tasks.tag_encode import TagVocabs, encode, make_batch
    from rnnkit.tasks.tag_api import choose_aux
    from rnnkit.tasks.tag_model import Tagger
    cfg = TagConfig()
    train = [read_tagged(find_splits(folder)["train"][0])]
    aux_names = choose_aux(train, cfg.aux_cols)          # the defaults' auxiliary columns
    sents = train[0].sentences
    vocabs = TagVocabs.build(sents, aux_names=aux_names)
    enc = encode(sents, vocabs, max_word_chars=cfg.max_word_chars)
    sizes = (len(vocabs.words), len(vocabs.chars), len(vocabs.tags))
    kw = cfg.model_kwargs()
    torch.manual_seed(0)
    ours = Tagger(*sizes, **kw)                           # the tags alone: what the plain model is
    plain = PlainTagger(*sizes, **kw)
    torch.manual_seed(0)                                  # the defaults: + an output layer per column
    full = Tagger(*sizes, aux_tags=[len(t) for t in vocabs.aux_tags], **kw)
    plain.load_state_dict(ours.state_dict())
    order = iter(BucketBatcher(enc.lengths, batch_size, seed=0))
    batches = [make_batch(enc, next(order)) for _ in range(steps + 3)]
    ours.eval(), plain.eval()
    with torch.no_grad():  # the same model: the same loss on the same batch
        a, b = ours.loss(batches[0])[0].item(), plain.loss(batches[0])[0].item()
    assert abs(a - b) <= 1e-4 * abs(b), f"the two models disagree: {a} vs {b}"
    ours.train(), plain.train(), full.train()
    models = [ours, plain, full]
    opts = {m: torch.optim.AdamW(m.parameters(), lr=1e-3) for m in models}
    times: dict = {m: [] for m in models}
    words = 0
    for i, batch in enumerate(batches):
        for m in models[i % 3:] + models[:i % 3]:                # rotate who goes first
            t = time.perf_counter()
            loss, count = m.loss(batch, aux_weight=cfg.aux_weight) if m is full else m.loss(batch)
            (loss / count).backward()
            opts[m].step()
            opts[m].zero_grad(set_to_none=True)
            if i >= 3:                                           # 3 warm-up steps
                times[m].append(time.perf_counter() - t)
        words += int(batch.lengths.sum()) if i >= 3 else 0
    named = (("rnnkit", ours), ("plain", plain), ("rnnkit_aux", full))
    med = {name: statistics.median(times[m]) for name, m in named}
    total = {name: sum(times[m]) for name, m in named}
    return {"steps": steps, "batch_size": batch_size, "words": words, "threads": torch.get_num_threads(),
            "aux_columns": aux_names,
            "median_step_s": med, "words_per_s": {k: words / v for k, v in total.items()},
            "ratio_plain_over_rnnkit": med["plain"] / med["rnnkit"],
            "ratio_aux_over_rnnkit": med["rnnkit_aux"] / med["rnnkit"]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("baselines", "train", "speed"))
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--out", default="runs/bench-tag-ewt")
    p.add_argument("--threads", type=int, default=None, help="torch threads (none: PyTorch's choice)")
    p.add_argument("--steps", type=int, default=40, help="speed: timed steps per model")
    p.add_argument("--batch-size", type=int, default=None, help="speed: sentences per batch "
                                                                 "(none: the tagger's default)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    omp_policy.add_argument(p)
    args, extra = p.parse_known_args(argv)
    folder = ewt()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what == "speed":
        from rnnkit.tasks.tag import TagConfig
        r = speed(folder, args.steps, args.batch_size or TagConfig().batch_size)
        print(f"training step, UD EWT batches of {r['batch_size']} sentences, {r['threads']} thread(s):")
        print("| model | median step (ms) | words/s |")
        print("| --- | --- | --- |")
        aux = " + ".join(r["aux_columns"]) or "none"
        for k, name in (("rnnkit", "rnnkit Tagger (rnnkit.core, lengths), tags alone"),
                        ("plain", "plain PyTorch (nn.LSTM + pack_padded_sequence), tags alone"),
                        ("rnnkit_aux", f"rnnkit Tagger, the defaults (auxiliary columns: {aux})")):
            print(f"| {name} | {1000 * r['median_step_s'][k]:.1f} | {r['words_per_s'][k]:,.0f} |")
        print(f"plain / rnnkit step time: {r['ratio_plain_over_rnnkit']:.3f}; with the auxiliary layers / "
              f"without: {r['ratio_aux_over_rnnkit']:.3f}")
    else:
        r = {"baselines": baselines(folder)}
        b = r["baselines"]
        if args.what == "train":
            r["train"] = train(folder, args.minutes, Path(args.out), args.threads, extra)
        print(f"UPOS on UD English EWT test ({b['test_words']:,} words, {b['unknown_words']:,} unseen "
              f"in training):")
        print("| tagger | test accuracy | training |")
        print("| --- | --- | --- |")
        print(f"| most frequent tag | {100 * b['most_frequent']:.2f}% | counting |")
        print(f"| most frequent tag + suffix rules | {100 * b['most_frequent_suffix']:.2f}% | counting |")
        if "train" in r:
            t = r["train"]
            print(f"| rnnkit tagger, defaults | {100 * t['test_accuracy']:.2f}% (unseen words "
                  f"{100 * t['test_oov_accuracy']:.2f}%) | {t['train_s'] / 60:.1f} min, {t['steps']:,} "
                  f"steps, {t['epochs']:.1f} epochs |")
        print(f"| UDPipe 2 (published, with mBERT) | {100 * UDPIPE2:.1f}% | |")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1, default=str))
    print(json.dumps(r, default=str))


if __name__ == "__main__":
    main()
