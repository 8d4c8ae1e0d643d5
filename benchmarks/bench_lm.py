"""Language-model benchmark: rnnkit's whole training step against the textbook loop and the bare LSTM.

    RNNKIT_DATA=../shared/data python benchmarks/bench_lm.py              # speed + textbook runs
    RNNKIT_DATA=../shared/data python benchmarks/bench_lm.py --recipe     # + the default recipe vs n-gram

Setup (d2l's): ``timemachine``, letters and space (28 tokens), one-hot input, one LSTM layer of 256,
35 steps, batch 32, SGD with learning rate 1, gradient-norm clipping at 1, state carried across
batches. Three contenders, timed one step each in turn (so load on a shared machine hits all alike):

1. **rnnkit**: a real `rnnkit.train.Trainer` step on the `LanguageModel` task (batch from the batcher,
   forward, loss, backward, clipping, optimizer, schedule, bookkeeping), timed from the trainer's own
   step callbacks;
2. **textbook**: d2l's ``train_ch8`` loop (``RNNModel`` over ``torch.nn.LSTM``, its
   ``seq_data_iter_sequential``, its Python ``grad_clipping`` and per-step ``metric.add``);
3. **bare LSTM**: ``rnnkit.nn.LSTM`` forward+backward alone (``benchmarks/bench_core.py`` case a).

Then both training loops run for ``--epochs`` epochs on the 90%/10% split and report validation
perplexity and bits per character. ``--recipe`` also trains the default recipe for ``--minutes`` on
``timemachine`` (letters only) and on the embedded ``stdlib`` corpus and compares its best
validation bits per character with the Kneser-Ney n-gram baseline's best order (3-7).
"""
from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import omp_policy  # noqa: E402  (benchmarks/: the script's own folder)

omp_policy.apply_from_argv()  # before torch loads OpenMP

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import rnnkit.nn  # noqa: E402
from rnnkit.tasks import language_model as lm  # noqa: E402
from rnnkit.tasks.lm.config import LMConfig  # noqa: E402
from rnnkit.tasks.lm.data import load_lm_data  # noqa: E402
from rnnkit.train import Callback, RunFolder  # noqa: E402

TEXTBOOK = dict(letters_only=True, hidden=256, layers=1, embedding=0, dropout=0.0, seq_len=35,
                batch_size=32, optimizer="sgd", lr=1.0, clip=1.0, weight_decay=0.0,
                schedule="constant", ema=0.0, sample_length=0)


# -- the textbook (d2l) loop ----------------------------------------------------------------------
class RNNModel(nn.Module):
    """d2l.RNNModel: one-hot inputs, a torch.nn RNN layer, a linear output over (T*B, H)."""

    def __init__(self, rnn_layer, vocab_size):
        super().__init__()
        self.rnn, self.vocab_size = rnn_layer, vocab_size
        self.linear = nn.Linear(rnn_layer.hidden_size, vocab_size)

    def forward(self, inputs, state):
        X = F.one_hot(inputs.T.long(), self.vocab_size).to(torch.float32)
        Y, state = self.rnn(X, state)
        return self.linear(Y.reshape((-1, Y.shape[-1]))), state

    def begin_state(self, batch_size):
        z = torch.zeros((self.rnn.num_layers, batch_size, self.rnn.hidden_size))
        return (z, z.clone())


