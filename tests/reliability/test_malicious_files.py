"""Files never run code: a malicious pickle (its ``__reduce__`` would create a marker file) planted in
every file slot of a run folder and of a Keras-door save -- as raw pickle bytes and inside the zip
``torch.save`` writes, with the checksums that bind the slot updated to match -- is refused on
loading, and the marker never appears. What is loaded how: JSON with ``json``, weights with
``safetensors``, ``trainer_state.pt`` with ``torch.load(weights_only=True)`` (PyTorch's restricted
unpickler: tensors, containers and numbers only; `rnnkit.train.checkpoint`)."""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from rnnkit.errors import RnnkitError

RUN_SLOTS = ["config.json", "vocab.json", "checkpoint.json", "model.safetensors", "last.safetensors",
             "trainer_state.pt", "history.jsonl"]
CHECKPOINT_SLOTS = {"model.safetensors", "last.safetensors", "trainer_state.pt", "history.jsonl"}


class Planted:
    """Unpickling this calls ``Path(marker).touch()``: the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def payloads(marker: Path) -> dict[str, bytes]:
    buf = io.BytesIO()
    torch.save({"step": 1, "evil": Planted(marker)}, buf)   # a real torch.save archive around it
    return {"raw pickle": pickle.dumps(Planted(marker)), "torch.save zip": buf.getvalue()}


def test_the_payload_does_run_code_when_unpickled(tmp_path):
    """The control: the payload is live (plain pickle.loads creates the marker)."""
    marker = tmp_path / "marker"
    pickle.loads(payloads(marker)["raw pickle"])
    assert marker.exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from rnnkit.tasks import lm
    root = tmp_path_factory.mktemp("planted")
    text = root / "t.txt"
    text.write_text("the time traveller said that the machine was ready. " * 40)
    lm.train(str(text), out=root / "run", steps=2, hidden=8, embedding=4, batch_size=2, seq_len=8,
             sample_length=0, threads=1, progress=False, echo=None)
    return root / "run"


def plant(run: Path, slot: str, data: bytes) -> None:
    manifest = json.loads((run / "checkpoint.json").read_text())
    if slot in CHECKPOINT_SLOTS:
        target = run / manifest["folder"] / slot
        target.unlink()
        target.write_bytes(data)
        manifest["files"][slot] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        (run / "checkpoint.json").write_text(json.dumps(manifest))
        if slot in ("model.safetensors", "history.jsonl"):      # the top-level copies too
            (run / slot).unlink()
            (run / slot).write_bytes(data)
    else:
        (run / slot).write_bytes(data)
        if slot == "vocab.json":
            config = json.loads((run / "config.json").read_text())
            config["files"]["vocab.json"] = hashlib.sha256(data).hexdigest()
            (run / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("kind", ["raw pickle", "torch.save zip"])
@pytest.mark.parametrize("slot", RUN_SLOTS)
def test_planted_pickle_in_a_run_folder_never_runs(tiny_run, tmp_path, slot, kind, capsys):
    from rnnkit.cli.main import main
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    marker = tmp_path / "marker"
    plant(run, slot, payloads(marker)[kind])
    from rnnkit.tasks import lm
    from rnnkit.train import RunFolder

    def load_all():
        folder = RunFolder(run)
        folder.read_config()
        folder.read_manifest()
        folder.load_trainer_state()
        folder.read_history()
        lm.load(run)
        lm.load(run, weights="last.safetensors")

    with pytest.raises(RnnkitError):
        load_all()
    assert not marker.exists(), f"code ran from {slot}"
    statuses = [main(argv) for argv in (["generate", str(run), "--length", "3"],
                                        ["evaluate", str(run)],
                                        ["predict", str(run), "the"],
                                        ["train", "--resume", str(run), "--steps", "3", "--no-progress"])]
    assert not marker.exists(), f"code ran from {slot}"
    assert "Traceback" not in capsys.readouterr().err
    assert set(statuses) & {3, 4}    # refused as bad data or an unusable run folder


@pytest.mark.parametrize("kind", ["raw pickle", "torch.save zip"])
@pytest.mark.parametrize("slot", ["config.json", "model.safetensors"])
def test_planted_pickle_in_a_keras_save_never_runs(tmp_path, slot, kind):
    from rnnkit import keras
    model = keras.Sequential([keras.layers.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(2)])
    model.save(tmp_path / "saved")
    marker = tmp_path / "marker"
    (tmp_path / "saved" / slot).write_bytes(payloads(marker)[kind])
    with pytest.raises((RnnkitError, ValueError, OSError)):
        keras.models.load_model(tmp_path / "saved")
    assert not marker.exists()
