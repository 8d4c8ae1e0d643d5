"""rnnkit.keras against real Keras 3 (torch backend) as the oracle: same weights in (Keras's own
``get_weights``), same outputs out; same parameter counts; same training trajectory.

Keras is a test dependency (pyproject's [test] extra); it is imported here only, once, because
its import is slow."""
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras as K  # noqa: E402  (the backend must be chosen before the import)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnnkit import keras as R  # noqa: E402

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 6, 4)).astype("float32")
RIGHT = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]], bool)
HOLES = np.array([[0, 1, 1, 0, 1, 0], [1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 0]], bool)


def _np(t):
    return np.asarray(t.detach().cpu()) if hasattr(t, "detach") else np.asarray(t)


def _compare(k_out, r_out, tol=2e-5):
    k_out = k_out if isinstance(k_out, (list, tuple)) else [k_out]
    r_out = r_out if isinstance(r_out, (list, tuple)) else [r_out]
    assert len(k_out) == len(r_out)
    for i, (a, b) in enumerate(zip(k_out, r_out)):
        a, b = _np(a), _np(b)
        assert a.shape == b.shape, f"output {i}: Keras {a.shape} vs rnnkit {b.shape}"
        assert np.abs(a).max() > 1e-3 or i > 0, "degenerate test: all-zero output"
        err = np.abs(a - b).max()
        assert err < tol, f"output {i}: largest difference {err:.3g}"


def _pair(k_layer, r_layer, x, **call):
    """Build both layers on ``x``, give both Keras's weights (perturbed so biases are non-zero)."""
    k_layer(x, **call)
    r_layer(torch.from_numpy(x), **{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                                    for k, v in call.items()})
    w = [a + 0.3 * rng.standard_normal(a.shape).astype("float32") for a in k_layer.get_weights()]
    k_layer.set_weights(w)
    r_layer.set_weights(w)
    assert [a.shape for a in r_layer.get_weights()] == [a.shape for a in w]


# each option under each kind of mask (none, right-padded = the fused kernel, holes = the loop)
CASES = [
    ({}, None), ({}, RIGHT), ({"return_sequences": True}, HOLES), ({"return_sequences": True}, RIGHT),
    ({"return_state": True}, HOLES), ({"go_backwards": True, "return_sequences": True}, RIGHT),
    ({"go_backwards": True, "return_sequences": True}, HOLES),
    ({"go_backwards": True, "return_state": True}, None),
    ({"activation": "relu", "return_sequences": True}, RIGHT),
    ({"use_bias": False, "return_sequences": True}, HOLES),
]


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU", "GRU_reset_before"])
def test_recurrent_layers_match_keras(cls):
    extra = {"reset_after": False} if cls == "GRU_reset_before" else {}
    name = cls.split("_")[0]
    for opts, mask in CASES:
        k, r = getattr(K.layers, name)(5, **opts, **extra), getattr(R.layers, name)(5, **opts, **extra)
        _pair(k, r, X)
        if mask is None:
            _compare(k(X), r(torch.from_numpy(X)))
        else:
            _compare(k(X, mask=mask), r(torch.from_numpy(X), mask=torch.from_numpy(mask)))


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_custom_activations_initial_state_and_zero_output(name):
    n_states = 2 if name == "LSTM" else 1
    init = [rng.standard_normal((3, 5)).astype("float32") for _ in range(n_states)]
    opts = dict(return_sequences=True, recurrent_activation="hard_sigmoid", activation="softsign")
    for mask in (RIGHT, HOLES):
        for back in (False, True):
            k = getattr(K.layers, name)(5, go_backwards=back, **opts)
            r = getattr(R.layers, name)(5, go_backwards=back, **opts)
            _pair(k, r, X)
            _compare(k(X, mask=mask, initial_state=init),
                     r(torch.from_numpy(X), mask=torch.from_numpy(mask),
                       initial_state=[torch.from_numpy(s) for s in init]))
    k = getattr(K.layers, name)(5, return_sequences=True, zero_output_for_mask=True)
    r = getattr(R.layers, name)(5, return_sequences=True, zero_output_for_mask=True)
    _pair(k, r, X)
    _compare(k(X, mask=HOLES), r(torch.from_numpy(X), mask=torch.from_numpy(HOLES)))


@pytest.mark.parametrize("merge_mode,opts", [
    ("concat", {"return_sequences": True}), ("sum", {"return_state": True}), ("mul", {}),
    ("ave", {"return_sequences": True, "return_state": True}), (None, {"return_sequences": True})])
def test_bidirectional_matches_keras(merge_mode, opts):
    k = K.layers.Bidirectional(K.layers.LSTM(4, **opts), merge_mode=merge_mode)
    r = R.layers.Bidirectional(R.layers.LSTM(4, **opts), merge_mode=merge_mode)
    _pair(k, r, X)
    assert k.count_params() == r.count_params()
    _compare(k(X), r(torch.from_numpy(X)))
    _compare(k(X, mask=RIGHT), r(torch.from_numpy(X), mask=torch.from_numpy(RIGHT)))


