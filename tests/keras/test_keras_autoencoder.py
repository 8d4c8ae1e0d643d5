"""1→N through the Keras-style door: a sequence autoencoder (encoder LSTM → its final vector →
RepeatVector → decoder LSTM → per-step softmax) learns to reproduce short sequences from their
encodings alone, on sequences it was not trained on too."""
from __future__ import annotations

import numpy as np

from rnnkit import keras
from rnnkit.keras import layers as L


def test_sequence_autoencoder_reproduces_sequences_from_their_encodings():
    keras.utils.set_random_seed(0)
    V, T = 4, 4
    rng = np.random.default_rng(0)
    seqs = rng.integers(0, V, size=(1200, T))
    x = keras.utils.to_categorical(seqs, V).astype("float32")     # (N, T, V) one-hot
    encoder = L.LSTM(48)                                          # the whole sequence -> one vector
    model = keras.Sequential([keras.Input((T, V)), encoder, L.RepeatVector(T),
                              L.LSTM(48, return_sequences=True),
                              L.TimeDistributed(L.Dense(V, activation="softmax"))])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(x[:1000], seqs[:1000], epochs=25, batch_size=50, verbose=0)
    held_out = model.predict(x[1000:], verbose=0).argmax(-1)      # (200, T)
    token_acc = (held_out == seqs[1000:]).mean()
    whole = (held_out == seqs[1000:]).all(-1).mean()
    # chance is 1/V per token and 1/V**T for a whole sequence
    assert token_acc > 0.9 and whole > 0.7, (token_acc, whole)
