"""The layers people put around RNNs, ``keras.ops``, ``keras.random``, the learning-rate schedules,
the AUC metric and ``PyDataset``, each against real Keras 3 (torch backend) with the same weights."""
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras as K  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnnkit import keras as R  # noqa: E402

rng = np.random.default_rng(11)
X = rng.standard_normal((3, 7, 4)).astype("float32")
V = rng.standard_normal((3, 5, 4)).astype("float32")
QMASK = np.array([[1, 1, 1, 1, 1, 0, 0], [1] * 7, [1, 1, 1, 0, 0, 0, 0]], bool)
VMASK = np.array([[1, 1, 1, 0, 0], [1] * 5, [0, 1, 1, 1, 0]], bool)


def _np(t):
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def _same(a, b, tol=2e-5):
    a = a if isinstance(a, (list, tuple)) else [a]
    b = b if isinstance(b, (list, tuple)) else [b]
    assert len(a) == len(b)
    for u, v in zip(a, b):
        u, v = _np(u), _np(v)
        assert u.shape == v.shape, (u.shape, v.shape)
        assert np.abs(u).max() > 1e-4
        assert np.abs(u - v).max() < tol, np.abs(u - v).max()


def _t(x):
    return torch.from_numpy(x) if isinstance(x, np.ndarray) else [torch.from_numpy(v) for v in x]


def _pair(make, inputs, **call):
    """Build the Keras and rnnkit layers on ``inputs``, share perturbed Keras weights, call both."""
    k, r = make(K), make(R)
    rcall = {n: (_t(v) if isinstance(v, (np.ndarray, list)) and not isinstance(v, bool) else v)
             for n, v in call.items()}
    k(inputs, **call)
    r(_t(inputs), **rcall)
    w = [a + 0.2 * rng.standard_normal(a.shape).astype("float32") for a in k.get_weights()]
    k.set_weights(w)
    r.set_weights(w)
    assert [n.shape for n in r.get_weights()] == [n.shape for n in w]
    return k(inputs, **call), r(_t(inputs), **rcall)


@pytest.mark.parametrize("make", [
    lambda M: M.layers.Conv1D(5, 3),
    lambda M: M.layers.Conv1D(6, 3, padding="same", strides=2, activation="relu"),
    lambda M: M.layers.Conv1D(5, 2, padding="causal", dilation_rate=2, use_bias=False),
    lambda M: M.layers.Conv1D(4, 3, groups=2),
    lambda M: M.layers.MaxPooling1D(2),
    lambda M: M.layers.MaxPooling1D(3, strides=2, padding="same"),
    lambda M: M.layers.AveragePooling1D(2, padding="same"),
    lambda M: M.layers.GlobalAveragePooling1D(),
    lambda M: M.layers.GlobalMaxPooling1D(keepdims=True),
    lambda M: M.layers.LayerNormalization(),
    lambda M: M.layers.LayerNormalization(epsilon=1e-5, center=False),
    lambda M: M.layers.LayerNormalization(rms_scaling=True),
    lambda M: M.layers.BatchNormalization(),
    lambda M: M.layers.Flatten(),
    lambda M: M.layers.Reshape((14, 2)),
])
def test_layers_match_keras(make):
    _same(*_pair(make, X))


def test_global_average_pooling_and_batchnorm_use_the_mask_as_keras():
    _same(*_pair(lambda M: M.layers.GlobalAveragePooling1D(), X, mask=QMASK))
    k, r = K.layers.BatchNormalization(momentum=0.5), R.layers.BatchNormalization(momentum=0.5)
    _same(k(X, training=True, mask=QMASK), r(_t(X), training=True, mask=_t(QMASK)))
    for u, v in zip(k.get_weights(), r.get_weights()):  # the moving statistics moved the same way
        np.testing.assert_allclose(v, u, atol=1e-6)
    _same(k(X), r(_t(X)))  # inference: the moving statistics
    assert [w.requires_grad for w in r.weights] == [True, True, False, False]
    r.trainable = True
    assert [w.requires_grad for w in r.weights] == [True, True, False, False]


