"""A stack of ``Bidirectional(LSTM)`` layers tagging each step with whether the *next* value is
larger — a task that needs the future, which the backward direction provides.

    python examples/keras_bidirectional_tagger.py
"""
import numpy as np

from rnnkit import keras
from rnnkit.keras import layers


def make_data(n=400, steps=12, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, steps + 1, 1)).astype("float32")
    return x[:, :-1], (x[:, 1:, 0] > x[:, :-1, 0]).astype("int64")  # y[t] = x[t+1] > x[t]


def main(epochs: int = 15, verbose: int = 0):
    keras.utils.set_random_seed(0)
    x, y = make_data()
    model = keras.Sequential([
        keras.Input((12, 1)),
        layers.Bidirectional(layers.LSTM(16, return_sequences=True)),
        layers.Bidirectional(layers.LSTM(8, return_sequences=True), merge_mode="sum"),
        layers.Dense(2, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    history = model.fit(x, y, batch_size=32, epochs=epochs, validation_split=0.25, verbose=verbose)
    print("validation accuracy:", round(history.history["val_accuracy"][-1], 3))
    return model, history


if __name__ == "__main__":
    main(verbose=2)