def seq_data_iter_sequential(corpus, batch_size, num_steps):
    """d2l.seq_data_iter_sequential: a random offset each epoch, then contiguous streams."""
    offset = random.randint(0, num_steps)
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    Xs = torch.tensor(corpus[offset: offset + num_tokens])
    Ys = torch.tensor(corpus[offset + 1: offset + 1 + num_tokens])
    Xs, Ys = Xs.reshape(batch_size, -1), Ys.reshape(batch_size, -1)
    for i in range(0, Xs.shape[1] // num_steps * num_steps, num_steps):
        yield Xs[:, i: i + num_steps], Ys[:, i: i + num_steps]


def grad_clipping(net, theta):
    """d2l.grad_clipping."""
    params = [p for p in net.parameters() if p.requires_grad]
    norm = torch.sqrt(sum(torch.sum((p.grad ** 2)) for p in params))
    if norm > theta:
        for param in params:
            param.grad[:] *= theta / norm


class Textbook:
    """d2l.train_epoch_ch8 with sequential batches, one step at a time."""

    def __init__(self, corpus, vocab_size, seed=0):
        torch.manual_seed(seed)
        random.seed(seed)
        self.net = RNNModel(nn.LSTM(vocab_size, 256), vocab_size)
        self.updater = torch.optim.SGD(self.net.parameters(), 1.0)
        self.loss = nn.CrossEntropyLoss()
        self.corpus, self.state, self.it = corpus, None, None
        self.metric = [0.0, 0]

    def step(self) -> int:
        batch = next(self.it, None) if self.it is not None else None
        if batch is None:
            self.it, self.state = seq_data_iter_sequential(self.corpus, 32, 35), None
            batch = next(self.it)
        X, Y = batch
        if self.state is None:
            self.state = self.net.begin_state(X.shape[0])
        else:
            self.state = tuple(s.detach_() for s in self.state)
        y = Y.T.reshape(-1)
        y_hat, self.state = self.net(X, self.state)
        l = self.loss(y_hat, y.long()).mean()
        self.updater.zero_grad()
        l.backward()
        grad_clipping(self.net, 1)
        self.updater.step()
        self.metric[0] += float(l * y.numel())
        self.metric[1] += y.numel()
        return y.numel()

    @torch.no_grad()
    def val_bpc(self, ids) -> float:
        """Each validation token predicted from all before it: one stream, state carried."""
        x = torch.as_tensor(ids[:-1].astype("int64")).view(1, -1)
        y = torch.as_tensor(ids[1:].astype("int64"))
        total, state = 0.0, self.net.begin_state(1)
        for t in range(0, x.shape[1], 500):
            out, state = self.net(x[:, t:t + 500], state)
            total += float(F.cross_entropy(out, y[t:t + 500], reduction="sum"))
        return total / len(y) / math.log(2)


# -- 1. interleaved step timing ---------------------------------------------------------------------
class Interleave(Callback):
    """After each trainer step: time one textbook step and one bare LSTM forward+backward, and
    record the trainer step's own time (from the end of the previous interleaved work)."""

    def __init__(self, textbook: Textbook, warmup: int):
        self.textbook, self.warmup = textbook, warmup
        self.bare = rnnkit.nn.LSTM(28, 256)
        self.x = torch.randn(35, 32, 28)
        self.times = {"rnnkit step": [], "textbook step": [], "bare LSTM fwd+bwd": []}
        self.resumed = None

    def on_step_end(self, trainer):
        t_end = time.perf_counter()
        if self.resumed is not None and trainer.step > self.warmup:
            self.times["rnnkit step"].append(t_end - self.resumed)
        t = time.perf_counter()
        self.textbook.step()
        t2 = time.perf_counter()
        self.bare.zero_grad(set_to_none=True)
        out, _ = self.bare(self.x)
        out.sum().backward()
        t3 = time.perf_counter()
        if trainer.step > self.warmup:
            self.times["textbook step"].append(t2 - t)
            self.times["bare LSTM fwd+bwd"].append(t3 - t2)
        self.resumed = time.perf_counter()


def speed(steps: int, threads: int | None) -> dict:
    tokens = 32 * 35
    data = load_lm_data(LMConfig(data="timemachine", letters_only=True, seq_len=35, batch_size=32))
    textbook = Textbook(data.train_ids.tolist(), len(data.vocab))
    cb = Interleave(textbook, warmup=5)
    with tempfile.TemporaryDirectory() as tmp:
        lm.train("timemachine", out=Path(tmp) / "run", steps=steps + 5, eval_every=10 ** 6,
                 log_every=10 ** 6, threads=threads, progress=False, echo=None, callbacks=[cb],
                 **TEXTBOOK)
    rate = {k: tokens / statistics.median(v) for k, v in cb.times.items()}
    print(f"\n1. one training step, interleaved, median of {steps} (tokens/s = 32*35 / seconds)\n")
    print("| contender | tokens/s | ms per step |")
    print("| --- | ---: | ---: |")
    for k, v in rate.items():
        print(f"| {k} | {v:,.0f} | {1000 * tokens / v:.2f} |")
    print(f"\nrnnkit step / textbook step speed: {rate['rnnkit step'] / rate['textbook step']:.3f} "
          f"(must be >= 1)")
    print(f"rnnkit step / bare LSTM fwd+bwd speed: "
          f"{rate['rnnkit step'] / rate['bare LSTM fwd+bwd']:.3f} (must be >= 0.9)")
    return rate


# -- 2. the two training runs -------------------------------------------------------------------------
def runs(epochs: int, threads: int | None) -> None:
    data = load_lm_data(LMConfig(data="timemachine", letters_only=True, seq_len=35, batch_size=32))
    with tempfile.TemporaryDirectory() as tmp:
        res = lm.train("timemachine", out=Path(tmp) / "run", epochs=epochs, threads=threads,
                       log_every=50, progress=False, echo=None, **TEXTBOOK)
        hist = RunFolder(Path(tmp) / "run").read_history()
    train = [r for r in hist if r["split"] == "train"]
    ours_tok = statistics.median(r["tokens_per_s"] for r in train)  # training only
    ours_s = train[-1]["elapsed"]
    last = [r for r in hist if r["split"] == "val"][-1]
    textbook = Textbook(data.train_ids.tolist(), len(data.vocab))
    per_epoch, steps_done, tb_s = [], 0, 0.0
    batches_per_epoch = len(data.train_ids) // (32 * 35)
    for e in range(epochs):
        t = time.perf_counter()
        for _ in range(batches_per_epoch):
            textbook.step()
            steps_done += 1
        tb_s += time.perf_counter() - t  # training only
        per_epoch.append(textbook.val_bpc(data.val_ids))
    tb_tok = steps_done * 32 * 35 / tb_s
    print(f"\n2. timemachine, textbook setup, {epochs} epochs each (tokens/s of training alone)\n")
    print("| loop | best val ppl | best val bpc | last val bpc | tokens/s | training seconds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| rnnkit train | {res.best['ppl']:.3f} | {res.best['bpc']:.4f} | {last['bpc']:.4f} | "
          f"{ours_tok:,.0f} | {ours_s:.0f} |")
    best = min(per_epoch)
    print(f"| textbook train_ch8 | {2 ** best:.3f} | {best:.4f} | {per_epoch[-1]:.4f} | "
          f"{tb_tok:,.0f} | {tb_s:.0f} |")
    print(f"\nrnnkit / textbook tokens/s: {ours_tok / tb_tok:.3f}")


# -- 3. the default recipe against the n-gram baseline ---------------------------------------------
def recipe(minutes: float, threads: int | None, corpora: list[str]) -> None:
    print(f"\n3. the default recipe ({minutes:g} minutes) against the best Kneser-Ney n-gram "
          f"(orders 3-7), validation bits per character\n")
    print("| data | rnnkit best val bpc | at step | n-gram best bpc (order) | rnnkit wins |")
    print("| --- | ---: | ---: | ---: | --- |")
    for spec in corpora:
        name, _, opt = spec.partition(":")
        letters = opt == "letters"
        with tempfile.TemporaryDirectory() as tmp:
            res = lm.train(name, out=Path(tmp) / "run", minutes=minutes, letters_only=letters,
                           threads=threads, progress=False, echo=None)
        ng = lm.best_ngram(lm.evaluate_ngram(name, letters_only=letters))
        print(f"| {spec} | {res.best['bpc']:.4f} | {res.best['step']} of {res.step} | "
              f"{ng['bpc']:.4f} ({ng['order']}) | {'yes' if res.best['bpc'] < ng['bpc'] else 'NO'} |",
              flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60, help="interleaved steps timed (default 60)")
    ap.add_argument("--epochs", type=int, default=10, help="epochs of each training run (default 10)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    omp_policy.add_argument(ap)
    ap.add_argument("--skip-runs", action="store_true", help="only the step timing")
    ap.add_argument("--recipe", action="store_true", help="also the default recipe vs n-gram")
    ap.add_argument("--minutes", type=float, default=3.0, help="--recipe budget (default 3)")
    ap.add_argument("--corpora", default="timemachine:letters,stdlib",
                    help="--recipe corpora, NAME[:letters] (default timemachine:letters,stdlib)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
          f"load average {load:.1f}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    speed(args.steps, args.threads)
    if not args.skip_runs:
        runs(args.epochs, args.threads)
    if args.recipe:
        recipe(args.minutes, args.threads, args.corpora.split(","))


if __name__ == "__main__":
    main()
