"""`export_run`: a run folder -> an export folder, written whole or not at all, its numbers checked.

::

    OUT/export.json     the manifest: format, task, each graph's file, inputs and outputs (names,
                        shapes with their dynamic axes, dtypes), what a consumer needs to know
                        (state layout, tokenisation), and the check of the numbers against rnnkit
    OUT/model.onnx      (or .pt2) the whole-sequence model
    OUT/step.onnx       (or .pt2) further graphs of the task, e.g. a language model's one step
    OUT/vocab.json      files the task writes beside them (the run's own vocabulary and config.json)
    OUT/config.json

The folder is assembled under a temporary name beside OUT and renamed into place, so an export that
fails leaves nothing behind and an existing OUT is never half-replaced.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rnnkit.errors import ConfigError
from rnnkit.export.contract import ExportPlan, plan_for
from rnnkit.export.formats import FORMATS, OPSET, ExportError, check_format, load_runner, \
    onnx_unavailable, write
from rnnkit.train import RunFolder

MANIFEST = "export.json"
FORMAT, VERSION = "rnnkit.export", 1
#: the sizes (batch, time) each written file is run at and compared with rnnkit: other than the
#: traced (2, 3), batch 1 included, so the dynamic axes are exercised
CHECK_SIZES = ((1, 7), (3, 5))
#: largest relative difference (max|a - b| / max(1, max|b|)) from rnnkit accepted at export time;
#: float32 rounding of the same arithmetic in another order stays near 1e-6
CHECK_TOLERANCE = 1e-4


@dataclass
class ExportResult:
    path: Path
    format: str
    task: str
    files: list[str]
    #: graph name -> largest relative difference from rnnkit over `CHECK_SIZES` and outputs
    differences: dict[str, float] = field(default_factory=dict)


def check_out(out, force: bool) -> Path:
    """``out`` as a Path; an existing path is refused unless ``force`` and it is an earlier export."""
    if not isinstance(out, (str, os.PathLike)) or not str(out):
        raise ConfigError(f"out: expected a folder path, got {out!r}")
    path = Path(out)
    if path.exists() or path.is_symlink():
        if not force:
            raise ConfigError(f"out: {str(path)!r} already exists; choose another --out, or pass "
                                  f"--force (force=True) to replace it")
        if not (path.is_dir() and (path / MANIFEST).is_file()):
            raise ConfigError(f"out: {str(path)!r} exists and is not an rnnkit export folder (it "
                                  f"has no {MANIFEST}); --force only replaces an earlier export")
    return path


def export_run(run, fmt: str, out, *, force: bool = False) -> ExportResult:
    """Export the model of run folder ``run`` in ``fmt`` ("onnx" or "pt2") into the folder ``out``.

    Every graph written is loaded back (onnxruntime / ``torch.export.load``), run at `CHECK_SIZES`
    and compared with rnnkit's own forward; a difference above `CHECK_TOLERANCE` is an
    `ExportError`. ``force`` replaces an earlier export at ``out``."""
    check_format(fmt)
    if fmt == "onnx" and onnx_unavailable():
        raise ExportError(onnx_unavailable())
    path = check_out(out, force)
    plan = plan_for(RunFolder(run))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        differences = {}
        for graph in plan.graphs:
            write(graph, fmt, tmp / (graph.name + FORMATS[fmt]))
            differences[graph.name] = _check(graph, fmt, tmp / (graph.name + FORMATS[fmt]))
        for name, data in plan.files.items():
            (tmp / name).write_bytes(data)
        (tmp / MANIFEST).write_text(json.dumps(manifest(plan, fmt, run, differences), indent=2) + "\n",
                                    encoding="utf-8")
        os.chmod(tmp, 0o777 & ~_umask())
        _replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    files = sorted(p.name for p in path.iterdir())
    return ExportResult(path, fmt, plan.task, files, differences)


def _check(graph, fmt: str, file: Path) -> float:
    """The file run at `CHECK_SIZES` against ``graph.reference``: the largest relative difference."""
    run = load_runner(fmt, file)
    worst = 0.0
    for batch, time in CHECK_SIZES:
        inputs = graph.sample(batch, time)
        got, want = run(*inputs), graph.reference(*inputs)
        for name, a, b in zip(graph.output_names, got, want):
            if tuple(a.shape) != tuple(b.shape):
                raise ExportError(f"{file.name}: output {name!r} has shape {tuple(a.shape)} at batch "
                                  f"{batch}, time {time}; rnnkit gives {tuple(b.shape)}")
            a, b = a.double(), b.double()  # a bool output (a mask) compares as 0/1
            d = float((a - b).abs().max() / max(1.0, float(b.abs().max())))
            if not d <= CHECK_TOLERANCE:  # NaN fails too
                raise ExportError(f"{file.name}: output {name!r} differs from rnnkit by {d:.3e} "
                                  f"(relative) at batch {batch}, time {time}; more than "
                                  f"{CHECK_TOLERANCE:g}")
            worst = max(worst, d)
    return worst


def manifest(plan: ExportPlan, fmt: str, run, differences: dict[str, float]) -> dict:
    """export.json: what each file is and how to feed it."""
    def tensor_doc(graph, name, tensor):
        axes = graph.dynamic.get(name, {})
        return {"name": name, "dtype": str(tensor.dtype).removeprefix("torch."),
                "shape": [axes.get(i, int(n)) for i, n in enumerate(tensor.shape)]}

    graphs = {}
    for g in plan.graphs:
        inputs = g.sample(2, 3)
        outputs = g.reference(*inputs)
        graphs[g.name] = {
            "file": g.name + FORMATS[fmt], "description": g.doc,
            "inputs": [tensor_doc(g, n, t) for n, t in zip(g.input_names, inputs)],
            "outputs": [tensor_doc(g, n, t) for n, t in zip(g.output_names, outputs)],
            "check": {"sizes (batch, time)": [list(s) for s in CHECK_SIZES],
                      "largest relative difference from rnnkit": differences[g.name]}}
    return {"format": FORMAT, "version": VERSION, "task": plan.task, "model_format": fmt,
            **({"opset": OPSET} if fmt == "onnx" else {}), "torch": torch.__version__,
            "run": str(Path(run).resolve()), "graphs": graphs, "files": sorted(plan.files),
            **plan.info}


def _replace(tmp: Path, path: Path) -> None:
    """Move the finished folder ``tmp`` to ``path``, replacing an earlier export there."""
    if not path.exists():
        os.replace(tmp, path)
        return
    old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
    os.replace(path, old / "export")
    try:
        os.replace(tmp, path)
    except OSError:
        os.replace(old / "export", path)  # put the earlier export back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
