"""The default recipe: what to train when the user does not say, chosen from the budget, the size of
the training text and the speed measured on this machine.

A character LSTM's quality in a fixed time is a trade: a wider or deeper model learns more from each
token but reads fewer tokens, and one that reads a small text dozens of times memorises it unless
regularised. The recipe sizes the model from measurements, not from a table of corpora:

1. **Speed** (a budget in minutes only; a few seconds): the training speed of a 1-layer model of
   width 256 at 1 thread and at all threads (the faster count is kept: on a busy machine OpenMP's
   threads spin), in fp32 and, where the CPU computes bf16 natively, in bf16 (kept when it is at least
   `BF16_GAIN` times faster: more tokens a minute is quality, and bf16 training cost -0.5% loss per
   step here), then of width 512. Time per token is modelled as ``a + b * P`` (``P``: the model's
   parameters outside the embedding table, which a token touches), fitted to those two probes.
2. **Size**: of the candidates (`HIDDEN_LADDER` x 1 or 2 layers), the largest (in parameters) that
   the budget lets read at least `TOKENS_PER_PARAMETER` tokens per parameter (fewer,
   `FRESH_TOKENS_PER_PARAMETER`, for a model that reads its text at most `FRESH_PASSES` times), and
   that has at most `PARAMETERS_PER_TOKEN` parameters per token of training text. With a budget in
   steps or epochs there is no time to size by: the width is `DEFAULT_HIDDEN`, and the depth comes
   from the passes as before (a 2-layer model once it would read the text `SMALL_TEXT_PASSES` times).
3. **Training**: batch 64 for one layer, 32 for two; Adam's learning rate 8e-3 (one layer) or 4e-3
   (two) at width 256, scaled by 256 / width above it (a wider layer's updates move its outputs more);
   dropout ``min(MAX_DROPOUT, passes / PASSES_PER_DROPOUT)`` from the passes the chosen model makes,
   and, for a text read more than `WEIGHT_DROP_FROM` times, weight drop (DropConnect on the recurrent
   matrices, AWD-LSTM's regulariser) ``min(MAX_WEIGHT_DROP, (passes - WEIGHT_DROP_FROM) /
   PASSES_PER_WEIGHT_DROP)`` (none for a cell without a recurrent matrix).

Every field the user gives is kept (and restricts the candidates: ``--hidden 512`` sizes only the
depth); only the ones left unset (``None``) are chosen. The choice and what was measured are recorded
in config.json, so a resumed or replayed run never measures again. `choose` is a pure function of
(configs, text size, the measurements it asks for, bf16 support): its tests drive it with made-up
speeds.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable

import torch

from rnnkit.tasks.lm.config import DEFAULT_HIDDEN
from rnnkit.tasks.lm.model import LanguageModel, lm_loss
from rnnkit.train.config import TrainConfig

SMALL_TEXT_PASSES = 10.0
LARGE = {"layers": 1, "batch_size": 64, "lr": 8e-3}
SMALL = {"layers": 2, "batch_size": 32, "lr": 4e-3}
#: a 2-layer model (batch 32) reads about this many times fewer tokens than the 1-layer one of the
#: probe (batch 64) in the same time (measured: 3.0 on 2 CPU cores); steps/epochs budgets only
DEEP_SLOWDOWN = 3.0
PASSES_PER_DROPOUT = 80.0
MAX_DROPOUT = 0.3
#: weight drop starts once the model reads its text more than this many times, and rises by 1 every
#: `PASSES_PER_WEIGHT_DROP` passes beyond that, up to `MAX_WEIGHT_DROP`. Measured on The Time Machine
#: (1 x LSTM(384), dropout 0.3, equal steps, held-out last 10%): weight drop 0.2 costs 0.025 nats/char
#: at 14 passes, gains 0.005 at 28 and 0.027 at 56 (where 0.3 gains 0.026 and 0.5 only 0.005)
WEIGHT_DROP_FROM = 20.0
PASSES_PER_WEIGHT_DROP = 50.0
MAX_WEIGHT_DROP = 0.3
HIDDEN_LADDER = (128, 256, 384, 512, 768, 1024)
PROBE_WIDTHS = (256, 512)
#: the budget must let the model read at least this many tokens per parameter (a plain LSTM(512) on a
#: 1 MB text was at its best, 1.50 nats/char, after ~6 tokens per parameter) ...
TOKENS_PER_PARAMETER = 5.0
#: ... or this many when it reads its text at most `FRESH_PASSES` times: nearly every token is new, so
#: the model is not near memorising it, and a wider one learns more from each token. Measured on the
#: French side of fra-eng.txt (6.2 MB; equal steps, held-out last 10%): 1 x LSTM(512) at 3.3 tokens
#: per parameter 1.259 nats/char, against 1.368 for 2 x LSTM(256) at 7.6 (which read 1.6x the tokens)
FRESH_TOKENS_PER_PARAMETER = 3.0
FRESH_PASSES = 2.0
#: and the model has at most this many parameters per training token (2 x LSTM(256) on The Time
#: Machine's 170k characters, the small-text recipe that beats every n-gram, has 5)
PARAMETERS_PER_TOKEN = 6.0
BF16_GAIN = 1.25


@dataclasses.dataclass(frozen=True)
class Candidate:
    hidden: int
    layers: int
    params: int       # all parameters
    compute: int      # parameters a token touches (outside the embedding table)


def candidates(cfg, vocab_size: int) -> list[Candidate]:
    """The models the recipe may choose for ``cfg`` (`LMConfig`): the widths and depths it leaves
    unset, counted on the meta device (no memory)."""
    widths = [cfg.hidden] if cfg.hidden else [cfg.embedding] if cfg.tie_weights else list(HIDDEN_LADDER)
    depths = [cfg.layers] if cfg.layers else [1, 2]
    out = []
    for h in widths:
        for n in depths:
            with torch.device("meta"):
                kw = dict(cfg.model_kwargs(), hidden=h, layers=n, dropout=0.0)
                model = LanguageModel(vocab_size, **kw)
            total = sum(p.numel() for p in model.parameters())
            table = model.embed.weight.numel() if model.embed is not None else 0
            out.append(Candidate(h, n, total, total - (0 if cfg.tie_weights else table)))
    return out


def probe_tokens_per_second(vocab_size: int, cfg, device: torch.device, seconds: float = 0.5, *,
                            hidden: int | None = None, precision: str = "fp32") -> float:
    """Training speed of a 1-layer model of ``cfg`` (width ``hidden``, default ``cfg.hidden`` or
    `DEFAULT_HIDDEN`) on random batches of 64 x ``seq_len`` (forward, backward, Adam; ``precision``
    "bf16": under CPU/CUDA bf16 autocast, as the Trainer trains), measured for about ``seconds``
    after two warm-up steps. The global RNG is left as it was."""
    hidden = hidden or cfg.hidden or DEFAULT_HIDDEN
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    with torch.random.fork_rng(devices=[]):
        model = LanguageModel(vocab_size, cfg.cell, hidden, 1, 0.0, cfg.embedding).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randint(0, vocab_size, (64, cfg.seq_len), device=device)
        steps, start = 0, 0.0   # start: the clock after the warm-up steps
        while True:
            with autocast:
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
    """How many times a model reads ``train_tokens`` within a step or epoch budget (or, for minutes,
    at ``tokens_per_s()``)."""
    kind, value = tr.budget
    if kind == "epochs":
        return float(value)
    if kind == "steps":
        return value * batch_tokens / train_tokens
    return value * 60 * tokens_per_s() / train_tokens


def time_model(points: dict[int, float]) -> Callable[[int], float]:
    """Seconds per token as a function of a model's compute parameters, through the probes' points
    (compute parameters -> seconds per token): linear between them; below the first, the first
    segment's line (its fixed cost kept, never negative); beyond the last, proportional to the last
    (a wider model is no cheaper per parameter: in fact past 512 units its matrices leave the cache
    and it is dearer, which is why a chosen width beyond the probes is probed itself)."""
    xs = sorted(points)
    ys = [points[x] for x in xs]

    def per_token(p: float) -> float:
        if p >= xs[-1]:
            return ys[-1] * p / xs[-1]
        if p <= xs[0]:
            if len(xs) == 1:
                return ys[0] * p / xs[0]
            b = max(0.0, (ys[1] - ys[0]) / (xs[1] - xs[0]))
            a = ys[0] - b * xs[0]
            return a + b * p if a > 0 else ys[0] * p / xs[0]
        k = next(i for i in range(1, len(xs)) if p <= xs[i])
        f = (p - xs[k - 1]) / (xs[k] - xs[k - 1])
        return ys[k - 1] + f * (ys[k] - ys[k - 1])
    return per_token


def size(cands: list[Candidate], seconds: float, per_token: Callable[[int], float],
         train_tokens: int) -> tuple[Candidate, float]:
    """The largest candidate (in parameters) that reads at least `TOKENS_PER_PARAMETER` tokens per
    parameter in ``seconds`` (`FRESH_TOKENS_PER_PARAMETER` if that is at most `FRESH_PASSES` passes
    over the text) and has at most `PARAMETERS_PER_TOKEN` parameters per training token (the
    smallest when none does); and the tokens it reads."""
    def tokens(c):
        return seconds / per_token(c.compute)

    def enough(c):
        n = tokens(c)
        need = FRESH_TOKENS_PER_PARAMETER if n <= FRESH_PASSES * train_tokens else TOKENS_PER_PARAMETER
        return n >= need * c.params
    fits = [c for c in cands if enough(c) and c.params <= PARAMETERS_PER_TOKEN * train_tokens]
    best = max(fits, key=lambda c: (c.params, -c.layers)) if fits else \
        min(cands, key=lambda c: (c.params, c.layers))
    return best, tokens(best)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matrix products natively (a CPU with AVX512-BF16 or AMX,
    through oneDNN; a CUDA GPU that supports bf16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def choose(cfg, tr: TrainConfig, train_tokens: int, measure: Callable[..., float], *,
           vocab_size: int, bf16: bool = False,
           record: dict | None = None) -> tuple[object, TrainConfig, str]:
    """``cfg`` (`LMConfig`) and ``tr`` with their unset fields chosen; and one line saying why.

    ``measure(hidden=H, precision=P)`` returns the tokens/s of a 1-layer model of width ``H``; it is
    called only for a budget in minutes (at width 256, or the user's width, in fp32; in bf16 too when
    ``bf16`` — the device computes bf16 natively — and ``tr.precision`` is unset; then at width 512
    when the width is the recipe's). ``record`` (a dict) receives what was measured and chosen:
    config.json keeps it, and the chosen values themselves, so a resumed or replayed run never
    measures again. An unset precision becomes "fp32" unless the measurements choose bf16."""
    auto = [f for f in ("hidden", "layers", "batch_size", "dropout", "weight_drop")
            if getattr(cfg, f) is None]
    auto_lr = tr.lr is None and tr.optimizer in ("adam", "adamw")
    minutes = tr.budget[0] == "minutes"
    auto_precision = tr.precision is None and minutes and bf16
    if not auto and not auto_lr and not auto_precision:
        return cfg, dataclasses.replace(tr, precision=tr.precision or "fp32"), ""
    notes: dict = {}
    if minutes:
        cfg, tr, passes, kind = _by_measured_speed(cfg, tr, train_tokens, measure, vocab_size,
                                                   auto_precision, notes)
    else:
        cfg, passes, kind = _by_passes(cfg, tr, train_tokens)
    tr = dataclasses.replace(tr, precision=tr.precision or "fp32")
    base = SMALL if cfg.layers > 1 else LARGE
    batch = cfg.batch_size or base["batch_size"]
    own = passes if minutes else budget_passes(tr, train_tokens, batch * cfg.seq_len, None)
    dropout = cfg.dropout if cfg.dropout is not None else round(min(MAX_DROPOUT, own / PASSES_PER_DROPOUT), 3)
    weight_drop = cfg.weight_drop if cfg.weight_drop is not None else \
        weight_drop_for(own) if has_recurrent_matrix(cfg.cell) else 0.0
    cfg = dataclasses.replace(cfg, batch_size=batch, dropout=dropout, weight_drop=weight_drop)
    if auto_lr:
        tr = dataclasses.replace(tr, lr=float(f"{base['lr'] * min(1.0, DEFAULT_HIDDEN / cfg.hidden):.4g}"))
    values = {k: getattr(cfg, k) for k in auto} | ({"lr": tr.lr} if auto_lr else {}) | \
        ({"precision": tr.precision} if auto_precision else {})
    if record is not None:
        record.update(tokens_per_s=notes.get("speed"), passes=passes, recipe=kind, chosen=values,
                      **({"probes": notes["probes"]} if "probes" in notes else {}))
    shown = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
    why = (f"recipe: {kind}: {shown} (the budget reads the training text ~{passes:.1f} times"
           f"{notes.get('said', '')}; set any of them to override)")
    return cfg, tr, why


def weight_drop_for(passes: float) -> float:
    """The recipe's weight drop for a model that reads its text ``passes`` times."""
    beyond = max(0.0, passes - WEIGHT_DROP_FROM)
    return round(min(MAX_WEIGHT_DROP, beyond / PASSES_PER_WEIGHT_DROP), 3)


def has_recurrent_matrix(cell: str) -> bool:
    """Whether ``cell`` has a ``weight_hh`` for weight drop to act on (minGRU/minLSTM read only x_t)."""
    from rnnkit.cells import CELLS
    return getattr(CELLS[cell](1, 1), "weight_hh", None) is not None


def _by_passes(cfg, tr, train_tokens):
    """A step or epoch budget: width `DEFAULT_HIDDEN` (unless set), depth from the passes."""
    batch_for_passes = cfg.batch_size or LARGE["batch_size"]
    passes = budget_passes(tr, train_tokens, batch_for_passes * cfg.seq_len, None)
    layers = cfg.layers or (SMALL if passes / DEEP_SLOWDOWN >= SMALL_TEXT_PASSES else LARGE)["layers"]
    kind = "small-text recipe" if layers > 1 else "large-text recipe"
    return dataclasses.replace(cfg, hidden=cfg.hidden or DEFAULT_HIDDEN, layers=layers), passes, kind


def _by_measured_speed(cfg, tr, train_tokens, measure, vocab_size, try_bf16, notes):
    """A budget in minutes: the precision from the probes, the size from the time model."""
    cands = candidates(cfg, vocab_size)
    widths = sorted({c.hidden for c in cands})
    w0 = PROBE_WIDTHS[0] if len(widths) > 1 else widths[0]
    probes = {"fp32": {w0: measure(hidden=w0, precision="fp32")}}
    precision = tr.precision or "fp32"
    if try_bf16:
        probes["bf16"] = {w0: measure(hidden=w0, precision="bf16")}
        precision = "bf16" if probes["bf16"][w0] >= BF16_GAIN * probes["fp32"][w0] else "fp32"
    elif precision not in probes:
        probes[precision] = {w0: measure(hidden=w0, precision=precision)}
    tr = dataclasses.replace(tr, precision=precision)
    speeds = probes[precision]
    # the probes' models (one layer of each width) in the time model's unit: compute parameters
    one_layer = {c.hidden: c.compute for c in candidates(dataclasses.replace(cfg, layers=1), vocab_size)}
    if len(widths) > 1:                # the width is the recipe's: a second probe
        speeds[PROBE_WIDTHS[1]] = measure(hidden=PROBE_WIDTHS[1], precision=precision)
    best, _ = size(cands, tr.minutes * 60, time_model({one_layer[w]: 1 / v for w, v in speeds.items()}),
                   train_tokens)
    if best.hidden > max(speeds):      # beyond the probes, where the time model guesses: measure it
        speeds[best.hidden] = measure(hidden=best.hidden, precision=precision)
    points = {one_layer[w]: 1 / v for w, v in speeds.items()}
    best, tokens = size(cands, tr.minutes * 60, time_model(points), train_tokens)
    notes.update(speed=speeds[w0], probes={p: {str(w): round(v) for w, v in s.items()}
                                           for p, s in probes.items()})
    measured = ", ".join(f"{p} width {w}: {v:,.0f}" for p, s in probes.items() for w, v in s.items())
    notes["said"] = (f", {tokens / best.params:.0f} tokens per parameter of {best.params / 1e6:.2f}M; "
                     f"measured tokens/s: {measured}")
    kind = f"{best.layers} x {cfg.cell}({best.hidden}), {precision}"
    return dataclasses.replace(cfg, hidden=best.hidden, layers=best.layers), tr, tokens / train_tokens, kind
