"""Keras 3's own files both ways, with real Keras 3 (torch backend) on the other side: a ``.keras``
model or ``.weights.h5`` file saved by Keras loads in rnnkit and predicts the same (and trains on
from the saved optimizer state the same), and one saved by rnnkit loads in Keras the same way."""
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras as K  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rnnkit import keras as R  # noqa: E402

rng = np.random.default_rng(21)
IDS = rng.integers(1, 9, size=(6, 7))
IDS[0, 5:] = 0
IDS[2, 3:] = 0
Y = rng.standard_normal((6, 1)).astype("float32")
X = rng.standard_normal((6, 7, 4)).astype("float32")
AUX = rng.standard_normal((6, 3)).astype("float32")
XPAD = X.copy()
XPAD[1, 4:] = 0.0  # padded steps for Masking
XPAD[3, 2:] = 0.0


def recurrent(M):
    L = M.layers
    return M.Sequential([M.Input((7,), dtype="int32"), L.Embedding(9, 5, mask_zero=True),
                         L.LSTM(6, return_sequences=True), L.Bidirectional(L.GRU(3, return_sequences=True)),
                         L.TimeDistributed(L.Dense(4)), L.SimpleRNN(4), L.Dropout(0.0), L.Dense(1)])


def around(M):
    """A functional model with most of the layers that sit around RNNs."""
    L = M.layers
    x, aux = M.Input((7, 4), name="seq"), M.Input((3,), name="aux")
    h = L.Conv1D(6, 3, padding="same", activation="relu")(L.Masking()(x))
    h = L.BatchNormalization()(h)
    h = L.RNN([L.LSTMCell(5), L.GRUCell(4)], return_sequences=True)(h)
    a = L.MultiHeadAttention(2, 3)(h, h)
    h = L.LayerNormalization()(L.Add()([h, a]))
    h = L.Attention(use_scale=True)([h, h])
    h = L.MaxPooling1D(2)(h)
    p = L.GlobalAveragePooling1D()(h)
    z = L.Concatenate()([p, aux])
    return M.Model([x, aux], L.Dense(1)(L.Dense(4, activation="tanh")(z)))


def the_rest(M):
    """The remaining layers, so that every layer class rnnkit has crosses in a file."""
    L = M.layers
    x = M.Input((7, 4))
    h = L.LSTM(3, return_sequences=True)(x)
    g = L.RNN(L.SimpleRNNCell(3), return_sequences=True, go_backwards=True)(x)
    a = L.AdditiveAttention()([h, g])
    m = [L.Subtract()([h, g]), L.Multiply()([h, a]), L.Average()([h, g]), L.Maximum()([h, g]),
         L.Minimum()([h, a])]
    s = L.Activation("tanh")(L.Concatenate()(m))
    s = L.AveragePooling1D(2, padding="same")(s)
    v = L.GlobalMaxPooling1D()(s)
    r = L.Reshape((3, 5))(L.Flatten()(L.RepeatVector(1)(v)))
    return M.Model(x, L.Dense(1)(L.Flatten()(L.GRU(2, reset_after=False, return_sequences=True)(r))))


def masked(M):
    return M.Sequential([M.Input((7, 4)), M.layers.Masking(), M.layers.GRU(3), M.layers.Dense(1)])


def masked_functional(M):
    # Keras records the mask Masking makes as keras.ops nodes (NotEqual, Any) feeding mask=
    x = M.Input((7, 4))
    h = M.layers.LSTM(3, return_sequences=True)(M.layers.Masking()(x))
    return M.Model(x, M.layers.Dense(1)(M.layers.GlobalMaxPooling1D()(h)))


def _fit(m, x, epochs=1):
    return m.fit(x, Y, epochs=epochs, batch_size=6, shuffle=False, verbose=0).history["loss"]


@pytest.mark.parametrize(("build", "x"), [(recurrent, IDS), (around, [X, AUX]), (the_rest, X), (masked, X),
                                              (masked_functional, XPAD)])
