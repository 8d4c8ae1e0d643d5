"""Every cell's language model exported to ONNX (run in onnxruntime) and to .pt2 (run in a fresh
process that cannot import rnnkit), compared with rnnkit itself: whole sequences through the engine's
fused kernels, and 50 greedy generation steps through rnnkit's `Sampler` (what `rnnkit generate` runs)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnkit.cells import CELLS
from rnnkit.cli.main import main
from rnnkit.export import MANIFEST, export_run, load_runner
from rnnkit.decode import Sampler
from rnnkit.tasks import language_model as lm

STEPS = 50
TOL = 1e-5
FRESH = Path(__file__).with_name("fresh_process.py")


def inputs_for(run: Path) -> dict:
    """A batch of 3 sequences of 17 tokens with a random state, and a one-sequence prompt."""
    model = lm.load(run).model
    V, L = model.vocab_size, model.layers
    shapes = model.rnn.cells[0].state_shapes
    g = torch.Generator().manual_seed(7)
    return {"ids": torch.randint(0, V, (3, 17), generator=g),
            "state": [0.5 * torch.randn(L, 3, *s, generator=g) for s in shapes],
            "prompt": torch.randint(0, V, (1, 6), generator=g),
            "zero_state": [torch.zeros(L, 1, *s) for s in shapes], "steps": STEPS}


def reference(run: Path, d: dict) -> dict:
    """The same computation by rnnkit: the model's forward, then the Sampler's steps."""
    model = lm.load(run).model
    with torch.no_grad():
        logits, state = model(d["ids"], tuple(d["state"]))
        prompt_logits, gen_state = model(d["prompt"])
    # the Sampler's fast step for stock cells, the stack's own forward for the others
    step = Sampler(model.rnn, model.embed, model.head).step
    next_logits, tokens, step_logits = prompt_logits[:, -1], [], []
    for _ in range(STEPS):
        token = next_logits.argmax(-1)
        tokens.append(token)
        next_logits, gen_state = step(token, gen_state)
        step_logits.append(next_logits)
    return {"logits": logits, "state": list(state), "tokens": torch.stack(tokens, 1),
            "step_logits": torch.stack(step_logits, 1)}


def run_onnx(folder: Path, d: dict) -> dict:
    """The ONNX files in onnxruntime, generating with their own greedy tokens."""
    model, step = load_runner("onnx", folder / "model.onnx"), load_runner("onnx", folder / "step.onnx")
    logits, *state = model(d["ids"], *d["state"])
    prompt_logits, *gen_state = model(d["prompt"], *d["zero_state"])
    next_logits, tokens, step_logits = prompt_logits[:, -1], [], []
    for _ in range(STEPS):
        token = next_logits.argmax(-1)
        tokens.append(token)
        next_logits, *gen_state = step(token, *gen_state)
        step_logits.append(next_logits)
    return {"logits": logits, "state": state, "tokens": torch.stack(tokens, 1),
            "step_logits": torch.stack(step_logits, 1)}


def run_fresh_process(folder: Path, d: dict, tmp: Path) -> dict:
    """The .pt2 files in a new interpreter with torch on its path and rnnkit not importable."""
    torch.save(d, tmp / "inputs.pt")
    site = str(Path(torch.__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([sys.executable, "-I", "-S", str(FRESH), site, str(folder),
                           str(tmp / "inputs.pt"), str(tmp / "outputs.pt")],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = torch.load(tmp / "outputs.pt", weights_only=True)
    assert not any(m == "rnnkit" or m.startswith("rnnkit.") for m in out["modules"])
    return out


def compare(got: dict, want: dict, what: str, assert_close) -> None:
    assert_close(got["logits"], want["logits"], f"{what}: logits of whole sequences", TOL)
    for i, (a, b) in enumerate(zip(got["state"], want["state"], strict=True)):
        assert_close(a, b, f"{what}: final state {i}", TOL)
    assert torch.equal(got["tokens"], want["tokens"]), f"{what}: greedy tokens differ"
    for t in range(STEPS):
        assert_close(got["step_logits"][:, t], want["step_logits"][:, t],
                     f"{what}: logits at generation step {t + 1}", TOL)


# one-hot input for the Elman RNN (the textbook's model), a learned embedding for the others
CASES = [(cell, 0 if cell == "rnn" else 8) for cell in sorted(CELLS)]


@pytest.mark.parametrize("cell,embedding", CASES, ids=[c for c, _ in CASES])
def test_every_cell_exports_and_gives_rnnkits_numbers(cell, embedding, make_run, tmp_path, assert_close):
    run = make_run(tmp_path, cell, embedding=embedding)
    d = inputs_for(run)
    want = reference(run, d)

    onnx_dir = tmp_path / "onnx"
    result = export_run(run, "onnx", onnx_dir)
    assert set(result.files) == {"model.onnx", "step.onnx", "vocab.json", "config.json", MANIFEST}
    assert max(result.differences.values()) <= TOL
    compare(run_onnx(onnx_dir, d), want, f"{cell} ONNX in onnxruntime", assert_close)

    pt2_dir = tmp_path / "pt2"
    export_run(run, "pt2", pt2_dir)
    compare(run_fresh_process(pt2_dir, d, tmp_path), want, f"{cell} .pt2 in a fresh process",
            assert_close)


def test_cli_writes_a_folder_a_consumer_can_tokenise_and_feed(lstm_run, tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export", str(lstm_run), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "checked step" in printed
    # the files beside the model are the run's own
    for name in ("vocab.json", "config.json"):
        assert (out / name).read_bytes() == (lstm_run / name).read_bytes()
    manifest = json.loads((out / MANIFEST).read_text())
    loaded = lm.load(lstm_run)
    vocab = json.loads((out / "vocab.json").read_text())
    assert vocab["tokens"] == loaded.vocab.tokens and manifest["vocabulary"]["level"] == "char"
    step = manifest["graphs"]["step"]
    assert [i["name"] for i in step["inputs"]] == ["ids", "h0", "c0"]
    assert step["inputs"][1]["shape"] == [2, "batch", 8]
    assert manifest["graphs"]["model"]["inputs"][0]["shape"] == ["batch", "time"]
    assert manifest["opset"] >= 17
    # tokenise with vocab.json alone and feed the ONNX model: the same logits as rnnkit
    index = {t: i for i, t in enumerate(vocab["tokens"])}
    text = "the time traveller"
    ids = torch.tensor([[index.get(c, 0) for c in text]])
    assert torch.equal(ids[0], torch.as_tensor(loaded.vocab.encode(text), dtype=torch.long))
    zeros = [torch.zeros(2, 1, 8), torch.zeros(2, 1, 8)]
    got = load_runner("onnx", out / "model.onnx")(ids, *zeros)[0]
    with torch.no_grad():
        want = loaded.model(ids)[0]
    assert float((got - want).abs().max()) <= TOL
