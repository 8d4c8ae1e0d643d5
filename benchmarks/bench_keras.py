"""Benchmark: the Keras-style door's ``fit`` against the same model in a hand-written PyTorch loop
over `rnnkit.nn`, and against real Keras 3 (``KERAS_BACKEND=torch``) when it is installed.

Two workloads: the next-letter toy of the issue (``SimpleRNN(3)`` + ``Dense(5, softmax)`` on five
one-hot letters, one step per epoch) and a 2-layer ``LSTM(256)`` over ``(64, 100, 64)`` batches.
Every contender runs the same number of optimisation steps with Adam; we report steps/s (best of a
few repeats, to damp the noise of a shared machine) and the door's overhead against the hand loop.

    python benchmarks/bench_keras.py [--quick]

Prints a markdown table."""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import rnnkit.nn as rnn  # noqa: E402
from rnnkit import keras as rk  # noqa: E402


def toy_data():
    x = np.eye(5, dtype="float32")[:, None, :]  # a b c d e, one step each
    return x, np.array([1, 2, 3, 4, 0])


def lstm_data(steps):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64 * steps, 100, 64)).astype("float32")
    return x, rng.integers(0, 10, size=64 * steps)


def keras_style(lib, workload):
    L = lib.layers
    if workload == "toy":
        layers = [lib.Input((1, 5)), L.SimpleRNN(3), L.Dense(5, activation="softmax")]
    else:
        layers = [lib.Input((100, 64)), L.LSTM(256, return_sequences=True), L.LSTM(256),
                  L.Dense(10, activation="softmax")]
    model = lib.Sequential(layers)
    model.compile(optimizer=lib.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class HandModel(nn.Module):
    def __init__(self, workload):
        super().__init__()
        if workload == "toy":
            self.rnn, self.head = rnn.RNN(5, 3, batch_first=True), nn.Linear(3, 5)
        else:
            self.rnn, self.head = rnn.LSTM(64, 256, num_layers=2, batch_first=True), nn.Linear(256, 10)

    def forward(self, x):
        out, _ = self.rnn(x)
        return torch.softmax(self.head(out[:, -1]), -1)  # (B, classes) probabilities, as Dense(softmax)


def hand_loop(model, x, y, epochs, batch_size):
    """What one writes by hand: shuffle, batch, forward, loss, zero-grad, backward, step, and keep
    the epoch's mean loss and accuracy (as fit reports them)."""
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    n = x.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n)
        total = correct = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            probs = model(xb)  # the same loss as Keras's: crossentropy on clipped probabilities
            loss = nn.functional.nll_loss(probs.clamp(1e-7, 1 - 1e-7).log(), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total = total + loss.detach() * len(idx)
            correct = correct + (probs.argmax(-1) == yb).sum()
        float(total), float(correct)


def best_time(fn, repeats):
    """Best CPU time of this process over ``repeats`` runs. CPU time, not wall time: the machines
    this runs on are shared, and time spent descheduled is not the code's."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: "
                    "CPU time then measures work, not spinning threads)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import keras as real_keras
        keras_version = real_keras.__version__
    except ImportError:
        real_keras, keras_version = None, None
    rows = []
    for workload in ("toy", "lstm"):
        if workload == "toy":
            (x, y), epochs, bs, repeats = toy_data(), (100 if args.quick else 500), 32, 5
            steps = epochs
        else:
            steps_per_epoch = 2 if args.quick else 4
            (x, y), epochs, bs, repeats = lstm_data(steps_per_epoch), 1, 64, 2
            steps = steps_per_epoch * epochs
        results = {}
        torch.manual_seed(0)
        model = keras_style(rk, workload)
        model.fit(x, y, batch_size=bs, epochs=1, verbose=0)  # warm-up (build, optimizer state)
        results["rnnkit.keras fit"] = best_time(
            lambda: model.fit(x, y, batch_size=bs, epochs=epochs, verbose=0), repeats)
        hand = HandModel(workload)
        hand_loop(hand, x, y, 1, bs)
        results["rnnkit.nn hand loop"] = best_time(lambda: hand_loop(hand, x, y, epochs, bs), repeats)
        if real_keras is not None:
            km = keras_style(real_keras, workload)
            km.fit(x, y, batch_size=bs, epochs=1, verbose=0)
            k_epochs = epochs if workload == "lstm" else max(epochs // 4, 25)
            t = best_time(lambda: km.fit(x, y, batch_size=bs, epochs=k_epochs, verbose=0), 1)
            results[f"Keras {keras_version} (torch backend) fit"] = t * epochs / k_epochs
        base = results["rnnkit.nn hand loop"]
        for name, t in results.items():
            rows.append((workload, name, steps / t, t / base))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); steps per CPU-second, "
          f"best of repeats\n")
    print("| workload | contender | steps/s | time vs hand loop |")
    print("|---|---|---:|---:|")
    names = {"toy": "next-letter toy (SimpleRNN(3), 5 samples)",
             "lstm": "2-layer LSTM(256), batch (64, 100, 64)"}
    for workload, name, sps, ratio in rows:
        print(f"| {names[workload]} | {name} | {sps:,.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
