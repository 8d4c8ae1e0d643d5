"""Next-letter prediction, the classic first RNN of the Keras tutorials, on rnnkit.

A SimpleRNN with 3 units reads one one-hot letter and predicts the next one: a->b->c->d->e->a.
The only change from the Keras program is the import line. It trains (Adam 0.01), prints the
predictions, saves the accuracy and loss curves as a PNG, then predicts the next letter of each letter
typed on standard input (one per line; an empty line or end of input stops).

    python examples/keras_next_letter.py                     # curves in next_letter_curves.png
    echo -e "a\nc\ne" | python examples/keras_next_letter.py  # piped input works too
    RNNKIT_EXAMPLES_TINY=1 python examples/keras_next_letter.py   # 5 epochs: a smoke run
"""
import os
import sys
from typing import TextIO

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


def interactive(model, stdin: TextIO = sys.stdin, letters: str = "abcde") -> list[str]:
    """Read letters from ``stdin``, one per line, and print the model's next letter and probability;
    returns the predictions. Anything that is not one of ``letters`` is answered with a message."""
    predictions = []
    interactive_tty = stdin.isatty()
    while True:
        if interactive_tty:
            print(f"letter ({'/'.join(letters)}, empty to stop)> ", end="", flush=True)
        line = stdin.readline()
        letter = line.strip().lower()
        if not letter:
            break
        if letter not in letters:
            print(f"{letter!r} is not one of {', '.join(letters)}; type one letter")
            continue
        x = np.eye(len(letters), dtype="float32")[[letters.index(letter)]][:, None, :]  # (1, 1, 5)
        probs = model.predict(x, verbose=0)[0]
        nxt = letters[int(probs.argmax())]
        print(f"after {letter!r} comes {nxt!r} (probability {probs.max():.3f})")
        predictions.append(nxt)
    return predictions


if __name__ == "__main__":
    tiny = os.environ.get("RNNKIT_EXAMPLES_TINY") == "1"
    curves = "next_letter_curves.png"
    model, _ = main(epochs=5 if tiny else 300, plot=curves)
    print(f"accuracy and loss curves: {curves}")
    interactive(model)
