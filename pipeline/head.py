"""The small Keras head trained on cached features (the Paperspace recipe by default)."""

from __future__ import annotations

import numpy as np
import tf_keras as keras


def build_head(
    input_dim: int,
    num_classes: int,
    *,
    hidden_units: tuple[int, ...] = (50, 30, 30),
    dropout_rate: float = 0.0,
    seed: int = 42,
) -> keras.Model:
    """Dense(50, relu) -> BatchNorm -> Dense(30, relu) -> Dense(30, relu) -> sigmoid or softmax.

    Two classes get one sigmoid unit (binary cross-entropy); more get a K-way softmax. He-normal
    initialisers suit the ReLU layers, Glorot the output; each layer gets its own seed so the whole
    head is reproducible from one number.
    """
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    inputs = keras.Input(shape=(input_dim,), name="features")
    hidden = inputs
    for index, units in enumerate(hidden_units):
        hidden = keras.layers.Dense(
            units,
            activation="relu",
            kernel_initializer=keras.initializers.HeNormal(seed=seed + index),
            name=f"dense_{index}",
        )(hidden)
        if index == 0:
            hidden = keras.layers.BatchNormalization(name="batch_norm")(hidden)
        if dropout_rate > 0:
            hidden = keras.layers.Dropout(dropout_rate, seed=seed + 100 + index, name=f"dropout_{index}")(hidden)
    output_units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    outputs = keras.layers.Dense(
        output_units,
        activation=activation,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + len(hidden_units)),
        name="probabilities",
    )(hidden)
    return keras.Model(inputs, outputs, name="head")


def compile_head(model: keras.Model, num_classes: int, *, learning_rate: float = 1e-3) -> keras.Model:
    """Adam with the matching loss; Keras AUROC/PR-AUC metrics for two classes (K > 2 uses a callback)."""
    if num_classes == 2:
        loss = keras.losses.BinaryCrossentropy()
        metrics = [
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.AUC(curve="ROC", num_thresholds=1000, name="auroc"),
            keras.metrics.AUC(curve="PR", num_thresholds=1000, name="pr_auc"),
        ]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss, metrics=metrics)
    return model


def predict_probabilities(model: keras.Model, features: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """[N, K] class probabilities whatever the head's output layer (a sigmoid unit becomes two columns)."""
    raw = model.predict(features, batch_size=batch_size, verbose=0)
    if raw.shape[1] == 1:
        positive = raw[:, 0]
        return np.stack([1.0 - positive, positive], axis=1)
    return raw
