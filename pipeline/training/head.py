"""The Keras heads trained on cached features.

`paperspace`: the tutorial's dense/batch-norm stack, on raw features, trained with Adam.
`mlp`: what a careful practitioner fits on a few thousand frozen feature vectors: the features
standardised inside the model (mean and variance learned from the training split, so the exported
model needs no separate scaler), dropout on the inputs and after the hidden layer, and AdamW's
decoupled weight decay (see `compile_head`).

`--ensemble N` trains N copies of a head from different initial weights (and dropout and data order) and
averages their probabilities (`average_of`): the cheapest way to take the noise of one training run out of
the result, measured in docs/quality.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tf_keras as keras

from pipeline.data.targets import MULTI_LABEL, REGRESSION, SINGLE_LABEL


def build_head(
    input_dim: int,
    num_classes: int,
    *,
    hidden_units: tuple[int, ...] = (50, 30, 30),
    dropout_rate: float = 0.0,
    seed: int = 42,
    name: str = "head",
    kind: str = SINGLE_LABEL,
) -> keras.Model:
    """Dense(50, relu) -> BatchNorm -> Dense(30, relu) -> Dense(30, relu) -> sigmoid or softmax.

    Two classes get one sigmoid unit (binary cross-entropy); more get a K-way softmax; several labels per text
    (`kind` multi-label, `num_classes` labels) one sigmoid unit each; a number (`kind` regression) one linear unit.
    He-normal
    initialisers suit the ReLU layers, Glorot the output; each layer gets its own seed so the whole
    head is reproducible from one number.
    """
    if num_classes < 2 and kind != REGRESSION:
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
    return keras.Model(inputs, _outputs(hidden, num_classes, seed=seed + len(hidden_units), kind=kind),
                       name=name)


def build_mlp_head(
    train_features: np.ndarray,
    num_classes: int,
    *,
    hidden_units: tuple[int, ...] = (256,),
    dropout_rate: float = 0.5,
    input_dropout_rate: float = 0.2,
    seed: int = 42,
    name: str = "head",
    statistics: tuple[np.ndarray, np.ndarray] | None = None,
    kind: str = SINGLE_LABEL,
) -> keras.Model:
    """Standardise (learned from `train_features`) -> Dropout -> [Dense(relu) -> Dropout] per width -> output.

    `statistics`: `standardisation_statistics(train_features)` when the caller has them already (heads built
    on the same rows share one count)."""
    if num_classes < 2 and kind != REGRESSION:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    inputs = keras.Input(shape=(train_features.shape[1],), name="features")
    standardise = keras.layers.Normalization(name="standardise")
    standardise.build((None, train_features.shape[1]))
    mean, variance = standardisation_statistics(train_features) if statistics is None else statistics
    standardise.set_weights([mean, variance, np.int64(len(train_features))])
    standardise.finalize_state()
    hidden = keras.layers.Dropout(input_dropout_rate, seed=seed + 200, name="input_dropout")(standardise(inputs))
    for index, units in enumerate(hidden_units):
        hidden = keras.layers.Dense(units, activation="relu", kernel_initializer=keras.initializers.HeNormal(seed=seed + index),
                                    name=f"dense_{index}")(hidden)
        hidden = keras.layers.Dropout(dropout_rate, seed=seed + 100 + index, name=f"dropout_{index}")(hidden)
    return keras.Model(inputs, _outputs(hidden, num_classes, seed=seed + len(hidden_units), kind=kind),
                       name=name)


STATISTICS_CHUNK_ROWS = 512


def standardisation_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and population variance, float32, as Keras's `adapt` learns them and exactly as
    `np.mean` / `np.var(..., dtype=np.float64)` count them (the same float64 sums, row after row, tested).

    Neither `adapt` (a TensorFlow pass per 4,096 rows) nor `np.var` (a float64 copy of every row, slow to touch on a
    VM): the squared deviations go through one 512-row buffer (measured:
    docs/benchmarks-history.md#the-statistics-counted-once-each-step-gathering-its-own-rows-2026-12-04)."""
    rows, columns = features.shape
    mean = np.add.reduce(features, axis=0, dtype=np.float64) / rows
    buffer = np.empty((min(STATISTICS_CHUNK_ROWS, rows) + 1, columns), dtype=np.float64)
    squares_sum = np.zeros(columns, dtype=np.float64)
    for start in range(0, rows, STATISTICS_CHUNK_ROWS):
        chunk = features[start:start + STATISTICS_CHUNK_ROWS]
        squares = buffer[1:len(chunk) + 1]
        np.subtract(chunk, mean, out=squares)
        np.multiply(squares, squares, out=squares)
        # The running sum as the first row: one reduction adds it and then the chunk's rows in order, the order
        # of a reduction over all rows, so the sums are NumPy's own to the last bit.
        buffer[0] = squares_sum
        squares_sum = np.add.reduce(buffer[:len(chunk) + 1], axis=0)
    return mean.astype(np.float32), (squares_sum / rows).astype(np.float32)


def average_of(members: list[keras.Model]) -> keras.Model:
    """One model whose probabilities are the mean of the members' (each member a trained head of the same
    inputs and outputs); a single member is returned as it is, so `--ensemble 1` saves today's head."""
    if len(members) == 1:
        return members[0]
    inputs = keras.Input(shape=members[0].input_shape[1:], name="features")
    probabilities = keras.layers.Average(name="ensemble_average")([member(inputs) for member in members])
    return keras.Model(inputs, probabilities, name="head")


def member_seed(seed: int, member: int) -> int:
    """The seed of an ensemble's member (0-based): member 0 is the run's seed, so it is the single head."""
    return seed + 1000 * member