def test_global_max_pooling_leaves_padded_steps_out():
    # deliberate difference: Keras 3 takes the max over padded steps too; rnnkit over real steps only
    r = R.layers.GlobalMaxPooling1D()
    x = X.copy()
    x[~QMASK] = 100.0  # padding that would win the max
    got = _np(r(_t(x), mask=_t(QMASK)))
    want = np.stack([x[b][QMASK[b]].max(0) for b in range(3)])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("make", [
    lambda M: M.layers.Attention(),
    lambda M: M.layers.Attention(use_scale=True),
    lambda M: M.layers.Attention(score_mode="concat", use_scale=True),
    lambda M: M.layers.AdditiveAttention(),
    lambda M: M.layers.AdditiveAttention(use_scale=False),
])
def test_attention_matches_keras(make):
    _same(*_pair(make, [X, V]))
    _same(*_pair(make, [X, V, V[:, ::-1].copy()], mask=[QMASK, VMASK], return_attention_scores=True))
    _same(*_pair(make, [X, X], use_causal_mask=True))


def test_multi_head_attention_matches_keras():
    for kw in ({}, {"value_dim": 3, "output_shape": 6}, {"use_bias": False}):
        k, r = K.layers.MultiHeadAttention(2, 3, **kw), R.layers.MultiHeadAttention(2, 3, **kw)
        k(X, V)
        r(_t(X), _t(V))
        w = [a + 0.2 * rng.standard_normal(a.shape).astype("float32") for a in k.get_weights()]
        k.set_weights(w)
        r.set_weights(w)
        _same(k(X, V, return_attention_scores=True), r(_t(X), _t(V), return_attention_scores=True))
        _same(k(X, V, value_mask=VMASK, return_attention_scores=True),
              r(_t(X), _t(V), value_mask=_t(VMASK), return_attention_scores=True))
        _same(k(X, X, use_causal_mask=True, return_attention_scores=True),
              r(_t(X), _t(X), use_causal_mask=True, return_attention_scores=True))


