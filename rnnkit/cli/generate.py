"""``rnnkit generate RUN --prompt TEXT``: sample text from a trained language model, streaming it."""
from __future__ import annotations

import argparse
import sys

from rnnkit.tasks import lm


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "generate", help="sample text from a trained language model",
        description="Continue PROMPT with LENGTH sampled tokens, printed as they are produced. "
                    "--temperature 0 is greedy (always the most likely token).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run folder written by `rnnkit train`")
    p.add_argument("--prompt", default="", help="text to continue (empty: start a new line)")
    p.add_argument("--length", type=int, default=500, help="tokens to generate")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="below 1 sharper, above 1 more random; 0 greedy")
    p.add_argument("--top-k", type=int, default=None, help="sample among the K most likely tokens")
    p.add_argument("--top-p", type=float, default=None,
                   help="sample among the most likely tokens whose probabilities add up to P")
    p.add_argument("--seed", type=int, default=None, help="random seed (sample i uses seed + i)")
    p.add_argument("--num-samples", type=int, default=1, help="how many samples")
    p.add_argument("--unk", choices=("error", "replace"), default="error",
                   help="prompt characters the vocabulary lacks: an error, or fed as <unk>")
    p.add_argument("--condition", default=None, metavar="LABEL",
                   help="a conditional model (trained with --condition-col): write texts of this "
                        "class, one per sample, each ending at a newline")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",  # decode.sampler.PRECISIONS
                   help="bf16: the step's weights in bf16, half the bytes read per token (faster at "
                        "small batches; fp32 keeps the same tokens as any fp32 step loop)")
    p.add_argument("--device", default="cpu", help="where to run the model")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace, out=None) -> list[str]:
    """Print the samples to ``out`` (stdout) as they are drawn; returns them (prompt included)."""
    out = out or sys.stdout
    if args.num_samples < 1:
        raise ValueError(f"--num-samples must be >= 1, got {args.num_samples}")
    loaded = lm.load(args.run, args.device)
    if args.condition is not None or loaded.config.condition_col is not None:
        return _conditional(args, loaded, out)
    seed = args.seed
    samples = []
    for i in range(args.num_samples):
        pieces = lm.iter_generate(loaded, args.prompt, args.length, temperature=args.temperature,
                                  top_k=args.top_k, top_p=args.top_p,
                                  seed=None if seed is None else seed + i, unk=args.unk,
                                  precision=args.precision)
        if args.num_samples > 1:
            out.write(f"{'' if i == 0 else chr(10)}=== sample {i + 1} ===\n")
        out.write(args.prompt)
        text = [args.prompt]
        for piece in pieces:
            out.write(piece)
            out.flush()
            text.append(piece)
        out.write("\n")
        out.flush()
        samples.append("".join(text))
    return samples


def _conditional(args, loaded, out) -> list[str]:
    from rnnkit.tasks.lm.conditional import generate
    if args.condition is None:
        raise ValueError(f"{args.run} is a conditional language model: give --condition LABEL")
    if args.precision != "fp32":
        raise ValueError(f"--precision {args.precision}: a conditional model generates in fp32 only")
    if args.prompt:
        raise ValueError("--prompt: a conditional model writes whole texts from --condition; "
                         "drop --prompt")
    texts = generate(loaded, args.condition, args.num_samples, length=args.length,
                     temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                     seed=args.seed, device=args.device)
    for text in texts:
        out.write(text + "\n")
    out.flush()
    return texts
