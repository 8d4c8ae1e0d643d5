"""Every argument Keras accepts is honoured or refused, never silently dropped (issue 13), each
checked against real Keras 3 (torch backend) doing the same thing."""
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras as K  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnnkit import keras as R  # noqa: E402

rng = np.random.default_rng(3)
X = rng.standard_normal((10, 4)).astype("float32")
Y = rng.standard_normal((10, 2)).astype("float32")
SW = rng.uniform(0.1, 2.0, size=10).astype("float32")


def _twin(compile_kw=None):
    """The same Dense model in Keras and rnnkit, with Keras's weights in both."""
    k = K.Sequential([K.Input((4,)), K.layers.Dense(2)])
    r = R.Sequential([R.Input((4,)), R.layers.Dense(2)])
    r.set_weights(k.get_weights()) if hasattr(r, "set_weights") else r.layers[0].set_weights(k.get_weights())
    for m in (k, r):
        m.compile(optimizer="sgd", loss="mse", **(compile_kw or {}))
    return k, r


def _close(a, b, tol=1e-5):
    assert set(a) == set(b), (sorted(a), sorted(b))
    for key in a:
        assert abs(float(a[key]) - float(b[key])) < tol, (key, a[key], b[key])


def test_arguments_keras_rejects_are_rejected():
    for make in (lambda M: M.layers.LSTM(4, time_major=True), lambda M: M.layers.Dense(3, foo=2),
                 lambda M: M.layers.SimpleRNN(3, use_cudnn=False)):
        with pytest.raises(ValueError):
            make(K)
        with pytest.raises((ValueError, TypeError)):
            make(R)
    for M, err in ((K, TypeError), (R, TypeError)):
        m = M.Sequential([M.Input((4,)), M.layers.Dense(2)])
        with pytest.raises(err):
            m.compile(optimizer="sgd", loss="mse", foo=1)
    with pytest.raises(ValueError, match="time_major"):
        R.layers.LSTM(4, time_major=True)


def test_unsupported_settings_are_refused_with_the_argument_named():
    m = R.Sequential([R.Input((4,)), R.layers.Dense(2)])
    with pytest.raises(ValueError, match="jit_compile"):
        m.compile(optimizer="sgd", loss="mse", jit_compile=True)
    with pytest.raises(ValueError, match="steps_per_execution"):
        m.compile(optimizer="sgd", loss="mse", steps_per_execution=4)
    with pytest.raises(ValueError, match="use_ema"):
        R.optimizers.Adam(use_ema=True)
    with pytest.raises(ValueError, match="sparse"):
        R.Input((3,), sparse=True)
    with pytest.raises(ValueError, match="dtype"):
        R.layers.Dense(2, dtype="mixed_float16")
    m.compile(optimizer="sgd", loss="mse", run_eagerly=True, jit_compile=False, auto_scale_loss=False)


def test_weighted_metrics_match_keras():
    k, r = _twin({"metrics": ["mae"], "weighted_metrics": ["mae", "mse"]})
    _close(k.evaluate(X, Y, sample_weight=SW, return_dict=True, verbose=0),
           r.evaluate(X, Y, sample_weight=SW, return_dict=True, verbose=0))
    hk = k.fit(X, Y, sample_weight=SW, batch_size=4, shuffle=False, verbose=0).history
    hr = r.fit(X, Y, sample_weight=SW, batch_size=4, shuffle=False, verbose=0).history
    _close({a: v[0] for a, v in hk.items()}, {a: v[0] for a, v in hr.items()})


@pytest.mark.parametrize("weights", [[2.5], 2.5, (0.5,)])
def test_loss_weights_for_one_output_match_keras(weights):
    k, r = _twin({"loss_weights": weights})
    _close(k.evaluate(X, Y, return_dict=True, verbose=0), r.evaluate(X, Y, return_dict=True, verbose=0))
    r.compile(optimizer="sgd", loss="mse", loss_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="loss_weights"):
        r.evaluate(X, Y, verbose=0)


