"""Encoder–decoder (N->M) with the functional API: reverse a sequence of digits.

The encoder LSTM's final states initialise the decoder LSTM (``initial_state=``), which reads the
target shifted right (teacher forcing) — the Keras "sequence to sequence" recipe. Saved and loaded
as a run folder at the end.

    python examples/keras_seq2seq.py
"""
import tempfile

import numpy as np

from rnnkit import keras
from rnnkit.keras import layers

DIGITS, STEPS, START = 6, 5, 6  # tokens 0..5, a start token 6


def make_data(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    src = rng.integers(0, DIGITS, size=(n, STEPS))
    tgt = src[:, ::-1]
    dec_in = np.concatenate([np.full((n, 1), START), tgt[:, :-1]], axis=1)
    return keras.utils.to_categorical(src, DIGITS + 1), keras.utils.to_categorical(dec_in, DIGITS + 1), tgt


def build(units=32):
    enc_in = keras.Input((STEPS, DIGITS + 1), name="encoder_inputs")
    _, h, c = layers.LSTM(units, return_state=True)(enc_in)
    dec_in = keras.Input((STEPS, DIGITS + 1), name="decoder_inputs")
    dec = layers.LSTM(units, return_sequences=True)(dec_in, initial_state=[h, c])
    out = layers.Dense(DIGITS, activation="softmax")(dec)
    return keras.Model([enc_in, dec_in], out)


def main(epochs: int = 25, verbose: int = 0):
    keras.utils.set_random_seed(0)
    src, dec_in, tgt = make_data()
    model = build()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    history = model.fit([src, dec_in], tgt, batch_size=64, epochs=epochs, validation_split=0.2,
                        verbose=verbose)
    print("validation accuracy (teacher forcing):", round(history.history["val_accuracy"][-1], 3))
    with tempfile.TemporaryDirectory() as run:
        model.save(run)
        again = keras.models.load_model(run)
        same = np.allclose(again.predict([src[:8], dec_in[:8]], verbose=0),
                           model.predict([src[:8], dec_in[:8]], verbose=0), atol=1e-6)
        print("reloaded model gives the same predictions:", same)
    return model, history


if __name__ == "__main__":
    main(verbose=2)
