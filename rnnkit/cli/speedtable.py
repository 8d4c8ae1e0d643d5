"""The speed benchmark behind ``rnnkit bench`` and ``benchmarks/bench_speed.py``.

For SimpleRNN, GRU and LSTM at three sizes it times one forward+backward pass and one forward pass
(inference) of each contender, interleaved in one process (every repeat times each contender once,
in a rotating order, so a load change on a shared machine hits all alike; warm-up first; median with
min–max): rnnkit's chosen kernel in fp32 and in bf16, ``torch.nn`` in fp32 and under
``torch.autocast("cpu", torch.bfloat16)``, a textbook per-step loop over ``torch.nn.*Cell`` and
Keras 3 on the torch backend. Each figure is also given in GFLOP/s and as a fraction of the machine's
fp32 matrix-product peak, measured in the same run (a 2048×2048 product). Then text generation
(characters/s, 2-layer LSTM(512), batch 1 and 64: `rnnkit.decode.Sampler` against a plain
``torch.nn.LSTM`` step loop), and the peak memory (RSS) of a training step, each in a fresh process.

FLOPs counted: the matrix products only, 2·G·H·(I + H) per token, layer and direction for the
forward pass and three times that for forward+backward.
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import rnnkit.nn as rnn_nn  # noqa: E402

CONFIGS = {  # name: (input I, hidden H, layers L, batch B, steps T)
    "a": (28, 256, 1, 32, 35),
    "b": (64, 512, 2, 64, 100),
    "c": (1024, 1024, 1, 16, 200),
}
CELLS = ("RNN", "GRU", "LSTM")
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
CONTENDERS = ("rnnkit", "rnnkit bf16", "torch.nn", "torch.nn autocast-bf16", "textbook loop",
              "keras3 (torch)")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: the clock: wall time (what a user waits), or this process's CPU time — with one thread the work
#: done, which other processes on a shared machine barely disturb (``rnnkit bench --clock cpu``)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def time_interleaved(fns: dict, repeats: int, warmup: int) -> dict:
    """Seconds per call of each function: ``{name: [t_1 .. t_repeats]}``, timed in rotation."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for n in names[r % len(names):] + names[:r % len(names)]:
            t = clock()
            fns[n]()
            times[n].append(clock() - t)
    return times