def test_merges_lambda_and_a_functional_model_match_keras():
    outs = []
    for M in (K, R):
        a = M.Input((7, 4))
        h = M.layers.LSTM(6, return_sequences=True)(a)
        c = M.layers.Conv1D(6, 3, padding="same")(a)
        s = M.layers.Add()([h, c])
        n = M.layers.LayerNormalization()(s)
        att = M.layers.MultiHeadAttention(2, 3)(n, n)
        p = M.layers.GlobalAveragePooling1D()(M.layers.Concatenate()([att, n]))
        last = M.layers.Lambda(lambda t: t * 2.0)(p)
        outs.append(M.Model(a, M.layers.Dense(1)(last)))
    outs[1].set_weights(outs[0].get_weights())
    _same(outs[0].predict(X, verbose=0), outs[1].predict(X, verbose=0), tol=1e-4)
    for M, lib in ((K, outs[0]), (R, outs[1])):
        lib.compile(optimizer=M.optimizers.SGD(0.05), loss="mse")
    y = rng.standard_normal((3, 1)).astype("float32")
    hk = outs[0].fit(X, y, epochs=3, batch_size=3, verbose=0).history["loss"]
    hr = outs[1].fit(X, y, epochs=3, batch_size=3, verbose=0).history["loss"]
    np.testing.assert_allclose(hr, hk, rtol=1e-4)
    for name in ("Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        _same(*_pair(lambda M, n=name: getattr(M.layers, n)(), [X, X[:, ::-1].copy()]))


def test_ops_match_keras():
    a, b = rng.standard_normal((3, 4)).astype("float32"), rng.standard_normal((4, 2)).astype("float32")
    checks = [("matmul", (a, b), {}), ("dot", (a, b), {}), ("tanh", (a,), {}), ("sigmoid", (a,), {}),
              ("softmax", (a,), {"axis": 0}), ("mean", (a,), {"axis": 1, "keepdims": True}),
              ("sum", (a,), {"axis": [0, 1]}), ("max", (a,), {"axis": 0}), ("var", (a,), {}),
              ("concatenate", ([a, a],), {"axis": 1}), ("stack", ([a, a],), {"axis": 1}),
              ("reshape", (a, (2, 6)), {}), ("transpose", (a,), {}), ("expand_dims", (a, 1), {}),
              ("where", (a > 0, a, 0.0), {}), ("clip", (a, -0.5, 0.5), {}), ("square", (a,), {}),
              ("einsum", ("ij,jk->ik", a, b), {}), ("cumsum", (a,), {"axis": 1}), ("flip", (a,), {"axis": 1}),
              ("one_hot", (np.array([0, 2, 1]), 3), {}), ("take", (a, np.array([2, 0])), {"axis": 0}),
              ("argmax", (a,), {"axis": 1}), ("pad", (a, ((1, 0), (0, 2))), {}), ("norm", (a,), {}),
              ("eye", (3, 4), {"k": 1}), ("split", (a, 2), {"axis": 1}), ("tile", (a, (2, 1)), {})]
    for name, args, kw in checks:
        want, got = getattr(K.ops, name)(*args, **kw), getattr(R.ops, name)(*args, **kw)
        want, got = (want, got) if isinstance(want, (list, tuple)) else ([want], [got])
        for u, v in zip(want, got):
            np.testing.assert_allclose(_np(v).astype("float64"), _np(u).astype("float64"), atol=1e-5,
                                       err_msg=name)


def test_random_with_a_seed_draws_what_keras_draws():
    for name, args, kw in (("normal", ((3, 4),), {"mean": 1.0, "stddev": 2.0}), ("uniform", ((5,),), {}),
                           ("randint", ((4, 2), 0, 9), {}), ("truncated_normal", ((6,),), {}),
                           ("dropout", (torch.ones(4, 5), 0.5), {}),
                           ("shuffle", (np.arange(10),), {}),
                           ("categorical", (np.log(np.array([[0.2, 0.8], [0.5, 0.5]])), 6), {})):
        want = _np(getattr(K.random, name)(*args, seed=42, **kw))
        got = _np(getattr(R.random, name)(*args, seed=42, **kw))
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=name)
    gk, gr = K.random.SeedGenerator(7), R.random.SeedGenerator(7)
    for _ in range(3):  # a generator's stream advances the same way
        np.testing.assert_allclose(_np(R.random.normal((2,), seed=gr)), _np(K.random.normal((2,), seed=gk)))


@pytest.mark.parametrize("make", [
    lambda S: S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5),
    lambda S: S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True),
    lambda S: S.CosineDecay(0.1, decay_steps=20, alpha=0.1),
    lambda S: S.CosineDecay(0.0, decay_steps=20, warmup_target=0.2, warmup_steps=5),
    lambda S: S.PiecewiseConstantDecay([5, 12], [0.3, 0.2, 0.1]),
])
def test_schedules_match_keras(make):
    k, r = make(K.optimizers.schedules), make(R.optimizers.schedules)
    for step in (0, 1, 4, 5, 6, 11, 12, 13, 19, 20, 25, 40):
        assert abs(float(k(step)) - r(step)) < 1e-6, step
    # in an optimizer: the rate the step uses is the schedule's at the step count so far
    opt = R.optimizers.SGD(make(R.optimizers.schedules))
    opt.iterations = 6
    assert opt.learning_rate == pytest.approx(float(k(6)))
    again = R.optimizers.get({"class_name": "SGD", "config": opt.get_config()})
    again.iterations = 6
    assert again.learning_rate == opt.learning_rate


@pytest.mark.parametrize("kw", [{}, {"curve": "PR"}, {"num_thresholds": 50, "summation_method": "minoring"},
                                {"curve": "PR", "summation_method": "majoring"}, {"from_logits": True}])
