"""Bad input to `rnnkit export`: damaged run folders, unknown formats, an output that exists, a task or
a cell that cannot be exported — each one clear message, and nothing written."""
from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from torch import Tensor, nn

from rnnkit.cells import Cell
from rnnkit.cli.main import main
from rnnkit.core import RecurrentStack
from rnnkit.export import MANIFEST, ExportError, ExportStack, Graph, export_run, export_unavailable
from rnnkit.export.formats import write


def damaged(lstm_run, tmp_path, name):
    run = tmp_path / name
    shutil.copytree(lstm_run, run)
    return run


def cli_error(capsys, *argv, status: int | None = None) -> str:
    """Run ``rnnkit export ARGV``: it must fail with one message (and ``status``, when given)."""
    code = main(["export", *map(str, argv)])
    assert code != 0 and (status is None or code == status), code
    err = capsys.readouterr().err
    assert err.startswith("rnnkit export: error: ") and "Traceback" not in err
    return err


def test_damaged_run_folders_are_named_with_what_is_wrong(lstm_run, tmp_path, capsys):
    out = tmp_path / "out"
    run = damaged(lstm_run, tmp_path, "no-config")
    (run / "config.json").unlink()
    assert "has no config.json" in cli_error(capsys, run, "--format", "onnx", "--out", out, status=4)

    run = damaged(lstm_run, tmp_path, "bad-json")
    (run / "config.json").write_text("{\"task\": \"lm\", ")
    assert "not valid JSON" in cli_error(capsys, run, "--format", "pt2", "--out", out)

    run = damaged(lstm_run, tmp_path, "no-task")
    cfg = json.loads((run / "config.json").read_text())
    del cfg["task"]
    (run / "config.json").write_text(json.dumps(cfg))
    assert "task" in cli_error(capsys, run, "--format", "pt2", "--out", out)

    run = damaged(lstm_run, tmp_path, "bad-weights")
    weights = sorted(run.rglob("*.safetensors"))  # wherever the run folder keeps its checkpoints
    assert weights
    for p in weights:
        p.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    err = cli_error(capsys, run, "--format", "onnx", "--out", out)
    assert ".safetensors" in err

    run = damaged(lstm_run, tmp_path, "no-vocab")
    (run / "vocab.json").unlink()
    assert "vocab.json" in cli_error(capsys, run, "--format", "onnx", "--out", out)

    assert "does not exist" in cli_error(capsys, tmp_path / "nowhere", "--format", "onnx", "--out", out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temporary left


def test_a_task_without_an_exporter_lists_the_exportable_ones(lstm_run, tmp_path):
    run = damaged(lstm_run, tmp_path, "other-task")
    cfg = json.loads((run / "config.json").read_text())
    cfg["task"] = "chess"
    (run / "config.json").write_text(json.dumps(cfg))
    # every task rnnkit trains has an exporter, and the message lists them all
    from rnnkit.tasks import TASKS
    with pytest.raises(ExportError, match=r"runs of task 'chess' cannot be exported yet; exportable "
                                         r"tasks: " + re.escape(str(sorted(TASKS)))):
        export_run(run, "onnx", tmp_path / "out")


def test_unknown_format_is_refused_by_the_cli_and_the_api(lstm_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", str(lstm_run), "--format", "tflite", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"format: expected one of \['onnx', 'pt2'\], got 'tflite'"):
        export_run(lstm_run, "tflite", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_existing_output_is_refused_without_force_and_replaced_with_it(lstm_run, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    err = cli_error(capsys, lstm_run, "--format", "pt2", "--out", out, status=2)
    assert "already exists" in err and "--force" in err
    # --force replaces an earlier export only, never an arbitrary folder
    err = cli_error(capsys, lstm_run, "--format", "pt2", "--out", out, "--force")
    assert "not an rnnkit export folder" in err
    assert (out / "precious.txt").read_text() == "keep me"
    a_file = tmp_path / "file.onnx"
    a_file.write_text("x")
    assert "already exists" in cli_error(capsys, lstm_run, "--format", "onnx", "--out", a_file)

    fresh = tmp_path / "fresh"
    first = export_run(lstm_run, "pt2", fresh)
    stamp = (fresh / MANIFEST).stat().st_mtime_ns
    assert "already exists" in cli_error(capsys, lstm_run, "--format", "pt2", "--out", fresh)
    assert main(["export", str(lstm_run), "--format", "pt2", "--out", str(fresh), "--force"]) == 0
    assert (fresh / MANIFEST).stat().st_mtime_ns != stamp
    assert sorted(p.name for p in fresh.iterdir()) == first.files
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fresh.")]


class DataDependentCell(Cell):
    """A cell whose step branches in Python on a value: traceable by no exporter."""

    def step(self, xp_t: Tensor, state):
        (h,) = state
        h = torch.tanh(xp_t + h @ self.weight_hh.t()) if float(h.sum()) >= 0 else torch.zeros_like(h)
        return h, (h,)


def test_what_cannot_be_exported_says_why():
    bi = RecurrentStack("gru", 3, 4, bidirectional=True)
    assert "bidirectional" in export_unavailable(bi)
    with pytest.raises(ValueError, match="cannot export this recurrent stack: the stack is "
                                         "bidirectional"):
        ExportStack(bi)
    with pytest.raises(ValueError, match="is not an rnnkit RecurrentStack"):
        ExportStack(nn.GRU(3, 4))

    stack = RecurrentStack(DataDependentCell, 3, 4)
    graph = Graph("model", ExportStack(stack), lambda b, t: (torch.randn(t, b, 3), (torch.zeros(1, b, 4),)),
                  ("x", "h0"), ("out", "h_n"), {"x": {0: "time", 1: "batch"}, "h0": {1: "batch"}},
                  lambda x, h: stack(x, h))
    for fmt in ("pt2", "onnx"):
        with pytest.raises(ExportError, match="torch.export could not trace the 'model' graph: "):
            write(graph, fmt, None)
