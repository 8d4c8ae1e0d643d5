"""``rnnkit export RUN --format onnx|pt2 --out PATH``: a trained model as files that run without rnnkit."""
from __future__ import annotations

import argparse
import sys

from rnnkit.export import FORMATS, MANIFEST, export_run


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export", help="export a trained model to ONNX or torch.export (.pt2)",
        description="Write the run's model as files that run without rnnkit: ONNX (onnxruntime) or "
                    "torch.export's .pt2 (torch.export.load). A language model gives model.* (whole "
                    "sequences) and step.* (one generation step), with vocab.json, config.json and "
                    f"{MANIFEST} (inputs, outputs, dynamic axes) beside them. Each file is run again "
                    "and compared with rnnkit before the folder is put in place.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run folder written by `rnnkit train`")
    p.add_argument("--format", required=True, choices=sorted(FORMATS), help="file format")
    p.add_argument("--out", required=True, metavar="PATH", help="folder to write (must not exist)")
    p.add_argument("--force", action="store_true", help="replace an earlier export at PATH")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace, out=None):
    """Export, then print what was written; returns the `rnnkit.export.ExportResult`."""
    out = out or sys.stdout
    result = export_run(args.run, args.format, args.out, force=args.force)
    out.write(f"exported the {result.task!r} run {args.run} as {result.format} to {result.path}:\n")
    for name in result.files:
        out.write(f"  {name}\n")
    for graph, diff in result.differences.items():
        out.write(f"checked {graph}: largest relative difference from rnnkit {diff:.1e}\n")
    return result
