"""The textbook character RNN (Dive into Deep Learning, ch. 9-10) on *The Time Machine*, on rnnkit.nn.

The d2l recipe, unchanged but for the import: a letters-only, lower-case character vocabulary (26
letters, space, ``<unk>``), one-hot inputs, sequential minibatches of 32 streams x 35 steps with the
state carried (and detached) between batches, SGD with learning rate 1 and gradient clipping at norm
1. It trains an RNN, a GRU, an LSTM, a 2-layer LSTM and a bidirectional LSTM for the same time budget
and prints perplexity, tokens/s and the greedy continuation of "time traveller" for each.

    python examples/time_machine_rnn.py                 # 60 s per model
    python examples/time_machine_rnn.py --seconds 10    # quicker
    python examples/time_machine_rnn.py --threads 1     # on a machine shared with other jobs
    RNNKIT_EXAMPLES_TINY=1 python examples/time_machine_rnn.py   # a smoke run (seconds, tiny models)

The text is found like every named corpus (``$RNNKIT_DATA/timemachine.txt``, the cache, a download).
"""
from __future__ import annotations

import argparse
import math
import os
import time

import torch
from torch import nn
from torch.nn import functional as F

import rnnkit.nn
from rnnkit.data.batching import SequentialBatcher
from rnnkit.data.corpora import resolve_named
from rnnkit.data.vocab import CharVocab

BIDIRECTIONAL_NOTE = (
    "Why the bidirectional LSTM cannot predict the next character: its backward direction reads the\n"
    "text from the end, so at position t it has already read character t+1 -- the very character it\n"
    "is asked to predict. Training teaches it to copy that character (hence its training perplexity,\n"
    "{bi:.2f} against the LSTM's {uni:.2f}), but when generating there is no future text to read: the\n"
    "backward direction sees only the prompt's end, and the continuation is nonsense. Bidirectional\n"
    "layers suit tasks that see the whole sequence first (tagging, classification), not language\n"
    "modelling.")


class RNNModel(nn.Module):
    """d2l's ``RNNModel``: one-hot ``(T, B, V)`` -> recurrent layer -> linear ``(T*B, V)`` logits."""

    def __init__(self, rnn_layer: nn.Module, vocab_size: int):
        super().__init__()
        self.rnn, self.vocab_size = rnn_layer, vocab_size
        self.num_hiddens = rnn_layer.hidden_size
        self.num_directions = 2 if rnn_layer.bidirectional else 1
        self.linear = nn.Linear(self.num_hiddens * self.num_directions, vocab_size)

    def forward(self, inputs: torch.Tensor, state):
        """``inputs`` ``(B, T)`` ids -> ``(logits (T*B, V), state)``."""
        X = F.one_hot(inputs.T.long(), self.vocab_size).float()   # (T, B, V)
        Y, state = self.rnn(X, state)                              # (T, B, D*H)
        return self.linear(Y.reshape(-1, Y.shape[-1])), state

    def begin_state(self, batch_size: int = 1):
        """Zeros of shape ``(D*L, B, H)``; a pair of them for an LSTM."""
        shape = (self.num_directions * self.rnn.num_layers, batch_size, self.num_hiddens)
        if isinstance(self.rnn, rnnkit.nn.LSTM):
            return torch.zeros(shape), torch.zeros(shape)
        return torch.zeros(shape)


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def predict(prefix: str, num_preds: int, net: RNNModel, vocab: CharVocab) -> str:
    """Warm the state up on ``prefix``, then append ``num_preds`` greedy (argmax) characters."""
    state = net.begin_state(batch_size=1)
    ids = [int(i) for i in vocab.encode(prefix)]
    with torch.no_grad():
        for i in ids[:-1]:
            _, state = net(torch.tensor([[i]]), state)
        for _ in range(num_preds):
            y, state = net(torch.tensor([[ids[-1]]]), state)
            ids.append(int(y.argmax(dim=1)))
    return vocab.decode(ids)


