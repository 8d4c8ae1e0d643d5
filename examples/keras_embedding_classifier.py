"""``Embedding(mask_zero=True)`` + ``SimpleRNN``: classify padded token sequences — does token 1
appear in the sequence? Padding (id 0) is masked, so the RNN skips it (an N->1 task).

    python examples/keras_embedding_classifier.py
"""
import numpy as np

from rnnkit import keras
from rnnkit.keras import layers


def make_data(n=600, vocab=12, maxlen=10, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [list(rng.integers(1, vocab, size=rng.integers(2, maxlen + 1))) for _ in range(n)]
    labels = np.array([int(1 in s) for s in seqs])
    return keras.utils.pad_sequences(seqs, maxlen=maxlen, padding="post"), labels


def main(epochs: int = 30, verbose: int = 0):
    keras.utils.set_random_seed(0)
    x, y = make_data()
    model = keras.Sequential([
        keras.Input((10,), dtype="int32"),
        layers.Embedding(12, 8, mask_zero=True),
        layers.SimpleRNN(16),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.summary()
    history = model.fit(x, y, batch_size=32, epochs=epochs, validation_split=0.2, verbose=verbose,
                        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=5,
                                                                 restore_best_weights=True)])
    loss, acc = model.evaluate(x, y, verbose=0)
    print(f"accuracy {acc:.3f} after {len(history.epoch)} epochs")
    return model, history


if __name__ == "__main__":
    main(verbose=2)