def matmul_peak(dtype=torch.float32, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n×n matrix product (the best of ``repeats``: the peak, not the typical)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(time_interleaved({"mm": lambda: a @ b}, repeats, 1)["mm"])
    return 2 * n ** 3 / best / 1e9


# -- contenders ---------------------------------------------------------------------------------
class Textbook(nn.Module):
    """The per-step loop of a textbook: ``torch.nn.*Cell`` called once per step and layer."""

    def __init__(self, cell: str, I: int, H: int, L: int):
        super().__init__()
        cls = {"RNN": nn.RNNCell, "GRU": nn.GRUCell, "LSTM": nn.LSTMCell}[cell]
        self.cells = nn.ModuleList(cls(I if k == 0 else H, H) for k in range(L))
        self.lstm = cell == "LSTM"

    def forward(self, x):  # (T, B, I)
        for cell in self.cells:
            state, outs = None, []
            for x_t in x.unbind(0):
                state = cell(x_t, state)
                outs.append(state[0] if self.lstm else state)
            x = torch.stack(outs)
        return x


def keras_model(cell: str, I: int, H: int, L: int):
    """Keras 3 layers on the torch backend, or the reason they cannot be used."""
    try:
        import keras
    except ImportError as e:
        return f"not installed ({e})"
    if keras.backend.backend() != "torch":
        return f"KERAS_BACKEND is {keras.backend.backend()!r}, not 'torch'"
    cls = {"RNN": keras.layers.SimpleRNN, "GRU": keras.layers.GRU, "LSTM": keras.layers.LSTM}[cell]
    model = keras.Sequential([keras.Input((None, I))] + [cls(H, return_sequences=True) for _ in range(L)])
    return lambda x: model(x.transpose(0, 1))  # Keras is batch-first


def contenders(cell: str, I: int, H: int, L: int) -> tuple[dict, nn.Module]:
    """``({name: forward(x (T, B, I)) -> output tensor} (or a string: why it is missing), rnnkit's
    stack)``."""
    ours = getattr(rnn_nn, cell)(I, H, L)
    ours16 = getattr(rnn_nn, cell)(I, H, L, precision="bf16")
    ref = getattr(nn, cell)(I, H, L)

    def autocast_ref(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return ref(x)[0]
    return {
        "rnnkit": lambda x: ours(x)[0],
        "rnnkit bf16": lambda x: ours16(x)[0],
        "torch.nn": lambda x: ref(x)[0],
        "torch.nn autocast-bf16": autocast_ref,
        "textbook loop": Textbook(cell, I, H, L),
        "keras3 (torch)": keras_model(cell, I, H, L),
    }, ours


def kernel_label(stack) -> str:
    if stack.kernel != "fused":
        return stack.kernel
    return "C++" if stack.fast_path_unavailable("native") is None else "torch fused"


def flops_per_token(cell: str, I: int, H: int, L: int) -> float:
    G = GATES[cell]
    return sum(2 * G * H * ((I if k == 0 else H) + H) for k in range(L))


def bench_training(configs, repeats: int, warmup: int, peak: float, out=print) -> list[dict]:
    rows = []
    for name in configs:
        I, H, L, B, T = CONFIGS[name]
        x = torch.randn(T, B, I)
        for cell in CELLS:
            fns, ours = contenders(cell, I, H, L)
            missing = {n: f for n, f in fns.items() if isinstance(f, str)}
            run = {n: f for n, f in fns.items() if not isinstance(f, str)}
            fb = {n: (lambda f=f: f(x).float().sum().backward()) for n, f in run.items()}
            fw = {n: (lambda f=f: _no_grad(f, x)) for n, f in run.items()}
            t_fb = time_interleaved(fb, repeats, warmup)
            t_fw = time_interleaved(fw, repeats, warmup)
            fpt = flops_per_token(cell, I, H, L)
            for n in fns:
                row = {"config": name, "cell": cell, "contender": n, "missing": missing.get(n)}
                if n == "rnnkit":
                    row["kernel"] = kernel_label(ours)
                if n in run:
                    row.update(_figures("fb", t_fb[n], B * T, 3 * fpt, peak))
                    row.update(_figures("fw", t_fw[n], B * T, fpt, peak))
                    row["ratio_fb"] = statistics.median(b / a for a, b in zip(t_fb[n], t_fb["torch.nn"]))
                    row["ratio_fw"] = statistics.median(b / a for a, b in zip(t_fw[n], t_fw["torch.nn"]))
                rows.append(row)
                out(format_row(row))
    return rows


def _no_grad(f, x):
    with torch.no_grad():
        f(x)


def _figures(key: str, times: list, tokens: int, flops: float, peak: float) -> dict:
    med = statistics.median(times)
    return {f"{key}_tps": tokens / med, f"{key}_min": tokens / max(times), f"{key}_max": tokens / min(times),
            f"{key}_gflops": tokens * flops / med / 1e9, f"{key}_peak": tokens * flops / med / 1e9 / peak}


# -- generation ---------------------------------------------------------------------------------
def bench_generation(steps: int, batches=(1, 64), repeats: int = 3, V: int = 96, E: int = 64,
                     H: int = 512, out=print) -> list[dict]:
    from rnnkit.decode import Sampler, sample_next
    torch.manual_seed(0)
    emb, lstm, head = nn.Embedding(V, E), nn.LSTM(E, H, 2), nn.Linear(H, V)
    sampler = Sampler(lstm, emb, head)
    half = Sampler(lstm, emb, head, precision="bf16")   # `rnnkit generate --precision bf16`

    def plain(B):  # the plain torch.nn.LSTM step loop
        g = torch.Generator().manual_seed(0)
        toks = []
        with torch.inference_mode():
            o, state = lstm(emb(torch.zeros(1, B, dtype=torch.long)))
            logits = head(o[-1])
            for i in range(steps):
                tok = sample_next(logits, 1.0, None, None, g)
                toks.append(tok)
                if i + 1 < steps:
                    o, state = lstm(emb(tok).unsqueeze(0), state)
                    logits = head(o[0])
        return torch.stack(toks, 1)

    rows = []
    for B in batches:
        res: dict[str, torch.Tensor] = {}
        fns = {"rnnkit Sampler": lambda B=B: res.__setitem__("ours", sampler.generate(
                   steps, batch=B, temperature=1.0, generator=torch.Generator().manual_seed(0))),
               "rnnkit Sampler bf16": lambda B=B: res.__setitem__("half", half.generate(
                   steps, batch=B, temperature=1.0, generator=torch.Generator().manual_seed(0))),
               "torch.nn.LSTM loop": lambda B=B: res.__setitem__("plain", plain(B))}
        t = time_interleaved(fns, repeats, 0)
        same = bool((res["ours"] == res["plain"]).all())
        for n, ts in t.items():
            # bf16 weights draw other tokens by design: "same" is the fp32 guarantee
            row = {"batch": B, "contender": n, "cps": B * steps / statistics.median(ts),
                   "min": B * steps / max(ts), "max": B * steps / min(ts),
                   "same": same if "bf16" not in n else None,
                   "ratio": statistics.median(b / a for a, b in zip(ts, t["torch.nn.LSTM loop"]))}
            rows.append(row)
            out(f"| {B} | {n} | {row['cps']:,.0f} ({row['min']:,.0f}–{row['max']:,.0f}) | "
                f"{row['ratio']:.2f}× | {'—' if row['same'] is None else 'yes' if same else 'NO'} |")
    return rows


# -- memory -------------------------------------------------------------------------------------
def rss_of_training_step(config: str, cell: str, contender: str) -> float:
    """Peak RSS (MiB) during one forward+backward above the RSS before it, in a fresh process.
    Linux: the high-water mark is reset first (``/proc/self/clear_refs``), so the imports' own
    peak does not hide the step's."""
    code = ("import sys, torch; from rnnkit.cli import speedtable as b; "
            f"I,H,L,B,T=b.CONFIGS[{config!r}]; fns,_=b.contenders({cell!r},I,H,L); "
            f"f=fns[{contender!r}]; x=torch.randn(T,B,I); f(x[:2]).float().sum().backward(); "
            "import gc; gc.collect(); open('/proc/self/clear_refs','w').write('5'); "
            "st=lambda k: int([l for l in open('/proc/self/status') if l.startswith(k)][0].split()[1]); "
            "r0=st('VmRSS'); f(x).float().sum().backward(); print((st('VmHWM')-r0)/1024)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"RSS probe failed: {res.stderr[-800:]}")
    return float(res.stdout.strip().splitlines()[-1])


def bench_memory(configs=("b", "c"), contenders_=("rnnkit", "torch.nn"), out=print) -> list[dict]:
    rows = []
    for name in configs:
        for cell in CELLS:
            vals = {c: rss_of_training_step(name, cell, c) for c in contenders_}
            rows.append({"config": name, "cell": cell, **vals})
            out(f"| {name} | {cell} | " + " | ".join(f"{vals[c]:.0f}" for c in contenders_) + " |")
    return rows


# -- the whole run ------------------------------------------------------------------------------
def header(peak32: float, peak16: float) -> str:
    which = "wall" if clock is CLOCKS["wall"] else "CPU"
    return (f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads; {which} time.\n"
            f"Measured matrix-product peak (2048×2048): fp32 "
            f"{peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s.\nConfigs: " +
            "; ".join(f"({k}) I={v[0]} H={v[1]} L={v[2]} B={v[3]} T={v[4]}" for k, v in CONFIGS.items()))


TABLE_HEAD = ("| cfg | cell | contender | train tok/s (min–max) | GFLOP/s | % fp32 peak | × torch.nn "
              "| inference tok/s (min–max) | GFLOP/s | % fp32 peak | × torch.nn |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")


def format_row(r: dict) -> str:
    who = r["contender"] + (f" [{r['kernel']}]" if r.get("kernel") else "")
    if r.get("missing"):
        return f"| {r['config']} | {r['cell']} | {who} | {r['missing']} | | | | | | | |"
    return (f"| {r['config']} | {r['cell']} | {who} | {r['fb_tps']:,.0f} ({r['fb_min']:,.0f}–"
            f"{r['fb_max']:,.0f}) | {r['fb_gflops']:.0f} | {100 * r['fb_peak']:.0f}% | "
            f"{r['ratio_fb']:.2f}× | {r['fw_tps']:,.0f} ({r['fw_min']:,.0f}–{r['fw_max']:,.0f}) | "
            f"{r['fw_gflops']:.0f} | {100 * r['fw_peak']:.0f}% | {r['ratio_fw']:.2f}× |")


def run(quick: bool = False, out=print, memory: bool = True, clock_name: str = "wall") -> dict:
    """Run everything and print the tables (markdown); returns the rows."""
    global clock
    clock = CLOCKS[clock_name]
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    out(header(peak32, peak16))
    out("\n### Training (forward+backward) and inference (forward) speed\n")
    out(TABLE_HEAD)
    configs = ("a",) if quick else tuple(CONFIGS)
    rows = bench_training(configs, 3 if quick else 7, 1, peak32, out)
    out("\n### Generation: characters/s, 2-layer LSTM(512), 96 symbols\n")
    out("| batch | contender | chars/s (min–max) | × torch.nn | same tokens |\n|---|---|---|---|---|")
    gen = bench_generation(200 if quick else 2000, repeats=1 if quick else 3, out=out)
    mem = []
    if memory and not quick:
        out("\n### Peak memory of a training step (RSS increase, MiB)\n")
        out("| cfg | cell | rnnkit | torch.nn |\n|---|---|---|---|")
        mem = bench_memory(out=out)
    return {"peak_fp32": peak32, "peak_bf16": peak16, "training": rows, "generation": gen,
            "memory": mem}
