"""Why the regression head loses to five classes' expected value on star ratings: heads compared on VALIDATION RMSE
over cached features (docs/quality.md, "Numbers as targets").

Variants of the linear head (MSE, Huber, less dropout, a lower learning rate, less weight decay) against a softmax
over the star levels trained with cross-entropy plus lambda times the squared error of its expected value (lambda 0:
the five-class classifier's expected value), and the mean of the MSE head's and the softmax's predictions. Reads
the train and test tables benchmarks/regression_quality.py writes (its --output folder, splits/seed-S/), whose
features are cached there.

    .venv/bin/python benchmarks/regression_heads.py --output /tmp/regression-quality --seed 0
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

LAMBDAS = (0.0, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="benchmarks/regression_quality.py's --output folder")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()

    import tensorflow as tf
    import tf_keras as keras

    from pipeline.base.config import RunConfig
    from pipeline.data.targets import REGRESSION, SINGLE_LABEL
    from pipeline.runs.prepare import extract, prepare, split_features
    from pipeline.runs.run import _build_head, training_targets
    from pipeline.training.head import compile_head, in_target_units, predict_probabilities
    from pipeline.training.train import train_ensemble

    split = arguments.output / "splits" / f"seed-{arguments.seed}"
    config = RunConfig(data=str(split / "train.csv"), test_data=str(split / "test.csv"), text_column="Text",
                       label_column="Score", regression=True, cache_dir=str(arguments.output / "cache"),
                       seed=arguments.seed)
    prepared = prepare(config)
    parts = split_features(prepared, extract(prepared, show_progress=False).features)
    target, head, logs = prepared.target, prepared.head, arguments.output / "heads" / f"seed-{arguments.seed}"
    train_targets, val_targets, deviation = training_targets(prepared)
    true_val = prepared.splits.validation.labels
    levels = np.asarray(target.levels, np.float32)

    def trained(name: str, kind: str, labels: np.ndarray, val_labels: np.ndarray, outputs: int, settings: Any,
                loss: Any = None, loss_name: str = "mse", scale: float | None = None) -> Any:
        def build(seed: int, member: str) -> Any:
            model = _build_head(settings, parts["train"], outputs, seed=seed, name=member, kind=kind)
            compile_head(model, outputs, learning_rate=settings.learning_rate, weight_decay=settings.weight_decay,
                         kind=kind, loss_name=loss_name)
            if loss is not None:
                model.compile(optimizer=model.optimizer, loss=loss)
            return model

        model, _ = train_ensemble(build, members=settings.ensemble, seed=arguments.seed, train_features=parts["train"],
                                  train_labels=labels, val_features=parts["validation"], val_labels=val_labels,
                                  num_classes=outputs, best_weights_path=logs / name / "best.weights.h5",
                                  tensorboard_dir=logs / name, csv_log_path=logs / name / "training_log.csv",
                                  epochs=settings.epochs, batch_size=settings.batch_size, target_scale=scale)
        return model

    def rmse(predictions: np.ndarray) -> float:
        return float(np.sqrt(np.mean((predictions - true_val) ** 2)))

    results: dict[str, float] = {}
    predictions: dict[str, np.ndarray] = {}
    linear = {"mse (the default)": (head, "mse"), "huber": (head, "huber"),
              "dropout 0.3": (replace(head, dropout_rate=0.3), "mse"),
              "learning rate 3e-4, 80 epochs": (replace(head, learning_rate=3e-4, epochs=80), "mse"),
              "weight decay 0.01": (replace(head, weight_decay=0.01), "mse")}
    for name, (settings, loss_name) in linear.items():
        model = trained(name, REGRESSION, train_targets, val_targets, 1, settings, loss_name=loss_name, scale=deviation)
        units = in_target_units(model, target.scale or (0.0, 1.0), target.bounds)
        predictions[f"linear: {name}"] = predict_probabilities(units, parts["validation"], kind=REGRESSION)[:, 0]
        results[f"linear: {name}"] = rmse(predictions[f"linear: {name}"])
        print(f"linear: {name}: validation RMSE {results[f'linear: {name}']:.4f}", flush=True)
    level_ids = np.searchsorted(levels, prepared.splits.train.labels).astype(np.int64)
    val_level_ids = np.searchsorted(levels, true_val).astype(np.int64)
    levels_tensor, spread = tf.constant(levels), float((target.scale or (0.0, 1.0))[1])
    for weight in LAMBDAS:
        def loss(y_true: Any, probabilities: Any, weight: float = weight) -> Any:
            ids = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
            expected = tf.reduce_sum(probabilities * levels_tensor, -1)
            return keras.losses.sparse_categorical_crossentropy(ids, probabilities) + \
                weight * tf.square((expected - tf.gather(levels_tensor, ids)) / spread)

        name = f"softmax over the levels, lambda {weight:g}"
        model = trained(name, SINGLE_LABEL, level_ids, val_level_ids, len(levels), head, loss=loss)
        predictions[name] = predict_probabilities(model, parts["validation"]) @ levels
        results[name] = rmse(predictions[name])
        print(f"{name}: validation RMSE {results[name]:.4f}", flush=True)
    # The two kinds of head err differently: their mean may be better than either.
    name = "mean of the MSE linear head and the softmax's expected value (lambda 0)"
    results[name] = rmse((predictions["linear: mse (the default)"] +
                          predictions[f"softmax over the levels, lambda {LAMBDAS[0]:g}"]) / 2)
    print(f"{name}: validation RMSE {results[name]:.4f}", flush=True)
    (logs / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
