"""Fit the head on cached features: seeded, with AUROC tracking, best-checkpointing and TensorBoard logs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from pipeline.evaluation.metrics import macro_auroc, macro_pr_auc
from pipeline.training.head import average_of, member_seed

log = logging.getLogger(__name__)


def make_deterministic(seed: int) -> None:
    """Same data, config and seed -> same weights: seed Python, NumPy and TF, and use deterministic kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class MulticlassAurocCallback(keras.callbacks.Callback):
    """One-vs-rest macro AUROC and PR-AUC at each epoch's end, put into `logs` like Keras's own metrics.

    It must come before the checkpoint, TensorBoard and CSV callbacks so they see the values.
    """

    def __init__(self, train_features: np.ndarray, train_labels: np.ndarray, val_features: np.ndarray,
                 val_labels: np.ndarray, num_classes: int, max_rows: int = 20_000):
        super().__init__()
        self.num_classes = num_classes
        # Scoring every training row each epoch would cost more than the epoch; a fixed sample is enough.
        rows = np.random.default_rng(0).permutation(len(train_labels))[:max_rows]
        self.sets = {"": (train_features[rows], train_labels[rows]), "val_": (val_features, val_labels)}

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs if logs is not None else {}
        for prefix, (features, labels) in self.sets.items():
            probabilities = self.model.predict(features, batch_size=4096, verbose=0)
            logs[f"{prefix}auroc"] = macro_auroc(labels, probabilities, self.num_classes)
            logs[f"{prefix}pr_auc"] = macro_pr_auc(labels, probabilities, self.num_classes)


def train_head(
    model: keras.Model,
    *,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    val_features: np.ndarray,
    val_labels: np.ndarray,
    num_classes: int,
    best_weights_path: Path | None,
    tensorboard_dir: Path,
    csv_log_path: Path,
    epochs: int,
    batch_size: int,
    class_weight: dict[int, float] | None = None,
    early_stopping_patience: int = 4,
    histograms: bool = True,
    verbose: int = 2,
) -> keras.callbacks.History:
    """Fits `model` in place and leaves it holding the weights of the best validation-AUROC epoch.

    The best epoch's weights go to `best_weights_path` (or are kept in memory when it is None, which a
    sweep's many short trials prefer), the per-epoch scalars and weight histograms to `tensorboard_dir`,
    one CSV row per epoch to `csv_log_path`.
    """
    callbacks: list[keras.callbacks.Callback] = []
    if num_classes > 2:
        callbacks.append(MulticlassAurocCallback(train_features, train_labels, val_features, val_labels, num_classes))
    keep_best = KeepBestWeights()
    if best_weights_path is not None:
        best_weights_path.parent.mkdir(parents=True, exist_ok=True)
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(best_weights_path), monitor="val_auroc", mode="max", save_best_only=True, save_weights_only=True
        ))
    else:
        callbacks.append(keep_best)
    callbacks += [
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-5, verbose=0),
        keras.callbacks.EarlyStopping(
            monitor="val_auroc", mode="max", patience=early_stopping_patience, restore_best_weights=True
        ),
        keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir), histogram_freq=1 if histograms else 0),
        keras.callbacks.CSVLogger(str(csv_log_path)),
    ]
    history = model.fit(
        train_features,
        train_labels,
        validation_data=(val_features, val_labels),
        epochs=epochs,
        batch_size=batch_size,
        class_weight=class_weight,
        shuffle=True,
        callbacks=callbacks,
        verbose=verbose,
    )
    # EarlyStopping restores only when it stops early; the checkpoint holds the best epoch in every case.
    if best_weights_path is not None and best_weights_path.is_file():
        model.load_weights(str(best_weights_path))
    elif keep_best.best_weights is not None:
        model.set_weights(keep_best.best_weights)
    return history


def train_ensemble(
    build_member: Callable[[int, str], keras.Model],
    *,
    members: int,
    seed: int,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    val_features: np.ndarray,
    val_labels: np.ndarray,
    num_classes: int,
    best_weights_path: Path,
    tensorboard_dir: Path,
    csv_log_path: Path,
    epochs: int,
    batch_size: int,
    class_weight: dict[int, float] | None = None,
    verbose: int = 2,
) -> tuple[keras.Model, list[keras.callbacks.History]]:
    """Trains `members` heads one after the other; returns the model averaging them, and each one's history.

    `build_member(seed, name)` gives a compiled, untrained head. Member 1 has the run's seed and writes the
    usual files, so `--ensemble 1` is exactly the single head; member N > 1 has its own seed (initial weights,
    dropout masks, data order), TensorBoard folder `member-N/` and weights and CSV files named `...-member-N`.
    """
    models, histories = [], []
    for member in range(members):
        suffix = "" if member == 0 else f"-member-{member + 1}"
        if members > 1:
            log.info("training head %d of %d", member + 1, members)
        make_deterministic(member_seed(seed, member))
        model = build_member(member_seed(seed, member), "head" if members == 1 else f"member_{member + 1}")
        histories.append(train_head(
            model, train_features=train_features, train_labels=train_labels, val_features=val_features,
            val_labels=val_labels, num_classes=num_classes,
            best_weights_path=best_weights_path.with_name(best_weights_path.name.replace(".", f"{suffix}.", 1)),
            tensorboard_dir=tensorboard_dir / f"member-{member + 1}" if member else tensorboard_dir,
            csv_log_path=csv_log_path.with_name(f"{csv_log_path.stem}{suffix}{csv_log_path.suffix}"),
            epochs=epochs, batch_size=batch_size, class_weight=class_weight, verbose=verbose,
        ))
        models.append(model)
    return average_of(models), histories


class KeepBestWeights(keras.callbacks.Callback):
    """The weights of the best validation-AUROC epoch so far, in memory (no file written per improvement)."""

    def __init__(self) -> None:
        super().__init__()
        self.best_auroc = -np.inf
        self.best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        value = (logs or {}).get("val_auroc")
        if value is not None and np.isfinite(value) and value > self.best_auroc:
            self.best_auroc = float(value)
            self.best_weights = self.model.get_weights()