def test_keras_saved_models_load_in_rnnkit(tmp_path, build, x):
    k = build(K)
    k.compile(optimizer=K.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    _fit(k, x)
    k.save(tmp_path / "m.keras")
    r = R.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(r.predict(x, verbose=0), k.predict(x, verbose=0), atol=2e-5)
    # the optimizer's state came along: training on gives Keras's numbers
    np.testing.assert_allclose(_fit(r, x, 2), _fit(k, x, 2), rtol=2e-4)
    assert r.optimizer.iterations == int(k.optimizer.iterations) == 3


@pytest.mark.parametrize(("build", "x"), [(recurrent, IDS), (around, [X, AUX]), (the_rest, X), (masked, X),
                                              (masked_functional, XPAD)])
def test_rnnkit_saved_models_load_in_keras(tmp_path, build, x):
    r = build(R)
    r.compile(optimizer=R.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    _fit(r, x)
    r.save(tmp_path / "m.keras")
    k = K.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(k.predict(x, verbose=0), r.predict(x, verbose=0), atol=2e-5)
    np.testing.assert_allclose(_fit(k, x, 2), _fit(r, x, 2), rtol=2e-4)
    # and back again
    k.save(tmp_path / "again.keras")
    again = R.models.load_model(tmp_path / "again.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), k.predict(x, verbose=0), atol=2e-5)


@pytest.mark.parametrize("make", [
    lambda M: M.optimizers.SGD(M.optimizers.schedules.ExponentialDecay(0.05, 2, 0.5), momentum=0.9),
    lambda M: M.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    lambda M: M.optimizers.Adagrad(0.1),
    lambda M: M.optimizers.Adam(0.01, amsgrad=True),
])
def test_weights_files_carry_optimizer_state_both_ways(tmp_path, make):
    k, r = recurrent(K), recurrent(R)
    k.compile(optimizer=make(K), loss="mse")
    r.compile(optimizer=make(R), loss="mse")
    _fit(k, IDS, 2)
    k.save_weights(tmp_path / "k.weights.h5")
    _fit(r, IDS)  # builds rnnkit's optimizer; the file then overwrites weights and state
    r.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(r.predict(IDS, verbose=0), k.predict(IDS, verbose=0), atol=2e-5)
    np.testing.assert_allclose(_fit(r, IDS, 2), _fit(k, IDS, 2), rtol=2e-4)
    r.save_weights(tmp_path / "r.weights.h5")
    k2 = recurrent(K)
    k2.compile(optimizer=make(K), loss="mse")
    _fit(k2, IDS)
    k2.load_weights(tmp_path / "r.weights.h5")
    np.testing.assert_allclose(k2.predict(IDS, verbose=0), r.predict(IDS, verbose=0), atol=2e-5)
    np.testing.assert_allclose(_fit(k2, IDS, 2), _fit(r, IDS, 2), rtol=2e-4)


def test_lambda_code_loads_only_with_safe_mode_off(tmp_path):
    saved = {}
    for M in (R, K):
        m = M.Sequential([M.Input((7, 4)), M.layers.LSTM(3), M.layers.Lambda(lambda t: t * 2.0 + 1.0)])
        m.save(tmp_path / f"{M.__name__}.keras")
        with pytest.raises(ValueError, match="safe_mode"):
            R.models.load_model(tmp_path / f"{M.__name__}.keras")
        r = R.models.load_model(tmp_path / f"{M.__name__}.keras", safe_mode=False)
        np.testing.assert_allclose(r.predict(X, verbose=0), m.predict(X, verbose=0), atol=2e-5)
        saved[M] = m
    k = K.models.load_model(tmp_path / f"{R.__name__}.keras", safe_mode=False)
    np.testing.assert_allclose(k.predict(X, verbose=0), saved[R].predict(X, verbose=0), atol=2e-5)


def test_file_names_choose_the_format(tmp_path):
    m = R.Sequential([R.Input((7, 4)), R.layers.GRU(3), R.layers.Dense(1)])
    m.save_weights(tmp_path / "w.safetensors")  # rnnkit's own, by extension
    m.save_weights(tmp_path / "w.weights.h5")
    import h5py
    from safetensors import safe_open
    with h5py.File(tmp_path / "w.weights.h5") as f:
        assert f["layers/gru/cell/vars/0"].shape == (4, 9)
    with safe_open(tmp_path / "w.safetensors", "pt") as f:
        assert "gru/kernel" in f.keys()
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        m.save_weights(tmp_path / "w.bin")
    with pytest.raises(ValueError, match="legacy"):
        m.save(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="not a .keras zip"):
        (tmp_path / "bad.keras").write_text("no zip")
        R.models.load_model(tmp_path / "bad.keras")


def _cell_class(M):
    class MinimalRNNCell(M.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units, self.state_size = units, units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel")

        def call(self, inputs, states):
            h = M.ops.matmul(inputs, self.kernel)
            out = M.ops.tanh(h + M.ops.matmul(states[0], self.recurrent_kernel))
            return out, [out]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    return MinimalRNNCell


def test_a_users_cell_crosses_in_files_with_custom_objects(tmp_path):
    classes = {M: _cell_class(M) for M in (K, R)}
    for src, dst in ((R, K), (K, R)):
        # (inside Bidirectional Keras 3 cannot reload a user's cell even from its own files)
        L, C = src.layers, classes[src]
        m = src.Sequential([src.Input((7, 4)), L.RNN(C(3), return_sequences=True),
                            L.RNN(L.StackedRNNCells([C(2), L.GRUCell(2)])), L.Dense(1)])
        m.save(tmp_path / "c.keras")
        other = dst.models.load_model(tmp_path / "c.keras", custom_objects={"MinimalRNNCell": classes[dst]})
        np.testing.assert_allclose(other.predict(X, verbose=0), m.predict(X, verbose=0), atol=2e-5)
