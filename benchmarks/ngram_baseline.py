"""Kneser-Ney character n-gram baseline on The Time Machine: bits per character, orders 3-7.

Text: timemachine.txt with the d2l normalisation (lower-case; every run of non-letters -> one space;
28 tokens with <unk>); trained on the first 90% of the characters, scored on the last 10%.
Run: ``RNNKIT_DATA=../shared/data python benchmarks/ngram_baseline.py [--corpus NAME] [--orders 3-7]``.
"""
from __future__ import annotations

import argparse
import time

from rnnkit.baselines.ngram import KneserNeyLM
from rnnkit.data.corpora import load_corpus
from rnnkit.data.vocab import normalize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="timemachine", help="corpus name or path (default timemachine)")
    ap.add_argument("--orders", default="3-7", help="orders, e.g. 3-7 (default)")
    ap.add_argument("--raw", action="store_true", help="keep the text as is (no d2l normalisation)")
    args = ap.parse_args()
    lo, _, hi = args.orders.partition("-")
    orders = range(int(lo), int(hi or lo) + 1)
    corpus = load_corpus(args.corpus, val_fraction=0.1, split="tail")
    text = corpus.train_text + corpus.val_text
    if not args.raw:
        text = normalize(text, letters_only=True)
    cut = len(text) - round(0.1 * len(text))
    train, val = text[:cut], text[cut:]
    print(f"{corpus.name}: train {len(train):,} chars, val {len(val):,} chars, "
          f"V = {len(set(train)) + 1} (with <unk>)")
    print(f"{'order':>5} | {'bpc D=0.75':>10} | {'bpc D=auto':>10} | {'ppl (0.75)':>10} | {'fit+eval s':>10}")
    print("-" * 58)
    for n in orders:
        t0 = time.perf_counter()
        fixed = KneserNeyLM(n, 0.75).fit(train)
        bpc = fixed.bits_per_char(val)
        seconds = time.perf_counter() - t0
        auto = KneserNeyLM(n, "auto").fit(train).bits_per_char(val)
        print(f"{n:>5} | {bpc:>10.4f} | {auto:>10.4f} | {2 ** bpc:>10.3f} | {seconds:>10.2f}")


if __name__ == "__main__":
    main()
