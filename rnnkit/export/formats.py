"""The two file formats: ONNX (``torch.onnx.export``, run by onnxruntime) and ``torch.export``'s
``.pt2`` (``torch.export.save``, run by ``torch.export.load`` without rnnkit). Each has a writer and a
runner; the runner is what the exporter checks the written file with.

Both start from `torch.export.export` of the graph's module with its dynamic axes as
``torch.export.Dim`` objects (one per axis name, so "batch" is the same size in every input).
"""
from __future__ import annotations

import importlib.util
import inspect
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.errors import ConfigError
from rnnkit.export.contract import ExportError, Graph

#: format name -> file suffix
FORMATS = {"onnx": ".onnx", "pt2": ".pt2"}
#: the ONNX operator set written (17 brought LayerNormalization; 18 is what torch's exporter targets)
OPSET = 18
#: the sizes the graphs are traced with: not 0 or 1, which `torch.export` would specialise on
TRACE_BATCH, TRACE_TIME = 2, 3


def check_format(fmt) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"format: expected one of {sorted(FORMATS)}, got {fmt!r}")
    return fmt


def onnx_unavailable() -> str | None:
    """Why ONNX files cannot be written or run here, or None."""
    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"ONNX export needs the packages {missing} (torch's exporter writes through onnx and "
                f"onnxscript; rnnkit checks the file with onnxruntime): pip install 'rnnkit[export]'")
    return None


def _dynamic_shapes(graph: Graph, inputs: tuple[Tensor, ...]) -> dict:
    """The graph's dynamic axes in `torch.export`'s form: per ``forward`` parameter (a tuple for
    ``*args``), ``{axis: Dim}``."""
    dims: dict[str, torch.export.Dim] = {}
    specs = []
    for name in graph.input_names:
        axes = graph.dynamic.get(name, {})
        specs.append({a: dims.setdefault(n, torch.export.Dim(n, min=1)) for a, n in axes.items()} or None)
    bound = inspect.signature(graph.module.forward).bind(*inputs).arguments
    it, out = iter(specs), {}
    for pname, value in bound.items():
        out[pname] = tuple(next(it) for _ in value) if isinstance(value, tuple) else next(it)
    return out


def _forget_eager_scans() -> None:
    """Drop dynamo's cached compilations of `torch.scan`'s runner before an export.

    An eager ``torch.scan`` (the engine's scan kernel, e.g. while training or recording activations)
    compiles scan's inner runner with static sizes; a later export in the same process checks those
    entries' guards against its symbolic sizes, and checking ``time == 24`` adds the guard ``time !=
    24``: the export then fails with "Constraints violated (time)". Only that function's entries are
    dropped (the caller's own ``torch.compile`` caches stay); if torch's layout changes, all of
    dynamo's caches are reset instead, which costs recompilation, never correctness."""
    from torch._higher_order_ops import scan as scan_module
    outer = getattr(getattr(scan_module, "scan", None), "__code__", None)
    codes = [c for c in (outer.co_consts if outer else ())
             if getattr(c, "co_name", "") == "run_flattened_scan"]
    reset_code = getattr(getattr(torch._C._dynamo, "eval_frame", None), "reset_code", None)
    if len(codes) == 1 and reset_code is not None:
        reset_code(codes[0])
    else:
        torch._dynamo.reset()


def trace(graph: Graph) -> torch.export.ExportedProgram:
    """`torch.export.export` of ``graph.module`` on ``graph.sample(2, 3)`` with its dynamic axes."""
    # The exported copy needs no gradients. With them, tracing a scan over a layer norm goes through
    # scan's autograd path, whose saved sizes break the ONNX exporter's type-promotion pass.
    graph.module.eval().requires_grad_(False)
    inputs = graph.sample(TRACE_BATCH, TRACE_TIME)
    _forget_eager_scans()
    try:
        return torch.export.export(graph.module, inputs, dynamic_shapes=_dynamic_shapes(graph, inputs))
    except Exception as exc:  # any tracing failure: say which graph, keep torch's reason
        raise ExportError(f"torch.export could not trace the {graph.name!r} graph: "
                          f"{type(exc).__name__}: {_first_line(exc)}") from exc


def write(graph: Graph, fmt: str, path: Path) -> None:
    """Write ``graph`` to ``path`` in ``fmt``."""
    check_format(fmt)
    program = trace(graph)
    if fmt == "pt2":
        torch.export.save(program, path)
        return
    reason = onnx_unavailable()
    if reason:
        raise ExportError(reason)
    # the exporter's notes on its own internals (and on torchvision's ops being absent) are not
    # the user's business: warnings and its registry's log are quiet while it runs
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(program, input_names=list(graph.input_names),
                                             output_names=list(graph.output_names),
                                             opset_version=OPSET, dynamo=True, verbose=False)
    except Exception as exc:  # any conversion failure: say which graph, keep torch's reason
        raise ExportError(f"torch.onnx.export could not convert the {graph.name!r} graph: "
                          f"{type(exc).__name__}: {_first_line(exc)}") from exc
    finally:
        registry_log.setLevel(level)
    if onnx_program is None:  # only without dynamo, which is not used here
        raise ExportError(f"torch.onnx.export returned no program for the {graph.name!r} graph")
    onnx_program.save(str(path))


def load_runner(fmt: str, path: Path):
    """A function ``run(*inputs) -> tuple of output tensors`` for the file at ``path``."""
    check_format(fmt)
    if fmt == "pt2":
        module = torch.export.load(path).module()

        def run_pt2(*inputs: Tensor) -> tuple[Tensor, ...]:
            with torch.no_grad():
                return tuple(module(*inputs))
        return run_pt2
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run_onnx(*inputs: Tensor) -> tuple[Tensor, ...]:
        feed = {n: np.ascontiguousarray(x.detach().cpu().numpy()) for n, x in zip(names, inputs)}
        return tuple(torch.from_numpy(y) for y in session.run(None, feed))
    return run_onnx


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
