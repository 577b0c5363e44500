"""Several heads trained in step: one TensorFlow graph call runs an epoch of all of them, step by step.

A sweep's trials are heads of one seed on the same rows: every epoch they take the rows in the same order,
and their first layer, the input dropout, draws the same mask at the same step (its seed is the head's seed,
the layer's place and the step). Trained one by one, each trial would gather its batch and draw that mask
itself, a large share of a narrow head's epoch (docs/benchmarks.md#training-the-heads). Trained in step, each
step gathers the batch once, applies the shared leading dropout once, then takes each head's own step
(`EpochRunner.train_step`: its layers, loss and update). What each head computes is what it computes trained
alone, to the last bit (tested); a head that stops early is skipped for the rest of the epochs of the others.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from pipeline.training.train import EpochRunner, HeadTraining, TrainingRows, dropout, dropout_seed, is_plain_dropout


class EpochRunnerInStep:
    """One epoch of several compiled heads in one graph call: the rows in the order given, `batch_size` at a time,
    gathered once a step and passed once through the leading Dropout layers every head's chain has alike (same
    rate, same place); then each head still training takes its own step. Every head must be fed the same rows
    (the same standardisation, or none) and have taken as many steps as the others still training."""

    def __init__(self, models: list[keras.Model], features: np.ndarray, labels: np.ndarray,
                 sample_weights: np.ndarray, batch_size: int, seed: int = 0, rows: TrainingRows | None = None):
        rows = rows or TrainingRows(features)
        self.runners = [EpochRunner(model, features, labels, sample_weights, batch_size, seed=seed, rows=rows)
                        for model in models]
        first = self.runners[0]
        if any(runner.features is not first.features for runner in self.runners):
            raise ValueError("heads trained in step must be fed the same rows: one standardisation for all, or none")
        self.batch_size, self.seed = batch_size, seed
        self.features, self.labels, self.sample_weights = first.features, first.labels, first.sample_weights
        self.shared_rates = shared_leading_dropout([runner.chain for runner in self.runners])
        self.output_widths = [int(model.outputs[0].shape[-1]) for model in models]
        self._run = tf.function(self._epoch, reduce_retracing=True, autograph=False)

    def run(self, order: np.ndarray, training: list[bool]) -> list[tuple[float, np.ndarray] | None]:
        """Each head's (mean loss, outputs of the rows in `order`) for those whose `training` is True, else None."""
        losses, outputs = self._run(*self._arguments(order, training))
        return [(float(loss), output.numpy()) if on else None for loss, output, on in zip(losses, outputs, training)]

    def trace(self) -> None:
        """Builds the epoch's graph without running it (what the first `run` would do first)."""
        self._run.get_concrete_function(*self._arguments(np.arange(len(self.labels)), [True] * len(self.runners)))

    def _arguments(self, order: np.ndarray, training: list[bool]) -> tuple[tf.Tensor, ...]:
        steps_taken = {int(runner.model.optimizer.iterations.numpy())
                       for runner, on in zip(self.runners, training) if on}
        if len(steps_taken) > 1:
            raise ValueError(f"heads trained in step must have taken as many steps as each other, not {steps_taken}")
        first_step = steps_taken.pop() if steps_taken else 0
        return (self.features, self.labels, self.sample_weights, tf.convert_to_tensor(order, dtype=tf.int32),
                tf.constant(training, tf.bool), tf.constant(first_step, tf.int64))

    def _epoch(self, features: tf.Tensor, labels: tf.Tensor, sample_weights: tf.Tensor, order: tf.Tensor,
               training: tf.Tensor, first_step: tf.Tensor) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        rows = tf.size(order)
        steps = (rows + self.batch_size - 1) // self.batch_size
        labels, sample_weights = (tf.gather(tensor, order) for tensor in (labels, sample_weights))
        shared = len(self.shared_rates)

        def step(index: tf.Tensor, loss_sums: list[tf.Tensor], outputs: list[tf.TensorArray]) -> tuple[Any, ...]:
            batch = slice(index * self.batch_size, (index + 1) * self.batch_size)
            x, y, weights = tf.gather(features, order[batch]), labels[batch], sample_weights[batch]
            # The step's number is each head's optimizer.iterations, as each head alone seeds its masks with.
            for position, rate in enumerate(self.shared_rates):
                x = dropout(x, rate, dropout_seed(self.seed, position, first_step + tf.cast(index, tf.int64)))
            batch_rows = tf.shape(x)[0]
            next_sums, next_outputs = [], []
            for head, (runner, width) in enumerate(zip(self.runners, self.output_widths)):
                loss, predicted = tf.cond(
                    training[head], functools.partial(runner.train_step, x, y, weights, shared),
                    functools.partial(_nothing, batch_rows, width))
                next_sums.append(loss_sums[head] + loss * tf.cast(batch_rows, tf.float32))
                next_outputs.append(outputs[head].write(index, predicted))
            return index + 1, next_sums, next_outputs

        heads = len(self.runners)
        _, loss_sums, outputs = tf.while_loop(
            lambda index, *_: index < steps, step,
            (tf.constant(0), [tf.constant(0.0)] * heads,
             [tf.TensorArray(tf.float32, size=steps, infer_shape=False) for _ in range(heads)]))
        return [loss_sum / tf.cast(rows, tf.float32) for loss_sum in loss_sums], [output.concat() for output in outputs]


