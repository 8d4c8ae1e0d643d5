"""The shapes of the Keras RNN tutorial, through rnnkit's Keras-style door (``from rnnkit import keras``).

A SimpleRNN over a random ``(1, 3, 2)`` batch (1 sequence, 3 steps, 2 features) with and without
``return_sequences``; a per-step ``TimeDistributed(Dense)`` head; stacked layers; an ``Embedding`` in
front; a bidirectional LSTM stack ending in a softmax. Each model prints its output shape and its
``summary()`` (parameter counts are Keras's: a SimpleRNN(u) over i features has u*(i+u+1)).

    python examples/rnn_shapes_keras.py
"""
import numpy as np

from rnnkit import keras


def show(title: str, model: keras.Sequential, x: np.ndarray) -> np.ndarray:
    """Run ``model`` on ``x``, print the input and output shapes and the summary; return the output."""
    y = model.predict(x, verbose=0)
    print(f"== {title}: input {x.shape} -> output {y.shape}")
    model.summary()
    print()
    return y


def build_models(keras) -> dict[str, tuple[object, str]]:
    """The tutorial's models, built with the Keras namespace ``keras`` (rnnkit's, or Keras's own: the
    tests build both and compare); each with the name of the input it reads ("x" or "tokens")."""
    layers = keras.layers
    return {
        # the last step's hidden state only: (1, 4)
        "SimpleRNN(4)": (keras.Sequential([keras.Input((3, 2)), layers.SimpleRNN(4)]), "x"),
        # every step's hidden state: (1, 3, 4)
        "SimpleRNN(4, return_sequences=True)": (keras.Sequential(
            [keras.Input((3, 2)), layers.SimpleRNN(4, return_sequences=True)]), "x"),
        # the same Dense applied at each step: (1, 3, 1)
        "SimpleRNN + TimeDistributed(Dense(1))": (keras.Sequential(
            [keras.Input((3, 2)), layers.SimpleRNN(4, return_sequences=True),
             layers.TimeDistributed(layers.Dense(1))]), "x"),
        # a stack: every layer but the last returns sequences so the next one has steps to read
        "stacked SimpleRNN(8) -> SimpleRNN(4)": (keras.Sequential(
            [keras.Input((3, 2)), layers.SimpleRNN(8, return_sequences=True), layers.SimpleRNN(4)]),
            "x"),
        # ids -> vectors -> RNN: Embedding(input_dim=10 words, output_dim=6)
        "Embedding(10, 6) -> SimpleRNN(4)": (keras.Sequential(
            [keras.Input((5,), dtype="int64"), layers.Embedding(10, 6), layers.SimpleRNN(4)]), "tokens"),
        # two bidirectional LSTMs (forward and backward outputs concatenated), a softmax over 3 classes
        "Bidirectional LSTM stack -> Dense(3, softmax)": (keras.Sequential(
            [keras.Input((3, 2)), layers.Bidirectional(layers.LSTM(8, return_sequences=True)),
             layers.Bidirectional(layers.LSTM(4)), layers.Dense(3, activation="softmax")]), "x"),
    }


def inputs() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(0).random((1, 3, 2)).astype("float32"),   # (B=1, T=3, I=2)
            "tokens": np.array([[4, 7, 1, 9, 2]])}                               # (B=1, T=5) word ids


def main() -> dict[str, tuple[int, ...]]:
    keras.utils.set_random_seed(0)
    data = inputs()
    shapes = {}
    for title, (model, name) in build_models(keras).items():
        shapes[title] = show(title, model, data[name]).shape
    print("output shapes:")
    for title, shape in shapes.items():
        print(f"  {title:48s} {shape}")
    return shapes


if __name__ == "__main__":
    main()
