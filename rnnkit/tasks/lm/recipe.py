"""The default recipe: what to train when the user does not say, chosen from how many times the budget
lets a model read the training text.

A character LSTM that reads its text only a few times is limited by what it has seen: it needs to
learn fast (one layer, large batches, a high learning rate) and no regularisation. One that reads a
small text dozens of times memorises it unless regularised, and can afford a deeper network. So::

    E1 = budget tokens / training tokens      (passes a 1-layer model makes; for a budget in
                                               minutes, its speed is measured first: about a second)
    E2 = E1 / DEEP_SLOWDOWN                   (passes a 2-layer model makes in the same time)
    E2 <  SMALL_TEXT_PASSES  ->  "large text":  1 layer,  batch 64, lr 8e-3
    E2 >= SMALL_TEXT_PASSES  ->  "small text":  2 layers, batch 32, lr 4e-3
    dropout = min(MAX_DROPOUT, E / PASSES_PER_DROPOUT)   (E: the chosen model's passes)

Every field the user gives is kept; only the ones left unset (``None``) are chosen. Measured on
The Time Machine (small), the Python standard library (large) and texts it was not tuned on; see
the README for the numbers.
"""
from __future__ import annotations

import dataclasses
import time

import torch

from rnnkit.tasks.lm.model import LanguageModel, lm_loss
from rnnkit.train.config import TrainConfig

SMALL_TEXT_PASSES = 10.0
LARGE = {"layers": 1, "batch_size": 64, "lr": 8e-3}
SMALL = {"layers": 2, "batch_size": 32, "lr": 4e-3}
#: a 2-layer model (batch 32) reads about this many times fewer tokens than the 1-layer one of the
#: probe (batch 64) in the same time (measured: 3.0 on 2 CPU cores)
DEEP_SLOWDOWN = 3.0
PASSES_PER_DROPOUT = 80.0
MAX_DROPOUT = 0.3


def probe_tokens_per_second(vocab_size: int, cfg, device: torch.device, seconds: float = 0.5) -> float:
    """Training speed of a 1-layer model of ``cfg``'s width on random batches of 64 x ``seq_len``
    (forward, backward, Adam), measured for about ``seconds`` after two warm-up steps. The global
    RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        model = LanguageModel(vocab_size, cfg.cell, cfg.hidden, 1, 0.0, cfg.embedding).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randint(0, vocab_size, (64, cfg.seq_len), device=device)
        steps, start = 0, 0.0   # start: the clock after the warm-up steps
        while True:
            loss, _ = lm_loss(model, x, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            float(loss.detach())  # wait for the device
            steps += 1
            if steps == 2:
                start = time.perf_counter()
            elif steps > 2 and (time.perf_counter() - start >= seconds or steps >= 50):
                return (steps - 2) * x.numel() / (time.perf_counter() - start)


def fastest_threads(probe, most: int) -> tuple[int, dict[int, float]]:
    """The faster of 1 thread and ``most`` threads, and the speeds measured: ``probe(n)`` measures
    tokens/s with ``n`` threads. Why both: with another busy process on the cores, OpenMP's threads
    spin waiting for each other and all threads can be 10x slower than one (measured on 2 cores:
    7,311 tokens/s instead of 75,742 quiet); on a quiet machine all threads win."""
    if most <= 1:
        return 1, {1: probe(1)}
    speeds = {n: probe(n) for n in (most, 1)}
    return max(speeds, key=lambda n: (speeds[n], n)), speeds


def budget_passes(tr: TrainConfig, train_tokens: int, batch_tokens: int, tokens_per_s) -> float:
    """How many times a 1-layer model reads ``train_tokens`` within the budget."""
    kind, value = tr.budget
    if kind == "epochs":
        return float(value)
    if kind == "steps":
        return value * batch_tokens / train_tokens
    return value * 60 * tokens_per_s() / train_tokens


def choose(cfg, tr: TrainConfig, train_tokens: int, tokens_per_s,
           record: dict | None = None) -> tuple[object, TrainConfig, str]:
    """``cfg`` (`LMConfig`) and ``tr`` with their unset fields chosen; and one line saying why.

    ``tokens_per_s()`` is called (once) only when the budget is in minutes. ``record`` (a dict)
    receives what was measured and chosen (``tokens_per_s``, ``passes``, ``chosen``): config.json
    keeps it, and the chosen values themselves, so a resumed or replayed run never measures again."""
    auto = [f for f in ("layers", "batch_size", "dropout") if getattr(cfg, f) is None]
    auto_lr = tr.lr is None and tr.optimizer in ("adam", "adamw")
    if not auto and not auto_lr:
        return cfg, tr, ""
    batch_for_passes = cfg.batch_size or LARGE["batch_size"]
    speed: dict[str, float] = {}   # tokens/s, measured at most once
    passes = budget_passes(tr, train_tokens, batch_for_passes * cfg.seq_len,
                           lambda: speed.setdefault("v", tokens_per_s()))
    layers = cfg.layers or (SMALL if passes / DEEP_SLOWDOWN >= SMALL_TEXT_PASSES else LARGE)["layers"]
    kind = "small" if layers > 1 else "large"
    base = SMALL if kind == "small" else LARGE
    batch = cfg.batch_size or base["batch_size"]
    if tr.budget[0] == "minutes":     # the chosen model's own passes
        own = passes / DEEP_SLOWDOWN ** (layers - 1)
    else:
        own = budget_passes(tr, train_tokens, batch * cfg.seq_len, None)
    chosen = {"layers": layers, "batch_size": batch,
              "dropout": cfg.dropout if cfg.dropout is not None else
              round(min(MAX_DROPOUT, own / PASSES_PER_DROPOUT), 3)}
    cfg = dataclasses.replace(cfg, **chosen)
    if auto_lr:
        tr = dataclasses.replace(tr, lr=base["lr"])
    measured = f" at a measured {speed['v']:,.0f} tokens/s" if speed else ""
    if record is not None:
        record.update(tokens_per_s=speed.get("v"), passes=passes, recipe=kind,
                      chosen={k: getattr(cfg, k) for k in auto} | ({"lr": tr.lr} if auto_lr else {}))
    why = (f"recipe: the budget reads the training text ~{passes:.1f} times with one layer{measured}: "
           f"{kind}-text recipe: " + ", ".join(f"{k} {getattr(cfg, k)}" for k in auto) +
           (f", lr {tr.lr:g}" if auto_lr else "") + " (set any of them to override)")
    return cfg, tr, why
