"""The scripts in examples/, each run on tiny settings and checked against an independent computation
(real Keras 3 for the Keras door, torch.nn for the NumPy RNN, the textbook's shapes)."""
from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")   # before Keras 3 is imported (the oracle)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, *args: str, stdin: str = "", cwd: Path | None = None, env=None) -> str:
    """Run ``examples/<name>.py`` as a user would (tiny settings); return its output."""
    env = {**os.environ, "RNNKIT_EXAMPLES_TINY": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], input=stdin,
                          capture_output=True, text=True, cwd=cwd or ROOT, env=env, timeout=300)
    assert proc.returncode == 0, f"{name}.py failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_shapes_example_matches_real_keras(capsys):
    """Every model of the shapes tutorial gives Keras 3's own output shape and parameter count."""
    import keras as real_keras

    example = load("rnn_shapes_keras")
    shapes = example.main()
    out = capsys.readouterr().out
    data = example.inputs()
    ours = example.build_models(example.keras)
    theirs = example.build_models(real_keras)
    assert list(shapes) == list(theirs)
    for title, (model, name) in theirs.items():
        expected = tuple(np.asarray(model.predict(data[name], verbose=0)).shape)
        assert shapes[title] == expected, title
        assert ours[title][0].count_params() == model.count_params(), title
        assert f"{title}: input {data[name].shape} -> output {expected}" in out
    assert shapes["SimpleRNN(4)"] == (1, 4) and shapes["SimpleRNN(4, return_sequences=True)"] == (1, 3, 4)


def test_numpy_rnn_agrees_with_rnnkit_and_torch(capsys):
    example = load("numpy_rnn")
    diffs = example.main()
    assert max(diffs.values()) < 1e-12
    assert "they agree" in capsys.readouterr().out
    # the example's NumPy forward pass against torch.nn.RNN itself, so both sides are anchored
    rng = np.random.default_rng(1)
    ref = torch.nn.RNN(3, 4).double()
    x, h0 = rng.standard_normal((5, 2, 3)), rng.standard_normal((2, 4))
    w = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    out, h_n = example.rnn_forward(x, h0, w["weight_ih_l0"], w["weight_hh_l0"], w["bias_ih_l0"],
                                   w["bias_hh_l0"])
    with torch.no_grad():
        out_t, h_t = ref(torch.from_numpy(x), torch.from_numpy(h0)[None])
    assert np.abs(out - out_t.numpy()).max() < 1e-12 and np.abs(h_n - h_t[0].numpy()).max() < 1e-12


def test_time_machine_example_tiny_run(real_data_dir):
    """Five models train a few steps and generate; the printed shapes are torch.nn.RNN's own."""
    if not (real_data_dir / "timemachine.txt").is_file():
        pytest.skip("timemachine.txt is not in $RNNKIT_DATA")
    out = run_script("time_machine_rnn", env={"RNNKIT_DATA": str(real_data_dir)})
    ref = torch.nn.RNN(28, 256)
    y, h = ref(torch.rand(35, 32, 28), torch.zeros(1, 32, 256))
    assert (f"input (35, 32, 28), state (1, 32, 256) -> output {tuple(y.shape)}, "
            f"new state {tuple(h.shape)}") in out
    rows = [line for line in out.splitlines() if "perplexity" in line and "tokens/s" in line]
    assert [r.split("  ")[0].strip() for r in rows] == [
        "RNN", "GRU", "LSTM", "deep LSTM (2 layers)", "bidirectional LSTM"]
    for row in rows:
        assert "'time traveller" in row
        assert 1 < float(row.split("perplexity")[1].split()[0]) < 40   # near V=28 after 3 steps
    assert "Why the bidirectional LSTM cannot predict the next character" in out


def test_time_machine_model_learns(data_dir):
    """A short SGD run (lr 1, clipping) beats the unigram model: the textbook loop really learns."""
    if not (data_dir / "timemachine.txt").is_file():
        pytest.skip("timemachine.txt is not in $RNNKIT_DATA")
    example = load("time_machine_rnn")
    torch.manual_seed(0)
    text = (data_dir / "timemachine.txt").read_text()
    vocab = example.CharVocab.from_text(text, lower=True, letters_only=True)
    ids = vocab.encode(text)
    counts = np.bincount(ids, minlength=len(vocab))
    p = counts[counts > 0] / counts.sum()
    unigram_ppl = float(np.exp(-(p * np.log(p)).sum()))   # the best a context-free model can do
    net = example.RNNModel(example.rnnkit.nn.GRU(len(vocab), 64), len(vocab))
    r = example.train(net, example.SequentialBatcher(ids[:40_000], 32, 35, drop_last=True),
                      seconds=60, max_steps=120)
    assert r["perplexity"] < unigram_ppl, (r, unigram_ppl)
    assert example.predict("time traveller", 10, net, vocab).startswith("time traveller")


def test_next_letter_interactive_reads_piped_stdin(tmp_path):
    out = run_script("keras_next_letter", stdin="a\nC\nq\ne\n", cwd=tmp_path)
    png = tmp_path / "next_letter_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [line for line in out.splitlines() if line.startswith("after ")]
    assert [line.split("'")[1] for line in lines] == ["a", "c", "e"]
    assert "'q' is not one of a, b, c, d, e" in out


def test_next_letter_trained_model_predicts_interactively():
    example = load("keras_next_letter")
    model, history = example.main(epochs=300)
    assert history.history["sparse_categorical_accuracy"][-1] == 1.0
    assert example.interactive(model, io.StringIO("a\nb\nc\nd\ne\n\nz\n")) == ["b", "c", "d", "e", "a"]


def test_language_model_recipe_tiny(data_dir, tmp_path, monkeypatch):
    if not (data_dir / "timemachine.txt").is_file():
        pytest.skip("timemachine.txt is not in $RNNKIT_DATA")
    monkeypatch.setenv("RNNKIT_EXAMPLES_TINY", "1")
    monkeypatch.setenv("RNNKIT_DATA", str(data_dir))
    out = load("language_model_recipe").main(str(tmp_path))
    s = out["scores"]
    assert abs(s["ppl"] - np.exp(s["loss"])) < 1e-3 * s["ppl"]
    assert abs(s["bpc"] - s["loss"] / np.log(2)) < 1e-3
    assert out["sample"].startswith("The Time Traveller") and len(out["sample"]) > len("The Time Traveller")
    acts = out["activations"]
    assert acts.layers[0].hidden.shape[0] == len(acts.text) and (tmp_path / "run" / "config.json").is_file()
