"""compile / fit / evaluate / predict / callbacks: Keras's behaviour, checked against hand
computations, and the errors a Keras user meets."""
import csv

import numpy as np
import pytest
import torch

from rnnkit import keras
from rnnkit.keras import layers as L


def toy(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4, 3)).astype("float32")
    return x, (x.sum((1, 2)) > 0).astype("int64")


def model(out=2, activation="softmax"):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4, 3)), L.GRU(6), L.Dense(out, activation=activation)])


def test_fit_history_keys_and_losses_match_a_hand_computation():
    x, y = toy()
    m = model()
    m.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=0)
    assert list(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert h.epoch == [0, 1] and h.params["epochs"] == 2 and h.params["steps"] == 2
    p = m.predict(x, verbose=0)  # lr = 0: the weights never move, so the logs are exact means
    nll = -np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1 - 1e-7))
    acc = (p.argmax(1) == y).astype(float)
    assert abs(h.history["loss"][0] - nll[:30].mean()) < 1e-5
    assert abs(h.history["val_loss"][1] - nll[30:].mean()) < 1e-5
    assert abs(h.history["accuracy"][0] - acc[:30].mean()) < 1e-6
    loss, accuracy = m.evaluate(x, y, verbose=0)
    assert abs(loss - nll.mean()) < 1e-5 and abs(accuracy - acc.mean()) < 1e-6
    assert m.evaluate(x, y, verbose=0, return_dict=True).keys() == {"loss", "accuracy"}


def test_accuracy_resolves_from_shapes_like_keras():
    x, y = toy()
    for labels, loss, out, act in ((y, "sparse_categorical_crossentropy", 2, "softmax"),
                                   (keras.utils.to_categorical(y, 2), "categorical_crossentropy", 2,
                                    "softmax"),
                                   (y[:, None].astype("float32"), "binary_crossentropy", 1, "sigmoid")):
        m = model(out, act)
        m.compile("adam", loss, metrics=["accuracy"])
        h = m.fit(x, labels, epochs=1, verbose=0)
        p = m.predict(x, verbose=0)
        pred = (p[:, 0] > 0.5) if out == 1 else p.argmax(1)
        assert abs(m.evaluate(x, labels, verbose=0)[1] - (pred == y).mean()) < 1e-6
        assert "accuracy" in h.history


def test_masked_sequence_loss_leaves_out_padding():
    ids = np.array([[3, 1, 2, 0, 0], [4, 4, 0, 0, 0]])
    y = np.array([[1, 0, 1, 1, 1], [0, 1, 0, 0, 0]])
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((5,)), L.Embedding(6, 3, mask_zero=True),
                          L.LSTM(4, return_sequences=True), L.Dense(2, activation="softmax")])
    m.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    p = m.predict(ids, verbose=0)
    valid = ids != 0
    nll = -np.log(np.clip(np.take_along_axis(p, y[..., None], -1)[..., 0], 1e-7, 1))
    assert abs(m.evaluate(ids, y, verbose=0) - nll[valid].mean()) < 1e-5


def test_softmax_crossentropy_is_stable():
    loss = keras.losses.SparseCategoricalCrossentropy()
    value = loss(torch.tensor([0]), torch.tensor([[0.0, 1.0]]))
    assert abs(float(value) + np.log(1e-7)) < 1e-3  # clipped like Keras, finite
    logits = torch.tensor([[1000.0, -1000.0]])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(torch.tensor([1]), logits)
    assert float(loss) == 2000.0


def test_progress_output_like_keras(capsys):
    x, y = toy()
    m = model()
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, epochs=2, batch_size=16, verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2"
    assert out[1].startswith("3/3 ━━━━━━━━━━━━━━━━━━━━ ")
    assert "/step - accuracy: " in out[1] and " - loss: " in out[1]
    m.fit(x, y, epochs=1, batch_size=16, verbose=2)
    line = capsys.readouterr().out.strip()
    assert line.startswith("3/3 - ") and "/step - accuracy:" in line
    m.fit(x, y, epochs=2, verbose=0)
    m.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


def test_bad_usage_errors_name_the_problem():
    x, y = toy()
    m = model()
    with pytest.raises(RuntimeError,
                       match=r"call model.compile\(optimizer, loss, metrics\) before model.fit"):
        m.fit(x, y)
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamm'; known optimizers: \['adagrad', 'adam'"):
        m.compile("adamm", "mse")
    with pytest.raises(ValueError, match=r"unknown loss 'msee'; known losses: \[.*'mse'"):
        m.compile("adam", "msee")
    with pytest.raises(ValueError, match=r"unknown metric 'acuracy'; known metrics: \[.*'accuracy'"):
        m.compile("adam", "mse", metrics=["acuracy"])
    m.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"labels of shape \(32, 2\) do not fit predictions of shape "
                                         r"\(32, 2\).*one-hot labels need categorical_crossentropy"):
        m.fit(x, keras.utils.to_categorical(y, 2), verbose=0)
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 1\]"):
        m.fit(x, y + 1, verbose=0)
    m.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match="integer class ids need sparse_categorical_crossentropy"):
        m.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="same number of samples"):
        m.fit(x, y[:-1], verbose=0)