def test_masking_layers_in_models_match_keras():
    ids = np.array([[3, 5, 2, 0, 0], [7, 1, 0, 0, 0], [4, 4, 4, 4, 9]])
    seqs = X[:, :5].copy()
    seqs[0, 3:] = 0.0
    seqs[2, 1] = 0.0  # a hole in the middle
    for lib in (K, R):
        lib.utils.set_random_seed(1)
    def emb(lib):
        inp = lib.Input((5,), dtype="int32")
        h = lib.layers.Embedding(10, 4, mask_zero=True)(inp)
        h = lib.layers.GRU(6, return_sequences=True)(h)
        out = lib.layers.TimeDistributed(lib.layers.Dense(3, activation="softmax"))(h)
        return lib.Model(inp, [out, lib.layers.LSTM(2)(h)])
    def msk(lib):
        return lib.Sequential([lib.Input((5, 4)), lib.layers.Masking(0.0),
                               lib.layers.Bidirectional(lib.layers.SimpleRNN(3, return_sequences=True)),
                               lib.layers.LSTM(2)])
    for build, x in ((emb, ids), (msk, seqs)):
        k, r = build(K), build(R)
        r.set_weights(k.get_weights())
        _compare(k.predict(x, verbose=0), r.predict(x, verbose=0))


def test_stateful_streaming_matches_keras():
    def build(lib):
        return lib.Sequential([lib.Input((3, 4), batch_size=3),
                               lib.layers.LSTM(5, stateful=True, return_sequences=True)])
    k, r = build(K), build(R)
    r.set_weights(k.get_weights())
    for chunk in (X[:, :3], X[:, 3:]):  # state carried across calls
        _compare(k.predict(chunk, batch_size=3, verbose=0), r.predict(chunk, batch_size=3, verbose=0))
    k.layers[0].reset_states()
    r.layers[0].reset_states()
    _compare(k.predict(X[:, 3:], batch_size=3, verbose=0), r.predict(X[:, 3:], batch_size=3, verbose=0))


@pytest.mark.parametrize("layer", [
    lambda L: L.SimpleRNN(3), lambda L: L.LSTM(10), lambda L: L.GRU(7),
    lambda L: L.GRU(7, reset_after=False), lambda L: L.LSTM(6, use_bias=False),
    lambda L: L.Bidirectional(L.GRU(4, return_sequences=True)),
    lambda L: L.TimeDistributed(L.Dense(3)), lambda L: L.Dense(8),
])
def test_parameter_counts_and_output_shapes_match_keras(layer):
    k = K.Sequential([K.Input((7, 10)), layer(K.layers)])
    r = R.Sequential([R.Input((7, 10)), layer(R.layers)])
    assert r.layers[0].count_params() == k.layers[0].count_params()
    assert r.layers[0].output_shape == tuple(k.layers[0].output.shape)


@pytest.mark.parametrize("optimizer", [
    lambda O: O.Adam(0.01), lambda O: O.RMSprop(0.01, clipnorm=0.1),
    lambda O: O.SGD(0.1, momentum=0.9, clipvalue=0.01), lambda O: O.Adagrad(0.1),
], ids=["adam", "rmsprop-clipnorm", "sgd-momentum-clipvalue", "adagrad"])
def test_training_trajectory_matches_keras(optimizer):
    """The issue's program, on both libraries from the same weights: same losses, accuracies and
    final weights after a few epochs (no shuffling, so the batches are the same)."""
    x = np.tile(np.eye(5, dtype="float32")[:, None, :], (8, 1, 1))
    y = np.tile(np.array([1, 2, 3, 4, 0]), 8)
    results = []
    weights = None
    for lib in (K, R):
        model = lib.Sequential([lib.Input((1, 5)), lib.layers.SimpleRNN(3),
                                lib.layers.Dense(5, activation="softmax")])
        weights = weights or model.get_weights()
        model.set_weights(weights)
        model.compile(optimizer=optimizer(lib.optimizers),
                      loss=lib.losses.SparseCategoricalCrossentropy(from_logits=False),
                      metrics=["accuracy"])
        h = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
        results.append((h.history, model.get_weights()))
    (kh, kw), (rh, rw) = results
    assert list(rh) == list(kh)
    for key in kh:
        np.testing.assert_allclose(rh[key], kh[key], rtol=1e-4, atol=1e-5, err_msg=key)
    for a, b in zip(kw, rw):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_evaluate_and_metric_names_match_keras():
    x = rng.standard_normal((20, 4, 3)).astype("float32")
    y = rng.integers(0, 2, size=(20, 1)).astype("float32")
    out = []
    weights = None
    for lib in (K, R):
        model = lib.Sequential([lib.Input((4, 3)), lib.layers.GRU(4),
                                lib.layers.Dense(1, activation="sigmoid")])
        weights = weights or model.get_weights()
        model.set_weights(weights)
        model.compile("adam", "binary_crossentropy", metrics=["accuracy", "mae"])
        out.append(model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True))
    assert set(out[0]) == set(out[1])
    for key in out[0]:
        assert abs(out[0][key] - out[1][key]) < 1e-5, key