def test_auc_matches_keras(kw):
    y = (rng.random((40, 1)) > 0.4).astype("float32")
    p = np.clip(y * 0.3 + rng.random((40, 1)) * 0.7, 0, 1).astype("float32")
    sw = rng.random(40).astype("float32")
    k, r = K.metrics.AUC(**kw), R.metrics.AUC(**kw)
    for sl in (slice(0, 25), slice(25, 40)):  # accumulated over batches
        k.update_state(y[sl], p[sl], sample_weight=sw[sl])
        r.update_state(y[sl], p[sl], sample_weight=sw[sl])
    assert abs(float(k.result()) - r.result()) < 1e-5


def test_auc_as_a_compiled_metric_matches_keras():
    x = rng.standard_normal((30, 4)).astype("float32")
    y = (x[:, :1] + 0.5 * rng.standard_normal((30, 1)) > 0).astype("float32")
    logs = []
    for M in (K, R):
        m = M.Sequential([M.Input((4,)), M.layers.Dense(1, activation="sigmoid")])
        m.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["AUC"])
        logs.append(m)
    logs[1].set_weights(logs[0].get_weights())
    a = logs[0].evaluate(x, y, return_dict=True, verbose=0)
    b = logs[1].evaluate(x, y, return_dict=True, verbose=0)
    assert set(a) == set(b) == {"loss", "AUC"}
    assert abs(a["AUC"] - b["AUC"]) < 1e-5


def test_pydataset_feeds_fit_evaluate_predict_as_keras():
    x = rng.standard_normal((12, 4)).astype("float32")
    y = rng.standard_normal((12, 1)).astype("float32")

    def make(M, workers):
        class Batches(M.utils.PyDataset):
            def __init__(self):
                super().__init__(workers=workers)
                self.epochs_ended, self.read = 0, []

            def __len__(self):
                return 3

            def __getitem__(self, i):
                self.read.append(i)
                return x[4 * i:4 * i + 4], y[4 * i:4 * i + 4]

            def on_epoch_end(self):
                self.epochs_ended += 1

        return Batches()

    models, data = [], []
    for M, workers in ((K, 1), (R, 2)):
        m = M.Sequential([M.Input((4,)), M.layers.Dense(1)])
        m.compile(optimizer=M.optimizers.SGD(0.1), loss="mse")
        models.append(m)
        data.append(make(M, workers))
    models[1].set_weights(models[0].get_weights())
    hk = models[0].fit(data[0], epochs=2, verbose=0, shuffle=False).history["loss"]
    hr = models[1].fit(data[1], epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(hr, hk, rtol=1e-5)
    assert data[1].epochs_ended == 2
    assert abs(models[0].evaluate(data[0], verbose=0) - models[1].evaluate(data[1], verbose=0)) < 1e-5
    _same(models[0].predict(data[0], verbose=0), models[1].predict(data[1], verbose=0))
    shuffled = make(R, 1)
    models[1].fit(shuffled, epochs=20, verbose=0)  # shuffle=True: a new batch order each epoch
    orders = {tuple(shuffled.read[i:i + 3]) for i in range(0, 60, 3)}
    assert all(sorted(o) == [0, 1, 2] for o in orders) and len(orders) > 1


def test_multi_head_attention_passes_the_query_mask_on_as_keras():
    ids = rng.integers(1, 9, size=(3, 6))
    ids[0, 4:] = 0
    ids[2, 2:] = 0
    models = []
    for M in (K, R):
        x = M.Input((6,), dtype="int32")
        e = M.layers.Embedding(9, 4, mask_zero=True)(x)
        h = M.layers.MultiHeadAttention(2, 2)(e, e)
        models.append(M.Model(x, M.layers.Dense(1)(M.layers.LSTM(3)(h))))
    models[1].set_weights(models[0].get_weights())
    _same(models[0].predict(ids, verbose=0), models[1].predict(ids, verbose=0), tol=1e-5)