def test_batch_verbs_and_data_sources():
    x, y = toy()
    m = model()
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    before = m.get_weights()
    loss, acc = m.train_on_batch(x[:8], y[:8])
    assert np.isfinite(loss) and 0 <= acc <= 1
    assert any(not np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    np.testing.assert_allclose(m.predict_on_batch(x[:5]), m.predict(x[:5], verbose=0), atol=1e-6)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=10)
    h = m.fit(loader, epochs=2, verbose=0, validation_data=(torch.from_numpy(x), y))
    assert len(h.history["loss"]) == 2 and "val_accuracy" in h.history
    assert m.predict(torch.from_numpy(x), verbose=0).shape == (40, 2)


def test_callbacks(tmp_path):
    x, y = toy()
    m = model()
    m.compile(keras.optimizers.Adam(0.0), "sparse_categorical_crossentropy", metrics=["accuracy"])
    calls = []

    class Counter(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            calls.append(("batch", batch, sorted(logs)))

        def on_epoch_end(self, epoch, logs=None):
            calls.append(("epoch", epoch))

    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=2)
    lr = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5, min_delta=0.0)
    log = keras.callbacks.CSVLogger(tmp_path / "log.csv")
    ckpt = keras.callbacks.ModelCheckpoint(str(tmp_path / "best"), monitor="loss", save_best_only=True)
    h = m.fit(x, y, epochs=20, batch_size=20, verbose=0, shuffle=False,
              callbacks=[Counter(), stop, lr, log, ckpt])
    # lr = 0 -> the loss never improves: stop after epoch 0 + patience 2
    assert h.epoch == [0, 1, 2] and stop.stopped_epoch == 2
    assert calls[:3] == [("batch", 0, ["accuracy", "loss"]), ("batch", 1, ["accuracy", "loss"]), ("epoch", 0)]
    assert h.history["learning_rate"] == [0.0, 0.0, 0.0]
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [float(r["loss"]) for r in rows] == pytest.approx(h.history["loss"])
    assert (tmp_path / "best" / "config.json").exists()

    m.compile(keras.optimizers.Adam(0.1), "sparse_categorical_crossentropy")
    sched = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    h = m.fit(x, y, epochs=3, verbose=0, callbacks=[sched])
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5, min_delta=10.0)
    m.fit(x, y, epochs=3, verbose=0, callbacks=[plateau])
    assert m.optimizer.learning_rate == pytest.approx(0.1 / 3 * 0.25)


def test_early_stopping_restores_best_weights():
    x, y = toy()
    m = model()
    m.compile(keras.optimizers.SGD(3.0), "sparse_categorical_crossentropy")  # a bumpy ride
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    saved = {}

    class Snap(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved[epoch] = (logs["val_loss"], self.model.get_weights())

    h = m.fit(x, y, epochs=40, verbose=0, validation_split=0.25, callbacks=[Snap(), stop])
    best = min(saved, key=lambda e: saved[e][0])
    assert stop.stopped_epoch > 0 and stop.stopped_epoch == best + 2 == h.epoch[-1]
    for a, b in zip(m.get_weights(), saved[best][1]):
        np.testing.assert_array_equal(a, b)


def test_functional_multi_input_multi_output():
    keras.utils.set_random_seed(0)
    a, b = keras.Input((5, 3), name="a"), keras.Input((5, 2), name="b")
    h = L.Concatenate()([L.LSTM(4, return_sequences=True)(a), L.GRU(4, return_sequences=True)(b)])
    out1 = L.Dense(3, activation="softmax", name="tags")(h)
    out2 = L.Dense(1, name="score")(L.SimpleRNN(2)(h))
    m = keras.Model([a, b], [out1, out2])
    m.compile("adam", loss=["sparse_categorical_crossentropy", "mse"], metrics=[["accuracy"], []])
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((12, 5, 3)), rng.standard_normal((12, 5, 2))
    ya, yb = rng.integers(0, 3, (12, 5)), rng.standard_normal((12, 1))
    hist = m.fit([xa, xb], [ya, yb], epochs=2, verbose=0)
    assert sorted(hist.history) == ["loss", "score_loss", "tags_accuracy", "tags_loss"]
    total = np.array(hist.history["score_loss"]) + np.array(hist.history["tags_loss"])
    np.testing.assert_allclose(hist.history["loss"], total, rtol=1e-5)
    p1, p2 = m.predict({"a": xa, "b": xb}, verbose=0)
    assert p1.shape == (12, 5, 3) and p2.shape == (12, 1)


def test_subclassed_model_and_torch_optimizer():
    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.rnn, self.out = L.LSTM(5), L.Dense(1)

        def call(self, x, training=None):
            return self.out(self.rnn(x))

    x, y = toy()
    m = Tiny()
    m(x[:1])
    m.compile(torch.optim.Adam(m.parameters(), lr=0.01), "mse")
    h = m.fit(x, y.astype("float32"), epochs=5, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