class Recorder:
    """A callback (built for both libraries) recording each hook called and its batch index."""

    @staticmethod
    def make(base):
        class _R(base):
            def __init__(self):
                super().__init__()
                self.calls = []

        for hook in ("on_test_begin", "on_test_end", "on_predict_begin", "on_predict_end"):
            setattr(_R, hook, lambda self, logs=None, _h=hook: self.calls.append(_h))
        for hook in ("on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
                     "on_predict_batch_end"):
            setattr(_R, hook, lambda self, batch, logs=None, _h=hook: self.calls.append((_h, batch)))
        return _R()


def test_evaluate_and_predict_call_their_callbacks_as_keras():
    k, r = _twin()
    for verb in ("evaluate", "predict"):
        ck, cr = Recorder.make(K.callbacks.Callback), Recorder.make(R.callbacks.Callback)
        if verb == "evaluate":
            k.evaluate(X, Y, batch_size=4, callbacks=[ck], verbose=0)
            r.evaluate(X, Y, batch_size=4, callbacks=[cr], verbose=0)
        else:
            k.predict(X, batch_size=4, callbacks=[ck], verbose=0)
            r.predict(X, batch_size=4, callbacks=[cr], verbose=0)
        assert cr.calls == ck.calls and len(ck.calls) == 8
    with pytest.raises(TypeError, match="callbacks"):
        r.predict(X, callbacks=[print])


def test_fit_calls_test_hooks_during_validation_as_keras():
    k, r = _twin()
    ck, cr = Recorder.make(K.callbacks.Callback), Recorder.make(R.callbacks.Callback)
    k.fit(X, Y, validation_data=(X, Y), batch_size=5, callbacks=[ck], verbose=0)
    r.fit(X, Y, validation_data=(X, Y), batch_size=5, callbacks=[cr], verbose=0)
    assert cr.calls == ck.calls and "on_test_begin" in ck.calls


def test_steps_arguments_are_honoured_on_arrays_as_keras():
    k, r = _twin()
    _close(k.evaluate(X, Y, batch_size=3, steps=2, return_dict=True, verbose=0),
           r.evaluate(X, Y, batch_size=3, steps=2, return_dict=True, verbose=0))
    assert k.predict(X, batch_size=3, steps=2, verbose=0).shape == r.predict(X, batch_size=3, steps=2,
                                                                             verbose=0).shape == (6, 2)
    hk = k.fit(X, Y, batch_size=2, epochs=2, steps_per_epoch=2, validation_data=(X, Y),
               validation_steps=1, validation_batch_size=3, shuffle=False, verbose=0).history
    hr = r.fit(X, Y, batch_size=2, epochs=2, steps_per_epoch=2, validation_data=(X, Y),
               validation_steps=1, validation_batch_size=3, shuffle=False, verbose=0).history
    assert int(k.optimizer.iterations) == r.optimizer.iterations == 4
    _close({a: v[-1] for a, v in hk.items()}, {a: v[-1] for a, v in hr.items()})


def test_predict_accepts_the_single_input_in_a_list():
    k, r = _twin()
    want = k.predict([X], verbose=0)
    np.testing.assert_allclose(r.predict([X], verbose=0), want, atol=1e-6)
    np.testing.assert_allclose(r.predict(X, verbose=0), want, atol=1e-6)


def test_to_categorical_dtype_is_keras():
    ids = np.array([0, 2, 1, 2])
    a, b = K.utils.to_categorical(ids, 3), R.utils.to_categorical(ids, 3)
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


def test_load_weights_skip_mismatch(tmp_path):
    src = R.Sequential([R.Input((4,)), R.layers.Dense(3, name="a"), R.layers.Dense(2, name="b")])
    dst = R.Sequential([R.Input((4,)), R.layers.Dense(3, name="a2"), R.layers.Dense(5, name="b2")])
    path = tmp_path / "w.safetensors"
    src.save_weights(path)
    before = dst.layers[1].get_weights()
    with pytest.raises(ValueError, match="skip_mismatch"):
        dst.load_weights(path)
    with pytest.warns(UserWarning, match="skipped"):
        dst.load_weights(path, skip_mismatch=True)
    for a, b in zip(dst.layers[0].get_weights(), src.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)  # the matching layer is loaded
    for a, b in zip(dst.layers[1].get_weights(), before):
        np.testing.assert_array_equal(a, b)  # the mismatched one keeps its weights


