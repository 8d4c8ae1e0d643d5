"""``rnnkit explain RUN --text FILE --out report.html``: record a model's hidden states, cell states and
gates over a text and write the self-contained activation report (`rnnkit.viz.report`): a character
language model per character; a tagger (sentences one per line, or CoNLL-U) or a text classifier (one
text per line) per word."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnkit.data.atomic import atomic_write
from rnnkit.data.textio import decode_bytes
from rnnkit.viz.report import MAX_BYTES, MAX_CHARS

MAX_WORDS = 20_000         #: the default --max-words (tagger and classifier)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "explain", help="activation report of a language model, tagger or classifier (one HTML page)",
        description="Run a trained model over the text of FILE, record every layer's hidden state, cell "
                    "state and gates (both directions of a bidirectional layer) at each character (a "
                    "character language model) or word (a tagger: sentences one per line or CoNLL-U; a "
                    "classifier: one text per line, optionally text<TAB>label), and write one "
                    "self-contained HTML page: the sequence coloured by a chosen unit, a unit picker "
                    "sorted by correlation with properties of the sequence, gate-saturation "
                    "histograms, and the model's predictions on hover.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run folder written by `rnnkit train` (task lm, tag or "
                                              "classify)")
    p.add_argument("--text", required=True, metavar="FILE", help="UTF-8 text to read (- for stdin)")
    p.add_argument("--out", default="report.html", help="the HTML file to write")
    p.add_argument("--max-chars", type=int, default=MAX_CHARS,
                   help=f"language model: read at most this many characters of the text (at most "
                        f"{MAX_CHARS:,})")
    p.add_argument("--max-words", type=int, default=MAX_WORDS,
                   help=f"tagger, classifier: read whole sentences (texts) up to this many words (at "
                        f"most {MAX_CHARS:,})")
    p.add_argument("--device", default="cpu", help="where to run the model")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (the recording runs one small step at a time: more "
                        "threads mostly wait on each other)")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace, out=None) -> Path:
    """Write the report; print where it is and what it holds; return its path."""
    from rnnkit.viz import activations, build_report
    from rnnkit.viz.activations import load_run
    from rnnkit.viz.tokens import cut_to_words, is_token_model, read_tag_input

    out = out or sys.stdout
    for flag, value in (("--max-chars", args.max_chars), ("--max-words", args.max_words)):
        if isinstance(value, bool) or not 1 <= value <= MAX_CHARS:
            raise ValueError(f"{flag} must be between 1 and {MAX_CHARS:,}, got {value}")
    if isinstance(args.threads, bool) or args.threads < 1:
        raise ValueError(f"--threads must be an int >= 1, got {args.threads}")
    import torch
    torch.set_num_threads(args.threads)
    if args.text == "-":
        text = decode_bytes(sys.stdin.buffer.read(), "<stdin>", "utf-8", "strict")
    else:
        path = Path(args.text)
        if not path.is_file():
            raise FileNotFoundError(f"--text: {args.text!r} is not a file")
        text = decode_bytes(path.read_bytes(), str(path), "utf-8", "strict")
    if not text:
        raise ValueError(f"--text: {args.text!r} is empty; expected some text to read")
    loaded = load_run(args.run, args.device)
    title = f"rnnkit explain: {Path(args.run).name} on {Path(args.text).name}"
    if is_token_model(loaded):
        from rnnkit.tasks.tag_api import LoadedTagger
        task = "tag" if isinstance(loaded, LoadedTagger) else "classify"
        source = read_tag_input(loaded, args.text, text) if task == "tag" else text
        source, cut = cut_to_words(source, args.max_words, task)
        acts = activations(loaded, source)
        page, shown = build_report(acts, title=title, max_bytes=MAX_BYTES)
        what = "sentence(s)" if task == "tag" else "text(s)"
        held = (f"{len(acts.segments):,} {what}, {len(acts.tokens):,} "
                f"{'characters' if acts.joiner == '' else 'words'}"
                + (f" (whole {what} up to --max-words {args.max_words:,})" if cut else ""))
        directions = " bidirectional" if any(layer.label.endswith("b") for layer in acts.layers) else ""
        layers = len({layer.label.rstrip("fb") for layer in acts.layers})
    else:
        cut = len(text) > args.max_chars
        acts = activations(loaded, text[:args.max_chars])
        page, shown = build_report(acts, title=title, max_bytes=MAX_BYTES)
        held = (f"{len(acts.text):,} characters"
                + (f" (the text was cut at --max-chars {args.max_chars:,})" if cut else ""))
        directions, layers = "", len(acts.layers)
    atomic_write(args.out, page.encode("utf-8"))
    print(f"wrote {args.out}: {held}, {shown:,} of {len(acts.unit_names()):,} units (hidden and cell "
          f"states of {layers}{directions} layer(s)), {len(page.encode()) / 1e6:.1f} MB", file=out)
    return Path(args.out)
