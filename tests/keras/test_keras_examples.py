"""The Keras-documentation-style recurrent examples, as tests (and the scripts in examples/)."""
import importlib.util
import pathlib

import numpy as np
import torch

from rnnkit import keras
from rnnkit.keras import layers as L

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_next_letter_reaches_full_accuracy(capsys):
    """The issue's program: SimpleRNN(3) + Dense(5, softmax) learns a->b->c->d->e->a."""
    model, history = load("keras_next_letter").main(epochs=300)
    assert history.history["sparse_categorical_accuracy"][-1] == 1.0
    out = capsys.readouterr().out
    assert "a -> b\nb -> c\nc -> d\nd -> e\ne -> a" in out
    assert "│ simple_rnn" in out and "│            27 │" in out and "Total params: 143" in out


def test_stacked_simple_rnn_with_time_distributed_head():
    model, history = load("keras_stacked_rnn").main(epochs=12)
    assert [l.output_shape for l in model.layers] == [(None, 8, 16), (None, 8, 16), (None, 8, 2)]
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_embedding_simple_rnn_classifier_learns():
    model, history = load("keras_embedding_classifier").main(epochs=12)
    assert max(history.history["val_accuracy"]) > 0.9


def test_bidirectional_lstm_stack_learns():
    model, history = load("keras_bidirectional_tagger").main(epochs=6)
    assert history.history["val_accuracy"][-1] > 0.85
    assert model.layers[0].count_params() == 2 * 4 * 16 * (1 + 16 + 1)


def test_seq2seq_encoder_decoder(capsys):
    model, history = load("keras_seq2seq").main(epochs=8)
    assert history.history["val_accuracy"][-1] > 0.6
    assert "reloaded model gives the same predictions: True" in capsys.readouterr().out


def test_one_to_many_with_repeat_vector():
    """1->N: one vector, repeated to every step, decoded into a sequence."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), L.RepeatVector(5), L.LSTM(8, return_sequences=True),
                              L.TimeDistributed(L.Dense(1))])
    x = np.random.default_rng(0).standard_normal((64, 3)).astype("float32")
    y = np.cumsum(np.repeat(x[:, :1], 5, axis=1), axis=1)[..., None]  # a ramp set by x[0]
    model.compile(keras.optimizers.Adam(0.02), "mse")
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]
    assert model.predict(x[:2], verbose=0).shape == (2, 5, 1)


def test_stateful_truncated_bptt_streaming():
    """Train statefully on consecutive chunks, then predict a stream chunk by chunk: equal to
    one pass over the whole sequence."""
    keras.utils.set_random_seed(0)
    t = np.linspace(0, 8 * np.pi, 41, dtype="float32")
    wave = np.sin(t)[None, :, None].repeat(4, 0)
    model = keras.Sequential([keras.Input((10, 1), batch_size=4),
                              L.GRU(8, stateful=True, return_sequences=True),
                              L.Dense(1)])
    model.compile("adam", "mse")
    for _ in range(3):
        for k in range(0, 40, 10):
            model.train_on_batch(wave[:, k:k + 10], wave[:, k + 1:k + 11])
        model.reset_states()
    stream = np.concatenate([model.predict(wave[:, k:k + 10], batch_size=4, verbose=0)
                             for k in range(0, 40, 10)], 1)
    whole = keras.Sequential([keras.Input((40, 1)), L.GRU(8, return_sequences=True), L.Dense(1)])
    whole.set_weights(model.get_weights())
    np.testing.assert_allclose(stream, whole.predict(wave[:, :40], verbose=0), atol=1e-5)
    assert isinstance(model.layers[0], torch.nn.Module)
