"""save / load_model (run folder, no pickle), save_weights / load_weights, History.plot."""
import json

import numpy as np
import pytest

from rnnkit import keras
from rnnkit.keras import layers as L
from rnnkit.viz import plot_history


def seq2seq():
    enc = keras.Input((4, 3), name="enc")
    _, h, c = L.LSTM(5, return_state=True)(enc)
    dec = keras.Input((6, 2), name="dec")
    y = L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode="sum")(
        L.LSTM(5, return_sequences=True)(dec, initial_state=[h, c]))
    return keras.Model([enc, dec], L.TimeDistributed(L.Dense(3, activation="softmax"))(y))


def test_sequential_roundtrip(tmp_path):
    keras.utils.set_random_seed(0)
    m = keras.Sequential([L.Embedding(20, 4, mask_zero=True, input_shape=(7,)),
                          L.SimpleRNN(6, return_sequences=True), L.GRU(3, reset_after=False),
                          L.Dropout(0.1), L.Dense(2, activation="softmax")])
    m.compile(keras.optimizers.RMSprop(0.005, clipnorm=1.0), "sparse_categorical_crossentropy",
              metrics=["accuracy"])
    x = np.random.default_rng(0).integers(0, 20, (9, 7))
    m.fit(x, np.arange(9) % 2, epochs=1, verbose=0)
    m.save(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json", "model.safetensors"]
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["class_name"] == "Sequential" and doc["config"]["layers"][2]["config"]["reset_after"] is False
    again = keras.models.load_model(tmp_path / "run")
    np.testing.assert_allclose(again.predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6)
    assert type(again.optimizer) is keras.optimizers.RMSprop and again.optimizer.clipnorm == 1.0
    assert again.optimizer.learning_rate == pytest.approx(0.005)
    again.fit(x, np.arange(9) % 2, epochs=1, verbose=0)  # compiled again, trainable


def test_functional_roundtrip_with_initial_state(tmp_path):
    keras.utils.set_random_seed(0)
    m = seq2seq()
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 6, 2))]
    m.save(tmp_path / "s2s")
    again = keras.models.load_model(tmp_path / "s2s", compile=False)
    np.testing.assert_allclose(again.predict(xs, verbose=0), m.predict(xs, verbose=0), atol=1e-6)
    assert [l.name for l in again.layers] == [l.name for l in m.layers]


def test_weights_files(tmp_path):
    a, b = seq2seq(), seq2seq()
    a.save_weights(tmp_path / "w.weights.h5")
    b.load_weights(tmp_path / "w.weights.h5")
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)
    other = keras.Sequential([keras.Input((4, 3)), L.LSTM(2)])
    with pytest.raises(ValueError, match="does not match"):
        other.load_weights(tmp_path / "w.weights.h5")


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a folder written by model.save"):
        keras.models.load_model(tmp_path / "nothing")
    m = keras.Sequential([keras.Input((3, 2)), L.GRU(2)])
    m.save(tmp_path / "run")
    (tmp_path / "run" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        keras.models.load_model(tmp_path / "run")
    m.save(tmp_path / "run")
    (tmp_path / "run" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="is not a readable safetensors file"):
        keras.models.load_model(tmp_path / "run")
    (tmp_path / "run" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        keras.models.load_model(tmp_path / "run")
    with pytest.raises(ValueError, match="not built yet"):
        keras.Sequential([L.LSTM(2)]).save(tmp_path / "unbuilt")


def test_history_plot_writes_a_png(tmp_path):
    x = np.random.default_rng(0).standard_normal((16, 3, 2)).astype("float32")
    m = keras.Sequential([keras.Input((3, 2)), L.SimpleRNN(4), L.Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(x, np.arange(16) % 2, epochs=3, validation_split=0.25, verbose=0)
    fig = h.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["loss", "accuracy"]
    assert [len(line.get_xdata()) for line in fig.axes[0].lines] == [3, 3]  # training + validation
    with pytest.raises(ValueError, match="no curve named"):
        plot_history(h, metrics=["perplexity"])
