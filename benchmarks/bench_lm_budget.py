"""Language-model quality by budget: rnnkit's defaults beside a plain PyTorch character LSTM.

For each corpus the text is cut into its first 90% (training) and its last 10% (new text, never
read in training). For each budget, in turn (never at the same time: they share the cores):

- ``rnnkit train --data TRAIN --minutes M`` with every other option at its default (the recipe then
  holds out its own validation from TRAIN), scored with ``rnnkit evaluate RUN --data TEST``;
- the plain model of issue 12's table, written here in plain PyTorch: embedding 64 -> LSTM(512) ->
  linear, Adam 2e-3, batch 32, sequences of 128 with the state carried across batches, no dropout,
  gradient clipping at 1, trained for the same wall-clock minutes, scored on TEST.

Both are scored the same way: nats per character of every TEST character after the first, the text
cut into contiguous streams (at least 2,000 characters each) read with the state carried. Characters
absent from the training text are one ``<unk>`` for both. Prints one table row per (corpus, budget)
and, with ``--json``, writes them all.

    RNNKIT_DATA=../shared/data python benchmarks/bench_lm_budget.py                  # 1.5 and 10 min
    RNNKIT_DATA=../shared/data python benchmarks/bench_lm_budget.py --budgets 30 --corpora timemachine
    ... --busy     # the same beside a busy process (one thread spinning in a matrix loop)
    ... --no-plain / --no-rnnkit     # one column only (the other cell says "not run")

Corpora: ``timemachine`` (the whole book, every character), ``ewt`` (the sentences of UD English
EWT's training file, one per line), ``fra`` (the French side of fra-eng.txt, one sentence per
line), or the path of any text file.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnnkit.tasks import language_model as lm  # noqa: E402


# -- corpora ---------------------------------------------------------------------------------------
def corpus_text(name: str, data: Path) -> str:
    """The whole text of a corpus (see the module docstring)."""
    if name == "timemachine":
        return (data / "timemachine.txt").read_text(encoding="utf-8")
    if name == "ewt":
        lines = (data / "ud-english-ewt" / "en_ewt-ud-train.conllu").read_text(encoding="utf-8")
        return "".join(line[len("# text = "):] + "\n" for line in lines.splitlines()
                       if line.startswith("# text = "))
    if name == "fra":
        pairs = (data / "fra-eng.txt").read_text(encoding="utf-8").splitlines()
        return "".join(p.split("\t")[1] + "\n" for p in pairs if p.count("\t") >= 1)
    path = Path(name)
    if not path.is_file():
        raise SystemExit(f"--corpora: {name!r} is neither a known corpus (timemachine, ewt, fra) "
                         f"nor a text file")
    return path.read_text(encoding="utf-8")


def split_90_10(text: str) -> tuple[str, str]:
    cut = int(len(text) * 0.9)
    return text[:cut], text[cut:]


# -- the plain PyTorch model -----------------------------------------------------------------------
#: issue 12's competitor: LSTM(512), Adam 2e-3, batch 32, sequences of 128, no dropout
PLAIN = {"hidden": 512, "embedding": 64, "batch": 32, "seq": 128, "lr": 2e-3}


class PlainLSTM(nn.Module):
    def __init__(self, vocab: int, hidden: int = 512, embedding: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab, embedding)
        self.lstm = nn.LSTM(embedding, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        y, state = self.lstm(self.embed(x), state)
        return self.out(y), state


def encode(text: str, index: dict[str, int]) -> torch.Tensor:
    unk = len(index)
    return torch.tensor([index.get(c, unk) for c in text], dtype=torch.long)


def train_plain(train: str, minutes: float, *, hidden: int, embedding: int, batch: int, seq: int,
                lr: float, seed: int = 0):
    """The plain model trained for ``minutes`` of wall clock; returns (model, index, steps)."""
    torch.manual_seed(seed)
    index = {c: i for i, c in enumerate(sorted(set(train)))}
    ids = encode(train, index)
    model = PlainLSTM(len(index) + 1, hidden, embedding)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    L = (len(ids) - 1) // batch
    if L < seq:
        raise SystemExit(f"the training text ({len(ids)} characters) is shorter than one batch "
                         f"of {batch} x {seq}")
    xs, ys = ids[:batch * L].view(batch, L), ids[1:batch * L + 1].view(batch, L)
    deadline, steps, state, t = time.perf_counter() + minutes * 60, 0, None, 0
    while time.perf_counter() < deadline:
        if t + seq > L:
            t, state = 0, None
        logits, state = model(xs[:, t:t + seq], state)
        state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ys[:, t:t + seq].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t, steps = t + seq, steps + 1
    return model, index, steps


@torch.no_grad()
def nats_per_char(model: PlainLSTM, ids: torch.Tensor, min_stream: int = 2000, chunk: int = 512) -> float:
    """Mean cross-entropy of ``ids[1:]``, contiguous streams read with the state carried."""
    model.eval()
    N = len(ids)
    B = max(1, min(64, (N - 1) // min_stream))
    L = (N - 1) // B
    x, y = ids[:B * L].view(B, L), ids[1:B * L + 1].view(B, L)
    total, state = 0.0, None
    for t in range(0, L, chunk):
        logits, state = model(x[:, t:t + chunk], state)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(),
                                 y[:, t:t + chunk].reshape(-1), reduction="sum").item()
    if B * L + 1 < N:   # the rest continues the last stream
        logits, _ = model(ids[B * L:N - 1].view(1, -1), tuple(s[:, -1:] for s in state))
        total += F.cross_entropy(logits[0].double(), ids[B * L + 1:], reduction="sum").item()
    return total / (N - 1)


# -- a busy neighbour --------------------------------------------------------------------------------
def _spin(stop):
    torch.set_num_threads(1)
    a = torch.randn(256, 256)
    while not stop.is_set():
        a = torch.tanh(a @ a)


# -- the benchmark -------------------------------------------------------------------------------------
def run_one(name: str, text: str, minutes: float, work: Path, seed: int, plain: bool = True,
            ours: bool = True) -> dict:
    train, test = split_90_10(text)
    (work / f"{name}.train.txt").write_text(train, encoding="utf-8")
    (work / f"{name}.test.txt").write_text(test, encoding="utf-8")
    row = {"corpus": name, "chars": len(text), "minutes": minutes, "rnnkit": None, "rnnkit_wall_s": None,
           "rnnkit_unknown_test_chars": None, "plain": None, "plain_steps": None, "plain_wall_s": None}
    if ours:
        run = work / f"{name}-{minutes:g}min"
        start = time.perf_counter()
        lm.train(str(work / f"{name}.train.txt"), out=run, minutes=minutes, seed=seed, progress=False,
                 echo=lambda line: print("   ", line) if line.startswith("recipe") else None)
        rnnkit_s = time.perf_counter() - start
        scored = lm.evaluate(run, str(work / f"{name}.test.txt"))
        row.update(rnnkit=scored["loss"], rnnkit_wall_s=rnnkit_s,
                   rnnkit_unknown_test_chars=scored.get("unknown_tokens"))
    if plain:
        threads = torch.get_num_threads()
        start = time.perf_counter()
        model, index, steps = train_plain(train, minutes, seed=seed, **PLAIN)
        row.update(plain_wall_s=time.perf_counter() - start, plain_steps=steps,
                   plain=nats_per_char(model, encode(test, index)))
        torch.set_num_threads(threads)
    return row


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpora", default="timemachine,ewt,fra",
                   help="comma-separated corpus names or text files")
    p.add_argument("--budgets", default="1.5,10", help="comma-separated minutes")
    p.add_argument("--data", default=os.environ.get("RNNKIT_DATA", "../shared/data"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--busy", action="store_true", help="run beside a busy process")
    p.add_argument("--no-plain", action="store_true",
                   help="train rnnkit only (its column alone; the plain model's cell says 'not run')")
    p.add_argument("--no-rnnkit", action="store_true",
                   help="train the plain model only (rnnkit's cell says 'not run')")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--work", default=None, help="folder for the texts and runs (default: a temporary one)")
    args = p.parse_args(argv)
    if args.no_plain and args.no_rnnkit:
        p.error("--no-plain and --no-rnnkit together leave nothing to train")
    budgets = [float(b) for b in args.budgets.split(",")]
    stop = mp.Event() if args.busy else None
    neighbour = mp.Process(target=_spin, args=(stop,), daemon=True) if args.busy else None
    if neighbour:
        neighbour.start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(args.work or tmp)
            work.mkdir(parents=True, exist_ok=True)
            print("| corpus | characters | budget | rnnkit defaults (nats/char) | plain LSTM(512) "
                  "(nats/char) | plain steps |" + (" beside a busy process |" if args.busy else ""))
            print("|---|---|---|---|---|---|" + ("---|" if args.busy else ""))
            for name in args.corpora.split(","):
                text = corpus_text(name, Path(args.data))
                for minutes in budgets:
                    r = run_one(Path(name).stem, text, minutes, work, args.seed, not args.no_plain,
                                not args.no_rnnkit)
                    rows.append(r)
                    both = r["plain"] is not None and r["rnnkit"] is not None
                    win = "**" if both and r["rnnkit"] < r["plain"] else ""
                    mine = f"{win}{r['rnnkit']:.3f}{win}" if r["rnnkit"] is not None else "not run"
                    theirs = f"{r['plain']:.3f} | {r['plain_steps']:,}" if r["plain"] is not None \
                        else "not run | -"
                    print(f"| {r['corpus']} | {r['chars']:,} | {minutes:g} min | {mine} | {theirs} |"
                          + (" yes |" if args.busy else ""), flush=True)
    finally:
        if neighbour:
            stop.set()
            neighbour.join(5)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
