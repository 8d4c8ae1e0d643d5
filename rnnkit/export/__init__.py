"""Export a trained run out of Python: ONNX (onnxruntime and other ONNX runtimes) and `torch.export`'s
``.pt2`` (``torch.export.load``, no rnnkit needed).

>>> from rnnkit.export import export_run
>>> export_run("runs/tm", "onnx", "exports/tm")      # model.onnx, step.onnx, vocab.json, export.json

- `contract`: what a task provides (`Graph`, `ExportPlan`, `register`), keyed on config.json's "task";
- `recurrence`: a recurrent stack in exportable PyTorch operators (the time loop as one scan; lengths
  and bidirectional stacks for whole sequences);
- `language_model`: the language model's whole-sequence and one-step graphs;
- `forecast`, `classify`, `tag`, `translate`: the other tasks' graphs (`translate`: an encoder and a
  one-step decoder);
- `formats`: the ONNX and ``.pt2`` writers and runners;
- `exporter`: the export folder, written atomically, each file checked against rnnkit.
"""
from rnnkit.export.contract import EXPORTERS, ExportPlan, Graph, register
from rnnkit.export.exporter import CHECK_TOLERANCE, MANIFEST, ExportResult, export_run
from rnnkit.export.formats import FORMATS, OPSET, ExportError, load_runner
from rnnkit.export.recurrence import ExportStack, export_unavailable

__all__ = ["CHECK_TOLERANCE", "EXPORTERS", "FORMATS", "MANIFEST", "OPSET", "ExportError", "ExportPlan",
           "ExportResult", "ExportStack", "Graph", "export_run", "export_unavailable", "load_runner",
           "register"]
