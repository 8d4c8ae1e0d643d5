"""Generation speed at batch 1 outside Python's rnnkit: the exported ONNX one-step model in onnxruntime
beside rnnkit's `Sampler` (what `rnnkit generate` steps with), greedy, the same tokens.

    RNNKIT_DATA=../shared/data python benchmarks/bench_export.py            # LSTM, GRU, minGRU: README table
    python benchmarks/bench_export.py --run runs/my-run --tokens 2000          # an existing run

For each cell a small character model is trained for a few steps on The Time Machine (the speed of a
step depends on the shapes, not on how well the model is trained), exported with
`rnnkit.export.export_run` to ONNX and to .pt2, and each contender generates the same greedy
continuation of the same prompt:

- ``Sampler.step``: rnnkit's fast step as `rnnkit generate` calls it (state in, new state out);
- ``Sampler.generate``: the Sampler's own loop (state updated in place, no copies);
- ``onnxruntime``: ``step.onnx`` in an onnxruntime session, the loop and argmax in NumPy;
- ``torch.export``: ``step.pt2`` loaded with ``torch.export.load`` (its graph run by torch eagerly).

Every contender's tokens are compared with ``Sampler.step``'s. Times are per token, the best of
``--repeats`` runs; with ``--threads 1`` (the default) both torch and onnxruntime compute in the calling
thread, so the process's CPU time (``--clock cpu``, the default) measures the work itself even on a
machine shared with other jobs. Benchmarks are not tests: nothing asserts a time.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install
sys.path.insert(0, str(Path(__file__).resolve().parent))

import omp_policy  # noqa: E402

omp_policy.apply_from_argv()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rnnkit.export import export_run, load_runner  # noqa: E402
from rnnkit.decode import Sampler  # noqa: E402
from rnnkit.tasks import language_model as lm  # noqa: E402

PROMPT = "the time traveller "


def train_run(cell: str, folder: Path, hidden: int, layers: int) -> Path:
    run = folder / f"run-{cell}"
    lm.train("timemachine", out=run, cell=cell, hidden=hidden, layers=layers, embedding=64,
             steps=20, batch_size=32, seq_len=64, dropout=0.0, sample_length=0, progress=False,
             echo=None)
    return run


def timed(fn, repeats: int, clock) -> tuple[float, object]:
    """Best time of ``repeats`` calls of ``fn`` and its last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        t = clock()
        result = fn()
        best = min(best, clock() - t)
    return best, result


def contenders(run: Path, folder: Path, tokens: int, threads: int):
    """name -> function generating ``tokens`` greedy token ids after the prompt."""
    loaded = lm.load(run)
    model, vocab = loaded.model, loaded.vocab
    prompt = torch.as_tensor(vocab.encode(PROMPT), dtype=torch.long).view(1, -1)
    sampler = Sampler(model.rnn, model.embed, model.head)

    def sampler_step():
        logits, state = sampler.prime(prompt)
        out = []
        for _ in range(tokens):
            token = logits.argmax(-1)
            out.append(int(token))
            logits, state = sampler.step(token, state)
        return out

    def sampler_generate():
        return sampler.generate(tokens, prompt=prompt, temperature=0.0)[0].tolist()

    onnx_dir, pt2_dir = folder / f"{run.name}-onnx", folder / f"{run.name}-pt2"
    export_run(run, "onnx", onnx_dir)
    export_run(run, "pt2", pt2_dir)
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    options.log_severity_level = 3
    step_session = onnxruntime.InferenceSession(str(onnx_dir / "step.onnx"), options,
                                                providers=["CPUExecutionProvider"])
    prime = load_runner("onnx", onnx_dir / "model.onnx")
    names = [i.name for i in step_session.get_inputs()]
    shapes = model.rnn.cells[0].state_shapes

    def onnxruntime_loop():
        zeros = [torch.zeros(model.layers, 1, *s) for s in shapes]
        logits, *state = (x.numpy() for x in prime(prompt, *zeros))
        logits, out = logits[:, -1], []
        for _ in range(tokens):
            token = logits.argmax(-1)
            out.append(int(token[0]))
            logits, *state = step_session.run(None, dict(zip(names, (token, *state))))
        return out

    pt2_step = torch.export.load(pt2_dir / "step.pt2").module()

    def pt2_loop():
        with torch.no_grad():
            logits, state = model(prompt)
            logits, out = logits[:, -1], []
            for _ in range(tokens):
                token = logits.argmax(-1)
                out.append(int(token))
                logits, *state = pt2_step(token, *state)
        return out

    return {"rnnkit Sampler.step": sampler_step, "rnnkit Sampler.generate": sampler_generate,
            "ONNX step in onnxruntime": onnxruntime_loop, "torch.export step (.pt2)": pt2_loop}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", default="lstm,gru,mingru", help="cells to train and time (comma-separated)")
    p.add_argument("--run", default=None, help="time this existing language-model run instead")
    p.add_argument("--hidden", type=int, default=256, help="hidden units of the trained models")
    p.add_argument("--layers", type=int, default=2, help="layers of the trained models")
    p.add_argument("--tokens", type=int, default=500, help="tokens generated per timed run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per contender (the best counts)")
    p.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="process CPU time (steady on a shared machine with one thread) or wall time")
    omp_policy.add_argument(p)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"batch 1, greedy, {args.tokens} tokens after {PROMPT!r}, {args.threads} thread(s), "
          f"{args.clock} time, best of {args.repeats}; torch {torch.__version__}")
    print("| model | generator | ms / token | tokens / s | vs Sampler.step | same tokens |")
    print("|---|---|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs = [Path(args.run)] if args.run else [train_run(c, folder, args.hidden, args.layers)
                                                  for c in args.cells.split(",")]
        for run in runs:
            m = lm.load(run).model
            label = f"{m.cell}, {m.layers}x{m.hidden}, V={m.vocab_size}"
            found = contenders(run, folder, args.tokens, args.threads)
            base, base_tokens = None, None
            for name, fn in found.items():
                fn()  # warm up (first-call set-up, caches)
                seconds, tokens = timed(fn, args.repeats, clock)
                if base is None:
                    base, base_tokens = seconds, tokens
                same = "yes" if tokens == base_tokens else \
                    f"no (first difference at {int(np.argmax(np.array(tokens) != np.array(base_tokens)))})"
                print(f"| {label} | {name} | {1e3 * seconds / args.tokens:.3f} | "
                      f"{args.tokens / seconds:,.0f} | {base / seconds:.2f}x | {same} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