def test_seed_makes_dropout_reproducible():
    x = torch.from_numpy(rng.standard_normal((4, 6, 3)).astype("float32"))
    outs = []
    for seed in (7, 7, 8):
        layer = R.layers.LSTM(5, dropout=0.5, recurrent_dropout=0.5, seed=seed)
        layer(x)
        layer.set_weights([np.full(w.shape, 0.1, "float32") for w in layer.get_weights()])
        drop = R.layers.Dropout(0.5, seed=seed)
        outs.append((layer(x, training=True), drop(x, training=True)))
    for a, b in zip(outs[0], outs[1]):
        torch.testing.assert_close(a, b)
    for a, c in zip(outs[0], outs[2]):
        assert not torch.equal(a, c)
    assert R.layers.LSTM(5, seed=7).get_config()["seed"] == 7


def test_layer_dtype_is_honoured_as_keras():
    k, r = K.layers.Dense(3, dtype="float64"), R.layers.Dense(3, dtype="float64")
    xk = k(X)
    xr = r(torch.from_numpy(X))
    r.set_weights(k.get_weights())
    assert r.kernel.dtype == torch.float64 and str(xk.dtype).endswith("float64")
    np.testing.assert_allclose(r(torch.from_numpy(X)).detach().numpy(), k(X).detach().cpu().numpy(),
                               atol=1e-6)
    assert xr.dtype == torch.float64


def test_summary_arguments_are_honoured_or_refused():
    m = R.Sequential([R.Input((5, 3)), R.layers.LSTM(4), R.layers.Dense(2)])
    m.layers[0].trainable = False
    lines = []
    m.summary(line_length=70, show_trainable=True, print_fn=lines.append)
    table = [line for line in lines if line.startswith(("┏", "│", "└"))]
    default = []
    m.summary(print_fn=default.append)
    assert max(len(line) for line in table) <= 75 < max(len(line) for line in default)
    rows = {line.split("│")[1].split()[1]: line.split("│")[4].strip()
            for line in lines if "(L" in line or "(D" in line}
    assert rows == {"(LSTM)": "N", "(Dense)": "Y"}
    with pytest.raises(ValueError, match="expand_nested"):
        m.summary(expand_nested=True)


def test_embedding_weights_argument_as_keras():
    table = rng.standard_normal((6, 3)).astype("float32")
    ids = np.array([[1, 5, 0], [2, 2, 4]])
    k, r = K.layers.Embedding(6, 3, weights=[table]), R.layers.Embedding(6, 3, weights=[table])
    np.testing.assert_array_equal(r(torch.from_numpy(ids)).detach().numpy(), k(ids).detach().cpu().numpy())


def test_loaders_take_validation_loaders_and_class_weight_as_keras():
    x = rng.standard_normal((8, 4)).astype("float32")
    y = (rng.random((8, 1)) > 0.5).astype("float32")

    def batches(M):
        class B(M.utils.PyDataset):
            def __len__(self):
                return 2

            def __getitem__(self, i):
                return x[4 * i:4 * i + 4], y[4 * i:4 * i + 4]
        return B()

    hist = []
    k = K.Sequential([K.Input((4,)), K.layers.Dense(1, activation="sigmoid")])
    r = R.Sequential([R.Input((4,)), R.layers.Dense(1, activation="sigmoid")])
    r.set_weights(k.get_weights())
    for M, m in ((K, k), (R, r)):
        m.compile(optimizer=M.optimizers.SGD(0.1), loss="binary_crossentropy")
        hist.append(m.fit(batches(M), validation_data=batches(M), class_weight={0: 1.0, 1: 3.0},
                          epochs=2, shuffle=False, verbose=0).history)
    _close({a: v[-1] for a, v in hist[0].items()}, {a: v[-1] for a, v in hist[1].items()})
    with pytest.raises(ValueError, match="sample_weight"):
        r.fit(batches(R), sample_weight=np.ones(8), verbose=0)


