"""Files never run code: a malicious pickle (its ``__reduce__`` would create a marker file) planted in
every file slot of a run folder and of a Keras-door save (rnnkit's folder, and Keras 3's `.keras` members,
a dataset inside its HDF5 weights, a `.weights.h5`) -- as raw pickle bytes and inside the zip
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


# -- Keras 3's own files: the .keras zip (every member) and .weights.h5 ------------------------------
def _keras_model():
    from rnnkit import keras
    model = keras.Sequential([keras.layers.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return keras, model


def _pickle_dataset(h5_bytes: bytes, data: bytes) -> bytes:
    """``h5_bytes`` with the first weight dataset replaced by ``data`` (opaque bytes of its own)."""
    import h5py
    import numpy as np
    buf = io.BytesIO(h5_bytes)
    with h5py.File(buf, "r+") as f:
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset)
                     and name.startswith("layers") else None)
        shape = f[names[0]].shape
        del f[names[0]]
        cells = np.frombuffer(data.ljust(-(-len(data) // 8) * 8, b"\0"), dtype="V8")
        f[names[0]] = np.resize(cells, shape)      # the weights' shape, so only the dtype is wrong
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["raw pickle", "torch.save zip"])
@pytest.mark.parametrize("member", ["metadata.json", "config.json", "model.weights.h5",
                                    "a dataset of model.weights.h5", "the whole file"])
def test_planted_pickle_in_a_keras_zip_never_runs(tmp_path, member, kind):
    import zipfile
    keras, model = _keras_model()
    model.save(tmp_path / "m.keras")
    marker = tmp_path / "marker"
    evil = payloads(marker)[kind]
    target = tmp_path / "evil.keras"
    if member == "the whole file":
        target.write_bytes(evil)
    else:
        with zipfile.ZipFile(tmp_path / "m.keras") as src, zipfile.ZipFile(target, "w") as dst:
            for name in src.namelist():
                data = src.read(name)
                if member == "a dataset of model.weights.h5" and name == "model.weights.h5":
                    data = _pickle_dataset(data, evil)
                elif name == member:
                    data = evil
                dst.writestr(name, data)
    with pytest.raises(RnnkitError):
        keras.models.load_model(target)
    if member in ("metadata.json", "config.json"):
        model.load_weights(target)       # reads model.weights.h5 alone: the planted member is not read
    else:
        with pytest.raises(RnnkitError):
            model.load_weights(target)
    assert not marker.exists(), f"code ran from {member}"


@pytest.mark.parametrize("kind", ["raw pickle", "torch.save zip"])
@pytest.mark.parametrize("where", ["the whole file", "a dataset"])
def test_planted_pickle_in_a_weights_h5_never_runs(tmp_path, where, kind):
    keras, model = _keras_model()
    model.save_weights(tmp_path / "m.weights.h5")
    marker = tmp_path / "marker"
    evil = payloads(marker)[kind]
    target = tmp_path / "evil.weights.h5"
    target.write_bytes(evil if where == "the whole file"
                       else _pickle_dataset((tmp_path / "m.weights.h5").read_bytes(), evil))
    with pytest.raises(RnnkitError):
        model.load_weights(target)
    assert not marker.exists(), f"code ran from {where}"


def test_an_extra_member_in_a_keras_zip_is_never_run(tmp_path):
    """A member rnnkit does not read (Keras saves may carry assets) is never opened, let alone run."""
    import zipfile
    keras, model = _keras_model()
    model.save(tmp_path / "m.keras")
    marker = tmp_path / "marker"
    with zipfile.ZipFile(tmp_path / "m.keras", "a") as z:
        z.writestr("assets/evil.pkl", payloads(marker)["raw pickle"])
    keras.models.load_model(tmp_path / "m.keras")
    assert not marker.exists()
