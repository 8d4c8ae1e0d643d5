"""Keras's cells and ``layers.RNN(cell)`` against real Keras 3 (torch backend) with the same weights:
the stock cells, `StackedRNNCells`, and a user's own cell written as Keras documents it."""
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras as K  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnnkit import keras as R  # noqa: E402
from rnnkit.keras.layers import rnn_cells  # noqa: E402

rng = np.random.default_rng(5)
X = rng.standard_normal((3, 6, 4)).astype("float32")
RIGHT = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]], bool)
HOLES = np.array([[0, 1, 1, 0, 1, 0], [1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 0]], bool)
CELLS = [("SimpleRNNCell", {}), ("LSTMCell", {}), ("GRUCell", {}), ("GRUCell", {"reset_after": False}),
         ("LSTMCell", {"activation": "relu", "recurrent_activation": "hard_sigmoid"})]


def _np(t):
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def _flat(x):
    if isinstance(x, (list, tuple)):
        return [a for v in x for a in _flat(v)]
    return [_np(x)]


def _same(k_out, r_out, tol=2e-5):
    a, b = _flat(k_out), _flat(r_out)
    assert len(a) == len(b)
    for i, (u, v) in enumerate(zip(a, b)):
        assert u.shape == v.shape, (i, u.shape, v.shape)
        assert np.abs(u - v).max() < tol, (i, np.abs(u - v).max())
    assert max(np.abs(u).max() for u in a) > 1e-3


def _share(k_layer, r_layer, x, **call):
    """Build both on ``x``, then give both the same (perturbed Keras) weights."""
    k_layer(x, **call)
    r_layer(torch.from_numpy(x), **{k: torch.from_numpy(v) for k, v in call.items()})
    w = [a + 0.3 * rng.standard_normal(a.shape).astype("float32") for a in k_layer.get_weights()]
    k_layer.set_weights(w)
    r_layer.set_weights(w)


def _run(k_layer, r_layer, mask=None):
    if mask is None:
        return k_layer(X), r_layer(torch.from_numpy(X))
    return k_layer(X, mask=mask), r_layer(torch.from_numpy(X), mask=torch.from_numpy(mask))


@pytest.mark.parametrize(("name", "kw"), CELLS)
def test_a_cell_alone_is_one_keras_step(name, kw):
    k, r = getattr(K.layers, name)(5, **kw), getattr(R.layers, name)(5, **kw)
    n = 2 if name == "LSTMCell" else 1
    states = [rng.standard_normal((3, 5)).astype("float32") for _ in range(n)]
    k(X[:, 0], states)
    r(torch.from_numpy(X[:, 0]), [torch.from_numpy(s) for s in states])
    w = [a + 0.3 * rng.standard_normal(a.shape).astype("float32") for a in k.get_weights()]
    k.set_weights(w)
    r.set_weights(w)
    assert k.state_size == r.state_size
    _same(k(X[:, 0], states), r(torch.from_numpy(X[:, 0]), [torch.from_numpy(s) for s in states]))


@pytest.mark.parametrize(("name", "kw"), CELLS)
def test_rnn_of_a_stock_cell_matches_keras_on_the_fast_kernel(name, kw, monkeypatch):
    def no_python_step(*a, **k):
        raise AssertionError("a stock cell inside RNN must not step in Python")

    monkeypatch.setattr(rnn_cells.StockCell, "_cell", no_python_step)
    for opts, mask in (({}, None), ({"return_sequences": True}, RIGHT), ({"return_state": True}, HOLES),
                       ({"go_backwards": True, "return_sequences": True}, HOLES),
                       ({"unroll": True, "return_state": True}, None)):
        k = K.layers.RNN(getattr(K.layers, name)(5, **kw), **opts)
        r = R.layers.RNN(getattr(R.layers, name)(5, **kw), **opts)
        _share(k, r, X)
        _same(*_run(k, r, mask))


def test_stacked_cells_match_keras():
    for opts, mask in (({"return_state": True, "return_sequences": True}, None), ({}, HOLES),
                       ({"go_backwards": True, "return_state": True}, RIGHT)):
        k = K.layers.RNN([K.layers.LSTMCell(4), K.layers.GRUCell(3), K.layers.SimpleRNNCell(2)], **opts)
        r = R.layers.RNN([R.layers.LSTMCell(4), R.layers.GRUCell(3), R.layers.SimpleRNNCell(2)], **opts)
        _share(k, r, X)
        assert k.cell.state_size == r.cell.state_size
        _same(*_run(k, r, mask))


