"""A Keras-style front door to rnnkit: ``from rnnkit import keras`` and Keras code runs.

Laid out as Keras's own namespace::

    from rnnkit import keras
    model = keras.Sequential([keras.layers.SimpleRNN(3), keras.layers.Dense(5, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=100)   # NumPy arrays in
    model.summary(); pred = model.predict(x)

Layers are ``torch.nn.Module``s (batch-first, Keras's arguments, defaults and weight layout); the
recurrent ones run on the engine (`rnnkit.core`) and use its fused kernel when Keras's own fast-path
conditions hold. Modules: `layers`, `models`, `optimizers`, `losses`, `metrics`, `callbacks`,
`activations`, `initializers`, `utils`, `backend`, `ops`, `random`; and `Sequential`, `Model`, `Input`."""
from rnnkit.keras import (activations, backend, callbacks, initializers, layers, losses, metrics,
                          models, ops, optimizers, random, utils)
from rnnkit.keras.layers import Input, KerasTensor, Layer
from rnnkit.keras.models import Model, Sequential, load_model

saving = models.saving

__all__ = ["layers", "models", "optimizers", "losses", "metrics", "callbacks", "activations", "ops", "random",
           "initializers", "utils", "backend", "Sequential", "Model", "Input", "Layer",
           "KerasTensor", "load_model", "saving"]
