"""Stacked SimpleRNNs with ``return_sequences`` and a per-step ``TimeDistributed(Dense)`` head:
tag each step of a random bit sequence with the parity of the bits seen so far (an N->N task).

    python examples/keras_stacked_rnn.py
"""
import numpy as np

from rnnkit import keras
from rnnkit.keras import layers


def make_data(n=512, steps=8, seed=0):
    bits = np.random.default_rng(seed).integers(0, 2, size=(n, steps))
    return bits[..., None].astype("float32"), np.cumsum(bits, axis=1) % 2  # x (N, T, 1), y (N, T)


def main(epochs: int = 40, verbose: int = 0):
    keras.utils.set_random_seed(0)
    x, y = make_data()
    model = keras.Sequential([
        keras.Input((8, 1)),
        layers.SimpleRNN(16, return_sequences=True),
        layers.SimpleRNN(16, return_sequences=True),
        layers.TimeDistributed(layers.Dense(2, activation="softmax")),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    history = model.fit(x, y, batch_size=32, epochs=epochs, validation_split=0.2, verbose=verbose)
    print("validation accuracy:", round(history.history["val_accuracy"][-1], 3))
    return model, history


if __name__ == "__main__":
    main(verbose=2)