def _nothing(rows: tf.Tensor, width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """A stopped head's step: no update, a zero loss and zero outputs (never read)."""
    return tf.constant(0.0), tf.zeros(tf.stack([rows, width]))


def shared_leading_dropout(chains: list[list[Any] | None]) -> list[float]:
    """The rates of the plain Dropout layers at the head of every chain alike (same rate at the same place)."""
    if any(chain is None for chain in chains):
        return []
    rates: list[float] = []
    for layers in zip(*chains):
        if not all(is_plain_dropout(layer) for layer in layers) or len({layer.rate for layer in layers}) != 1:
            break
        rates.append(float(layers[0].rate))
    return rates


class HeadsInStep:
    """Compiled heads fitted in step, as `train_head` fits each (same seed: the same order of rows and the same
    masks), each left holding the weights of its best validation-AUROC epoch, its best weights kept in memory
    only and no weight histograms (a sweep's trials). Setting `stop_training` on every model from another thread
    stops them after the epoch."""

    def __init__(self, models: list[keras.Model], *, train_features: np.ndarray, train_labels: np.ndarray,
                 val_features: np.ndarray, val_labels: np.ndarray, num_classes: int, tensorboard_dirs: list[Path],
                 csv_log_paths: list[Path], epochs: int, batch_size: int, class_weight: dict[int, float] | None = None,
                 early_stopping_patience: int = 4, seed: int = 0, rows: TrainingRows | None = None,
                 target_scale: float | None = None):
        self.started = time.perf_counter()
        self.models, self.train_labels, self.epochs, self.seed = models, train_labels, epochs, seed
        val_rows = TrainingRows(val_features)
        self.trainings = [
            HeadTraining(model, train_labels=train_labels, val_features=val_features, val_labels=val_labels,
                         num_classes=num_classes, best_weights_path=None, tensorboard_dir=tensorboard_dir,
                         csv_log_path=csv_log_path, epochs=epochs, batch_size=batch_size, class_weight=class_weight,
                         early_stopping_patience=early_stopping_patience, histograms=False, verbose=0, progress=None,
                         val_rows=val_rows, target_scale=target_scale)
            for model, tensorboard_dir, csv_log_path in zip(models, tensorboard_dirs, csv_log_paths)]
        self.runner = EpochRunnerInStep(models, train_features, train_labels, self.trainings[0].sample_weights,
                                        batch_size, seed=seed, rows=rows)

    def build_graph(self) -> None:
        """Builds the epoch's graph now rather than in the first epoch: building holds Python's interpreter lock for
        seconds, so callers in threads take turns at it."""
        self.runner.trace()

    def train(self) -> list[tuple[keras.callbacks.History, float]]:
        """Each head's (history, seconds from this object's making to the end of the head's last epoch)."""
        order_generator = np.random.default_rng(self.seed)
        for training in self.trainings:
            training.begin()
        going_on, seconds = [True] * len(self.models), [0.0] * len(self.models)
        for epoch in range(self.epochs):
            if not any(going_on):
                break
            for training, on in zip(self.trainings, going_on):
                if on:
                    training.begin_epoch(epoch)
            order = order_generator.permutation(len(self.train_labels))
            for head, result in enumerate(self.runner.run(order, going_on)):
                if result is not None:
                    going_on[head] = self.trainings[head].end_epoch(epoch, order, *result)
                    seconds[head] = time.perf_counter() - self.started
        return [(training.finish(), head_seconds) for training, head_seconds in zip(self.trainings, seconds)]