def train(net: RNNModel, batcher: SequentialBatcher, seconds: float, max_steps: int | None,
          lr: float = 1.0, clip: float = 1.0) -> dict:
    """SGD(lr) with clipping for ``seconds`` (or ``max_steps``); returns perplexity and speed of the
    last epoch's batches seen (d2l reports the last epoch's perplexity the same way)."""
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    X, Y = batcher.batch(0)   # warm-up, untimed: a kernel compiled on first use must not eat the budget
    net(X, net.begin_state(X.shape[0]))[0].sum().backward()
    state, steps, tokens, start = None, 0, 0, time.perf_counter()
    total, count = 0.0, 0
    while True:
        for X, Y in batcher:
            if batcher.position == 1:    # a new epoch: the streams start over, so does the state
                state, total, count = net.begin_state(X.shape[0]), 0.0, 0
            state = detach(state)
            y_hat, state = net(X, state)
            loss = F.cross_entropy(y_hat, Y.T.reshape(-1).long())
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            total, count = total + loss.item() * Y.numel(), count + Y.numel()
            steps, tokens = steps + 1, tokens + Y.numel()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds or (max_steps is not None and steps >= max_steps):
                return {"perplexity": math.exp(total / count), "tokens_per_s": tokens / elapsed,
                        "steps": steps, "epochs": batcher.epoch + batcher.position / len(batcher)}


def main(argv: list[str] | None = None) -> dict[str, dict]:
    tiny = os.environ.get("RNNKIT_EXAMPLES_TINY") == "1"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1e9 if tiny else 60.0,
                        help="training time per model (default 60)")
    parser.add_argument("--steps", type=int, default=3 if tiny else None,
                        help="stop after this many SGD steps instead (default: no limit)")
    parser.add_argument("--hidden", type=int, default=8 if tiny else 256, help="hidden units (256)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: PyTorch's choice; 1 is much faster on a busy machine)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    text = resolve_named("timemachine").read_text(encoding="utf-8")
    vocab = CharVocab.from_text(text, lower=True, letters_only=True)   # d2l's 28 tokens
    corpus = vocab.encode(text)
    batch_size, num_steps = 32, 35
    print(f"The Time Machine: {len(corpus):,} characters, vocabulary of {len(vocab)}: "
          f"{''.join(vocab.tokens[1:])!r} + <unk>")

    # the shapes of the textbook's first cell
    rnn_layer = rnnkit.nn.RNN(len(vocab), 256)
    state = torch.zeros((1, batch_size, 256))
    X = torch.rand(num_steps, batch_size, len(vocab))
    Y, state_new = rnn_layer(X, state)
    print(f"rnnkit.nn.RNN({len(vocab)}, 256): input {tuple(X.shape)}, state {tuple(state.shape)} "
          f"-> output {tuple(Y.shape)}, new state {tuple(state_new.shape)}\n")

    layers = {
        "RNN": lambda: rnnkit.nn.RNN(len(vocab), args.hidden),
        "GRU": lambda: rnnkit.nn.GRU(len(vocab), args.hidden),
        "LSTM": lambda: rnnkit.nn.LSTM(len(vocab), args.hidden),
        "deep LSTM (2 layers)": lambda: rnnkit.nn.LSTM(len(vocab), args.hidden, num_layers=2),
        "bidirectional LSTM": lambda: rnnkit.nn.LSTM(len(vocab), args.hidden, bidirectional=True),
    }
    results = {}
    budget = f"{args.steps} steps" if args.steps else f"{args.seconds:g} s"
    print(f"training each model for {budget}: SGD lr 1, gradient clipping at norm 1, "
          f"batches of {batch_size} x {num_steps}, hidden {args.hidden}")
    for name, make in layers.items():
        torch.manual_seed(0)
        net = RNNModel(make(), len(vocab))
        r = train(net, SequentialBatcher(corpus, batch_size, num_steps, drop_last=True),
                  args.seconds, args.steps)
        r["continuation"] = predict("time traveller", 50, net, vocab)
        results[name] = r
        print(f"{name:22s} perplexity {r['perplexity']:6.2f}  {r['tokens_per_s']:9,.0f} tokens/s  "
              f"{r['epochs']:5.1f} epochs  {r['continuation']!r}")
    print()
    print(BIDIRECTIONAL_NOTE.format(bi=results["bidirectional LSTM"]["perplexity"],
                                    uni=results["LSTM"]["perplexity"]))
    return results


if __name__ == "__main__":
    main()
