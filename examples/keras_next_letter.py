"""Next-letter prediction, the classic first RNN of the Keras tutorials, on rnnkit.

A SimpleRNN with 3 units reads one one-hot letter and predicts the next one: a->b->c->d->e->a.
The only change from the Keras program is the import line.

    python examples/keras_next_letter.py
"""
import numpy as np

from rnnkit import keras  # was: from tensorflow import keras
from rnnkit.keras.layers import Dense, SimpleRNN
from rnnkit.keras.losses import SparseCategoricalCrossentropy
from rnnkit.keras.models import Sequential
from rnnkit.keras.optimizers import Adam


def main(epochs: int = 300, verbose: int = 0, plot: str | None = None):
    keras.utils.set_random_seed(0)
    letters = "abcde"
    x_train = np.eye(5, dtype="float32")[:, None, :]  # (5 samples, 1 step, 5 features): a..e
    y_train = np.array([1, 2, 3, 4, 0])  # the next letter's index

    model = Sequential([SimpleRNN(3, input_shape=(1, 5)), Dense(5, activation="softmax")])
    model.compile(optimizer=Adam(0.01), loss=SparseCategoricalCrossentropy(from_logits=False),
                  metrics=["sparse_categorical_accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=verbose)
    model.summary()

    pred = model.predict(x_train, verbose=0)
    for i, p in enumerate(pred.argmax(-1)):
        print(f"{letters[i]} -> {letters[p]}")
    print("final accuracy:", history.history["sparse_categorical_accuracy"][-1])
    if plot:
        history.plot(plot)
    return model, history


if __name__ == "__main__":
    main(plot="next_letter_curves.png")
