"""``rnnkit explain RUN --text FILE --out report.html``: record a language model's hidden states, cell
states and gates over a text and write the self-contained activation report (`rnnkit.viz.report`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rnnkit.data.atomic import atomic_write
from rnnkit.data.textio import decode_bytes
from rnnkit.viz.report import MAX_BYTES, MAX_CHARS, unit_budget


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "explain", help="activation report of a language model over a text (one HTML page)",
        description="Run a trained character language model over the text of FILE, record every "
                    "layer's hidden state, cell state and gates at each character, and write one "
                    "self-contained HTML page: characters coloured by a chosen unit, a unit picker "
                    "sorted by correlation with properties of the text, gate-saturation histograms, "
                    "and the predicted next characters on hover.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run folder written by `rnnkit train` (a language model)")
    p.add_argument("--text", required=True, metavar="FILE", help="UTF-8 text to read (- for stdin)")
    p.add_argument("--out", default="report.html", help="the HTML file to write")
    p.add_argument("--max-chars", type=int, default=MAX_CHARS,
                   help=f"read at most this many characters of the text (at most {MAX_CHARS:,})")
    p.add_argument("--device", default="cpu", help="where to run the model")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace, out=None) -> Path:
    """Write the report; print where it is and what it holds; return its path."""
    from rnnkit.tasks import lm
    from rnnkit.viz import activations, render_report

    out = out or sys.stdout
    if isinstance(args.max_chars, bool) or not 1 <= args.max_chars <= MAX_CHARS:
        raise ValueError(f"--max-chars must be between 1 and {MAX_CHARS:,}, got {args.max_chars}")
    if args.text == "-":
        text = decode_bytes(sys.stdin.buffer.read(), "<stdin>", "utf-8", "strict")
    else:
        path = Path(args.text)
        if not path.is_file():
            raise FileNotFoundError(f"--text: {args.text!r} is not a file")
        text = decode_bytes(path.read_bytes(), str(path), "utf-8", "strict")
    if not text:
        raise ValueError(f"--text: {args.text!r} is empty; expected some text to read")
    cut = len(text) > args.max_chars
    text = text[:args.max_chars]
    loaded = lm.load(args.run, args.device)
    acts = activations(loaded, text)
    page = render_report(acts, title=f"rnnkit explain: {Path(args.run).name} on {Path(args.text).name}",
                         max_bytes=MAX_BYTES)
    atomic_write(args.out, page.encode("utf-8"))
    units = len(acts.unit_names())
    shown = min(units, unit_budget(len(json.dumps(acts.text)), len(acts.text), max_bytes=MAX_BYTES))
    print(f"wrote {args.out}: {len(acts.text):,} characters"
          + (f" (the text was cut at --max-chars {args.max_chars:,})" if cut else "")
          + f", {shown:,} of {units:,} units (hidden and cell states of {len(acts.layers)} layer(s)), "
          f"{len(page.encode()) / 1e6:.1f} MB", file=out)
    return Path(args.out)