def build_output_head(input_dim: int, num_classes: int, *, hidden_units: tuple[int, ...] = (), seed: int = 42,
                      kind: str = SINGLE_LABEL) -> keras.Model:
    """The fine-tuned encoder's head: [Dense(relu)] per width -> output, nothing random inside (the dropout
    before it is the fine-tuning model's, so the saved head needs no custom layers)."""
    if num_classes < 2 and kind != REGRESSION:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    inputs = keras.Input(shape=(input_dim,), name="features")
    hidden = inputs
    for index, units in enumerate(hidden_units):
        hidden = keras.layers.Dense(units, activation="relu", kernel_initializer=keras.initializers.HeNormal(seed=seed + index),
                                    name=f"dense_{index}")(hidden)
    return keras.Model(inputs, _outputs(hidden, num_classes, seed=seed + len(hidden_units), kind=kind),
                       name="head")


def _outputs(hidden: Any, num_classes: int, *, seed: int, kind: str = SINGLE_LABEL) -> Any:  # Keras tensors
    """The output layer for the target's `kind`: one sigmoid unit for two classes (binary cross-entropy), else a
    K-way softmax; with several labels per text, one independent sigmoid unit per label; for a number, one linear
    unit (the standardised target)."""
    if kind == REGRESSION:
        units, activation = 1, "linear"
    elif kind == MULTI_LABEL:
        units, activation = num_classes, "sigmoid"
    else:
        units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    return keras.layers.Dense(units, activation=activation, kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                              name="probabilities")(hidden)


def compile_head(model: keras.Model, num_classes: int, *, learning_rate: float = 1e-3,
                 weight_decay: float = 0.0, optimizer: keras.optimizers.Optimizer | None = None,
                 kind: str = SINGLE_LABEL, label_weights: dict[int, tuple[float, float]] | None = None,
                 loss_name: str = "mse") -> keras.Model:
    """Adam (AdamW with decoupled weight decay when `weight_decay` > 0), or `optimizer` when given, with the
    matching loss; Keras AUROC/PR-AUC metrics for two classes (K > 2 and several labels use a callback).
    Several labels per text (`kind` multi-label): binary cross-entropy per label, each label's negatives and
    positives weighted by `label_weights` ({label: (negative weight, positive weight)}) when given. A number
    (`kind` regression): `loss_name` mse or huber on the standardised target (Huber's delta is one standard
    deviation)."""
    if kind == REGRESSION:
        loss: Any = keras.losses.Huber(delta=1.0) if loss_name == "huber" else keras.losses.MeanSquaredError()
        metrics: list[Any] = []
    elif kind == MULTI_LABEL:
        loss = keras.losses.BinaryCrossentropy() if label_weights is None else \
            LabelWeightedBinaryCrossentropy([label_weights[label][0] for label in range(num_classes)],
                                            [label_weights[label][1] for label in range(num_classes)])
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy")]
    elif num_classes == 2:
        loss = keras.losses.BinaryCrossentropy()
        metrics = [
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.AUC(curve="ROC", num_thresholds=1000, name="auroc"),
            keras.metrics.AUC(curve="PR", num_thresholds=1000, name="pr_auc"),
        ]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if optimizer is None:
        optimizer = (keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay) if weight_decay > 0
                     else keras.optimizers.Adam(learning_rate=learning_rate))
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model


@keras.saving.register_keras_serializable(package="pipeline")
class LabelWeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy of each label, averaged over the labels as Keras's own averages it, each cell weighted
    by its label's weight for its value: a label's positives by `positive_weights[label]`, its negatives by
    `negative_weights[label]`."""

    def __init__(self, negative_weights: list[float], positive_weights: list[float],
                 name: str = "label_weighted_binary_crossentropy", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.negative_weights = [float(weight) for weight in negative_weights]
        self.positive_weights = [float(weight) for weight in positive_weights]

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = keras.backend.cast(y_true, y_pred.dtype)
        cells = keras.backend.binary_crossentropy(y_true, y_pred)
        weights = y_true * self.positive_weights + (1.0 - y_true) * self.negative_weights
        return keras.backend.mean(cells * weights, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "negative_weights": self.negative_weights,
                "positive_weights": self.positive_weights}


def in_target_units(model: keras.Model, scale: tuple[float, float],
                    bounds: tuple[float, float] | None) -> keras.Model:
    """A head trained on the standardised target, giving the target in its own units: times the standard deviation
    plus the mean, then kept within `bounds` (lowest, highest) unless None. Built-in layers only (clipping as a
    bounded ReLU between two shifts), so the saved head and the export need nothing of this package."""
    mean, deviation = scale
    inputs = keras.Input(shape=model.input_shape[1:], name="features")
    if bounds is None:
        outputs = keras.layers.Rescaling(deviation, offset=mean, name="target_units")(model(inputs))
    else:
        low, high = bounds
        shifted = keras.layers.Rescaling(deviation, offset=mean - low, name="target_units_above_lowest")(model(inputs))
        clipped = keras.layers.ReLU(max_value=high - low, name="within_training_range")(shifted)
        outputs = keras.layers.Rescaling(1.0, offset=low, name="target_units")(clipped)
    return keras.Model(inputs, outputs, name="head")


def predict_probabilities(model: keras.Model, features: np.ndarray, batch_size: int = 1024,
                          kind: str = SINGLE_LABEL) -> np.ndarray:
    """[N, K] class probabilities whatever the head's output layer (one sigmoid unit becomes two columns); [N, L]
    independent probabilities of a head with several labels per text; [N, 1] numbers of a regression head."""
    raw = model.predict(features, batch_size=batch_size, verbose=0)
    if raw.shape[1] == 1 and kind != REGRESSION:
        positive = raw[:, 0]
        return np.stack([1.0 - positive, positive], axis=1)
    return raw