def _minimal_cell(M):
    """The user's cell from Keras's RNN documentation, written against library ``M``."""
    class MinimalRNNCell(M.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform",
                                          name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                    initializer="uniform", name="recurrent_kernel")

        def call(self, inputs, states):
            prev_output = states[0]
            h = M.ops.matmul(inputs, self.kernel)
            output = M.ops.tanh(h + M.ops.matmul(prev_output, self.recurrent_kernel))
            return output, [output]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    return MinimalRNNCell


def test_a_users_cell_matches_keras():
    for opts, mask in (({}, None), ({"return_sequences": True, "return_state": True}, HOLES),
                       ({"go_backwards": True, "return_sequences": True}, RIGHT),
                       ({"return_sequences": True, "zero_output_for_mask": True}, HOLES)):
        k = K.layers.RNN(_minimal_cell(K)(5), **opts)
        r = R.layers.RNN(_minimal_cell(R)(5), **opts)
        _share(k, r, X)
        assert [n for n, _ in r.named_parameters()] == ["cell.kernel", "cell.recurrent_kernel"]
        _same(*_run(k, r, mask))
    stacked_k = K.layers.RNN([_minimal_cell(K)(3), K.layers.LSTMCell(2)], return_state=True)
    stacked_r = R.layers.RNN([_minimal_cell(R)(3), R.layers.LSTMCell(2)], return_state=True)
    _share(stacked_k, stacked_r, X)
    _same(*_run(stacked_k, stacked_r, HOLES))


def test_stateful_rnn_carries_states_as_keras():
    xb = X[:2]
    for make in (lambda M: M.layers.LSTMCell(4), lambda M: _minimal_cell(M)(4)):
        k = K.layers.RNN(make(K), stateful=True, return_sequences=True)
        r = R.layers.RNN(make(R), stateful=True, return_sequences=True)
        k(xb)
        r(torch.from_numpy(xb))
        w = [a + 0.3 * rng.standard_normal(a.shape).astype("float32") for a in k.get_weights()]
        k.set_weights(w)
        r.set_weights(w)
        k.reset_states()
        r.reset_states()
        _same([k(xb), k(xb)], [r(torch.from_numpy(xb)), r(torch.from_numpy(xb))])


def test_bidirectional_and_training_with_a_cell_match_keras():
    k = K.layers.Bidirectional(K.layers.RNN(K.layers.GRUCell(3), return_sequences=True))
    r = R.layers.Bidirectional(R.layers.RNN(R.layers.GRUCell(3), return_sequences=True))
    _share(k, r, X)
    _same(*_run(k, r, RIGHT))

    y = rng.standard_normal((3, 1)).astype("float32")
    models = []
    for M in (K, R):
        m = M.Sequential([M.Input((6, 4)), M.layers.RNN(_minimal_cell(M)(4)), M.layers.Dense(1)])
        m.compile(optimizer=M.optimizers.SGD(0.1), loss="mse")
        models.append(m)
    models[1].set_weights(models[0].get_weights())
    hk = models[0].fit(X, y, epochs=3, batch_size=3, verbose=0).history["loss"]
    hr = models[1].fit(X, y, epochs=3, batch_size=3, verbose=0).history["loss"]
    np.testing.assert_allclose(hr, hk, rtol=1e-5)
    assert hk[-1] < hk[0]


def test_bad_cells_are_refused():
    with pytest.raises(ValueError, match="state_size"):
        R.layers.RNN(R.layers.Dense(3))
    with pytest.raises(ValueError, match="cells"):
        R.layers.StackedRNNCells([])


def test_bidirectional_of_a_users_cell_matches_keras():
    # Keras's Bidirectional rebuilds its copy from the config, so its cell class must be registered
    k_cell = K.saving.register_keras_serializable("rnnkit_tests")(_minimal_cell(K))
    k = K.layers.Bidirectional(K.layers.RNN(k_cell(4), return_sequences=True))
    r = R.layers.Bidirectional(R.layers.RNN(_minimal_cell(R)(4), return_sequences=True))
    _share(k, r, X)
    _same(*_run(k, r, RIGHT))