def test_model_call_honours_training_and_mask_as_keras():
    x = rng.standard_normal((3, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    outs = []
    for M in (K, R):
        inp = M.Input((5, 4))
        out = M.layers.Dense(1)(M.layers.GRU(3)(inp))
        outs.append((M.Sequential([M.Input((5, 4)), M.layers.GRU(3), M.layers.Dense(1)]), M.Model(inp, out)))
    for k, r in outs:
        r.set_weights(k.get_weights())
        got = r(torch.from_numpy(x), mask=torch.from_numpy(mask)).detach().numpy()
        want = k(x, mask=mask).detach().cpu().numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert np.abs(got - r(torch.from_numpy(x)).detach().numpy()).max() > 1e-4  # the mask mattered
    drop = R.Sequential([R.Input((4,)), R.layers.Dropout(0.5)])
    ones = torch.ones(2, 4)
    assert torch.equal(drop(ones), ones)
    assert not torch.equal(drop(ones, training=True), ones) and not drop.training


def test_seeded_initializers_repeat_their_draw():
    for name in ("GlorotUniform", "GlorotNormal", "HeUniform", "Orthogonal", "RandomNormal"):
        init = getattr(R.initializers, name)(seed=4)
        a, b = init(torch.empty(5, 6)), init(torch.empty(5, 6))
        torch.testing.assert_close(a, b)
        assert not torch.equal(a, getattr(R.initializers, name)(seed=5)(torch.empty(5, 6)))
        assert init.get_config()["seed"] == 4
    before = torch.random.get_rng_state()
    R.initializers.GlorotUniform(seed=1)(torch.empty(3, 3))
    assert torch.equal(before, torch.random.get_rng_state())  # the global stream is not touched
    layer = R.layers.Dense(3, kernel_initializer=R.initializers.GlorotUniform(seed=2))
    other = R.layers.Dense(3, kernel_initializer=R.initializers.GlorotUniform(seed=2))
    layer(torch.ones(1, 4))
    other(torch.ones(1, 4))
    torch.testing.assert_close(layer.kernel, other.kernel)


def test_loss_options_match_keras():
    logits = rng.standard_normal((3, 5, 4)).astype("float32")
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ids = rng.integers(0, 4, size=(3, 5))
    onehot = np.eye(4, dtype="float32")[ids]
    binary = (rng.random((3, 5, 4)) > 0.5).astype("float32")
    sig = 1 / (1 + np.exp(-logits))
    cases = [("BinaryCrossentropy", {"label_smoothing": 0.1}, binary, sig),
             ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, binary, logits),
             ("CategoricalCrossentropy", {"label_smoothing": 0.2}, onehot, probs),
             ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, onehot, logits),
             ("SparseCategoricalCrossentropy", {"ignore_class": 2}, ids, probs),
             ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 0}, ids, logits)]
    for name, kw, y, p in cases:
        want = float(getattr(K.losses, name)(**kw)(y, p))
        got = float(getattr(R.losses, name)(**kw)(torch.from_numpy(y), torch.from_numpy(p)))
        assert abs(want - got) < 1e-5, (name, kw, want, got)
    with pytest.raises(ValueError, match="axis"):
        R.losses.CategoricalCrossentropy(axis=1)(torch.from_numpy(onehot), torch.from_numpy(probs))


def test_a_keras_file_compiled_with_loss_objects_loads_compiled(tmp_path):
    import warnings
    x = rng.standard_normal((6, 5, 3)).astype("float32")
    y = rng.integers(0, 4, size=(6,))
    k = K.Sequential([K.Input((5, 3)), K.layers.GRU(4), K.layers.Dense(4)])
    k.compile(optimizer=K.optimizers.Adam(0.01), metrics=["accuracy"],
              loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
    k.fit(x, y, epochs=1, batch_size=6, verbose=0)
    k.save(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        r = R.models.load_model(tmp_path / "m.keras")
    hk = k.fit(x, y, epochs=2, batch_size=6, shuffle=False, verbose=0).history
    hr = r.fit(x, y, epochs=2, batch_size=6, shuffle=False, verbose=0).history
    _close({a: v[-1] for a, v in hk.items()}, {a: v[-1] for a, v in hr.items()}, tol=1e-4)
