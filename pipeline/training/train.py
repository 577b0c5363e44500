"""Fit the head on cached features: seeded, with AUROC tracking, best-checkpointing and TensorBoard logs.

Why not `model.fit`: on a few thousand cached rows the head's own arithmetic is small, so Keras's per-step
machinery and its weight histograms (TensorFlow's histogram op expands every weight into a [values, 30] float64
matrix) would cost more than the products. Here one TensorFlow graph runs a whole epoch of steps
(`EpochRunner`); the metrics are computed once per epoch, exactly, from the epoch's predictions; histograms are
counted by NumPy (`WeightHistograms`); and Keras's own callbacks (early stopping,
ReduceLROnPlateau, TensorBoard's scalars, CSV log, the `--verbose` epoch lines) are driven epoch by epoch
as `fit` drives them. XLA is not used: with this loop's stateless dropout it does the same work, only slower
(measured: benchmarks/head_epoch.py --xla, docs/benchmarks.md#training-the-heads).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
import tensorflow as tf
import tf_keras as keras

from pipeline.evaluation.metrics import ranking_metrics
from pipeline.training.head import average_of, member_seed
from pipeline.training.progress import HeadProgress

log = logging.getLogger(__name__)
T = TypeVar("T")

HISTOGRAM_BUCKETS = 30  # as many as TensorFlow's own histogram summary


def make_deterministic(seed: int) -> None:
    """Same data, config and seed -> same weights: seed Python, NumPy and TF, and use deterministic kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class EpochRunner:
    """One epoch of minibatch steps in one TensorFlow graph call, for a compiled Keras model.

    The rows are taken in the order given (a permutation of the training rows), `batch_size` at a time;
    each step is what Keras's `train_step` does (forward in training mode, the compiled loss with the sample
    weights and any regularisation losses, one optimizer update). Returns the mean loss over the rows and
    every row's training-mode output, in the order given, for the epoch's metrics.

    What it does once instead of at every step, for a head that is a chain of layers (every head here): a
    leading Normalization layer standardises all rows once (element-wise, so the very values it gives a
    batch), and each step gathers its batch's rows from them; the Dropout layers draw their
    masks from a counter-based generator seeded by (`seed`, the layer, the step): 16 random bits a value
    rather than a 32-bit float, as drawing the masks is an epoch's largest cost after the products (`dropout`).
    """

    def __init__(self, model: keras.Model, features: np.ndarray, labels: np.ndarray,
                 sample_weights: np.ndarray, batch_size: int, seed: int = 0, rows: TrainingRows | None = None):
        self.model, self.batch_size, self.seed = model, batch_size, seed
        self.standardise, self.chain = training_chain(model)
        self.features = (rows or TrainingRows(features)).as_given_to(self.standardise)
        self.labels = tf.convert_to_tensor(np.asarray(labels, dtype=np.float32))
        self.sample_weights = tf.convert_to_tensor(np.asarray(sample_weights, dtype=np.float32))
        variables = model.trainable_variables
        self.fused = FusedAdam(model.optimizer, variables) if FusedAdam.supports(model.optimizer) else None
        # Arguments, not captured constants: a captured 100 MB array is folded into the graph at every trace.
        # No autograph: the loop is an explicit while_loop, and rewriting the Python source of the epoch and of
        # everything it calls would take longer than tracing it.
        self._run = tf.function(self._epoch, reduce_retracing=True, autograph=False)

    def run(self, order: np.ndarray) -> tuple[float, np.ndarray]:
        loss, outputs = self._run(self.features, self.labels, self.sample_weights,
                                  tf.convert_to_tensor(order, dtype=tf.int32))
        return float(loss), outputs.numpy()

    def _epoch(self, features: tf.Tensor, labels: tf.Tensor, sample_weights: tf.Tensor,
               order: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        rows = tf.size(order)
        steps = (rows + self.batch_size - 1) // self.batch_size
        labels, sample_weights = (tf.gather(tensor, order) for tensor in (labels, sample_weights))

        def step(index: tf.Tensor, loss_sum: tf.Tensor, outputs: tf.TensorArray) -> tuple[Any, ...]:
            batch = slice(index * self.batch_size, (index + 1) * self.batch_size)
            # The batch's rows gathered at each step, not the epoch's at once: those would be a fresh buffer every
            # epoch (94 MB for the demo), and touching new memory costs more than the gather itself.
            x, y, weights = tf.gather(features, order[batch]), labels[batch], sample_weights[batch]
            loss, predicted = self.train_step(x, y, weights)
            return index + 1, loss_sum + loss * tf.cast(tf.shape(x)[0], tf.float32), outputs.write(index, predicted)

        _, loss_sum, outputs = tf.while_loop(
            lambda index, *_: index < steps, step,
            (tf.constant(0), tf.constant(0.0), tf.TensorArray(tf.float32, size=steps, infer_shape=False)))
        return loss_sum / tf.cast(rows, tf.float32), outputs.concat()

    def train_step(self, x: tf.Tensor, y: tf.Tensor, weights: tf.Tensor, start: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
        """One of Keras's training steps on a batch of rows already standardised and passed through the chain's
        first `start` layers (heads trained in step share those): (the batch's mean loss, its outputs)."""
        with tf.GradientTape() as tape:
            predicted = self._forward(x, self.model.optimizer.iterations, start)
            loss = self.model.compute_loss(x, y, predicted, weights)
        if self.fused is not None:
            self.fused.apply(tape.gradient(loss, self.fused.variables))
        else:
            self.model.optimizer.minimize(loss, self.model.trainable_variables, tape=tape)
        return loss, predicted

    def _forward(self, x: tf.Tensor, step: tf.Variable, start: int = 0) -> tf.Tensor:
        """The model in training mode on already-standardised rows: its chain layer by layer from `start`, plain
        Dropout layers through `dropout`; a model that is not a chain is called whole."""
        if self.chain is None:
            return self.model(x, training=True)
        for position, layer in enumerate(self.chain[start:], start):
            if is_plain_dropout(layer):
                x = dropout(x, layer.rate, dropout_seed(self.seed, position, step))
            else:
                x = layer(x, training=True)
        return x


class TrainingRows:
    """The training (or validation) rows as a tensor, and as a standardisation layer gives them, each made once
    and shared: an ensemble's heads, trained side by side in threads, all standardise the same rows with the same
    statistics, so they share one copy (for 100,000 rows of 2,304 floats, 0.9 GB a copy)."""

    def __init__(self, features: np.ndarray):
        self._features = features
        self._lock = threading.Lock()
        self._made: dict[bytes, tf.Tensor] = {}

    def as_given_to(self, standardise: Any) -> tf.Tensor:
        """The rows as `standardise` (a Normalization layer) outputs them, or as they are for None."""
        key = b"" if standardise is None else b"".join(
            np.asarray(value, dtype=np.float32).tobytes() for value in (standardise.mean, standardise.variance))
        with self._lock:
            if key not in self._made:
                rows = self._made.get(b"")
                if rows is None:
                    rows = self._made[b""] = tf.convert_to_tensor(np.asarray(self._features, dtype=np.float32))
                self._made[key] = rows if standardise is None else standardise(rows)
            return self._made[key]


def training_chain(model: keras.Model) -> tuple[Any, list[Any] | None]:
    """(the leading Normalization layer or None, the layers after it) when `model` is a chain, one layer
    feeding the next from its single input to its single output; (None, None) for any other model."""
    layers = model.layers
    if not layers or not isinstance(layers[0], keras.layers.InputLayer) or len(model.inputs) != 1 \
            or len(model.outputs) != 1 or model.outputs[0] is not layers[-1].output:
        return None, None
    try:
        if any(layer.input is not previous.output for previous, layer in zip(layers, layers[1:])):
            return None, None
    except AttributeError:  # a layer called more than once has no single input
        return None, None
    chain = layers[1:]
    if chain and type(chain[0]) is keras.layers.Normalization:
        return chain[0], chain[1:]
    return None, chain


def is_plain_dropout(layer: Any) -> bool:
    return type(layer) is keras.layers.Dropout and layer.noise_shape is None and layer.rate > 0


def dropout_seed(head_seed: int, position: int, step: tf.Tensor) -> tf.Tensor:
    """The counter-based generator's seed for the Dropout layer at `position` of a head's chain at a training
    step: each head, layer and step its own mask, the same one in every run."""
    return tf.stack([tf.cast(head_seed * 1024 + position, tf.int64), tf.cast(step, tf.int64)])


DROPOUT_BITS = 16  # random bits a value: the rate is met to 1/65,536, twice the values per random number drawn


def dropout(x: tf.Tensor, rate: float, seed: tf.Tensor) -> tf.Tensor:
    """Inverted dropout as Keras's layer does it (each value zeroed with probability `rate`, the others scaled
    by 1 / (1 - rate)), its mask drawn from 16 of a counter-based generator's bits per value: the same seed
    (shape [2]) gives the same mask, on any machine, in any order of calls."""
    rows, columns = tf.shape(x)[0], tf.shape(x)[1]
    pairs = (columns + 1) // 2
    words = tf.random.stateless_uniform(tf.stack([rows, pairs]), seed=seed, minval=None, maxval=None, dtype=tf.int32)
    halves = tf.reshape(tf.bitcast(words, tf.int16), tf.stack([rows, 2 * pairs]))[:, :columns]
    # A uniform int16 is below the threshold with probability threshold_count / 2**16.
    threshold = round(rate * 2 ** DROPOUT_BITS) - 2 ** (DROPOUT_BITS - 1)
    return tf.where(halves >= threshold, x * (1.0 / (1.0 - rate)), tf.zeros_like(x))


class FusedAdam:
    """Keras's Adam and AdamW update, the same formula, in one TensorFlow kernel per weight (ResourceApplyAdam).

    Keras updates each weight with about ten separate element-wise operations (moments, bias correction,
    decay), each a pass over the weight, a large share of an epoch for the default head's 2304 x 256 kernel at
    batch 64 (docs/benchmarks.md#training-the-heads). Here: AdamW's decoupled decay (w -= w * weight_decay *
    learning_rate, before the step, as Keras does it), then one fused kernel. The learning rate is read from the
    Keras optimizer at every step, so ReduceLROnPlateau still steers it, and the optimizer's step counter still
    counts. Optimizers with options this does not reproduce (amsgrad, clipping, EMA, weights excluded from decay)
    keep Keras's update.
    """

    def __init__(self, optimizer: keras.optimizers.Optimizer, variables: list[tf.Variable]):
        self.optimizer, self.variables = optimizer, variables
        self.moments = [tf.Variable(tf.zeros_like(variable), trainable=False) for variable in variables]
        self.velocities = [tf.Variable(tf.zeros_like(variable), trainable=False) for variable in variables]

    @staticmethod
    def supports(optimizer: Any) -> bool:
        return (type(optimizer) in (keras.optimizers.Adam, keras.optimizers.AdamW) and not optimizer.amsgrad
                and not getattr(optimizer, "adaptive_epsilon", False) and not optimizer.use_ema
                and optimizer.clipnorm is None and optimizer.clipvalue is None and optimizer.global_clipnorm is None
                and not getattr(optimizer, "_exclude_from_weight_decay", None)
                and not getattr(optimizer, "_exclude_from_weight_decay_names", None))

    def apply(self, gradients: list[tf.Tensor]) -> None:
        optimizer = self.optimizer
        learning_rate = tf.cast(optimizer.learning_rate, tf.float32)
        step = tf.cast(optimizer.iterations + 1, tf.float32)
        beta_1, beta_2 = tf.cast(optimizer.beta_1, tf.float32), tf.cast(optimizer.beta_2, tf.float32)
        if optimizer.weight_decay:
            # w * (1 - decay * lr): Keras's w - w * decay * lr in one pass, and a buffer the variable takes over
            # rather than an in-place subtraction (which copied the kernel, as the step still reads it).
            keep = 1.0 - tf.cast(optimizer.weight_decay, tf.float32) * learning_rate
            for variable in self.variables:
                variable.assign(variable * keep)
        for variable, moment, velocity, gradient in zip(self.variables, self.moments, self.velocities, gradients):
            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle, m=moment.handle, v=velocity.handle, beta1_power=tf.pow(beta_1, step),
                beta2_power=tf.pow(beta_2, step), lr=learning_rate, beta1=beta_1, beta2=beta_2,
                epsilon=tf.cast(optimizer.epsilon, tf.float32), grad=gradient, use_locking=False)
        optimizer.iterations.assign_add(1)


def epoch_metrics(labels: np.ndarray, outputs: np.ndarray, num_classes: int, loss: float,
                  target_scale: float | None = None) -> dict[str, float]:
    """loss, accuracy, auroc and pr_auc of one set of model outputs (a sigmoid column or K softmax columns); with
    several labels per text (an indicator matrix `labels`), the accuracy of each label's 0.5 cut (as Keras's
    BinaryAccuracy) and the labels' mean AUROC and PR-AUC. A number (`target_scale`, the standard deviation the
    standardised `labels` [N, 1] and `outputs` are in): loss, rmse and mae in the target's own units."""
    if target_scale is not None:
        errors = (outputs[:, 0] - labels[:, 0]) * target_scale
        return {"loss": loss, "rmse": float(np.sqrt(np.mean(errors ** 2))), "mae": float(np.mean(np.abs(errors)))}
    if labels.ndim == 2:
        predicted = (outputs > 0.5).astype(labels.dtype)
    else:
        predicted = (outputs[:, 0] > 0.5).astype(int) if outputs.shape[1] == 1 else outputs.argmax(axis=1)
    auroc, pr_auc = ranking_metrics(labels, outputs, num_classes)
    return {"loss": loss, "accuracy": float(np.mean(predicted == labels)), "auroc": auroc, "pr_auc": pr_auc}


def monitored(target_scale: float | None) -> tuple[str, str]:
    """(the validation metric a head's best epoch and early stopping follow, "max" or "min"): AUROC for classes and
    labels, RMSE for a number."""
    return ("val_rmse", "min") if target_scale is not None else ("val_auroc", "max")


class WeightHistograms(keras.callbacks.Callback):
    """Each weight's histogram at each epoch's end, under the tags Keras's TensorBoard callback gives them
    (`dense_0/kernel_0/histogram`), in `log_dir`; NumPy counts the buckets, far cheaper than TensorFlow's op."""

    def __init__(self, log_dir: Path):
        super().__init__()
        self.log_dir = log_dir
        self.writer: Any = None

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.writer = tf.summary.create_file_writer(str(self.log_dir))

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        from tensorboard.plugins.histogram import metadata

        with self.writer.as_default():
            for weight in self.model.weights:
                tag = weight.name.replace(":", "_") + "/histogram"
                tf.summary.write(tag, histogram_buckets(weight.numpy()), step=epoch,
                                 metadata=metadata.create_summary_metadata(display_name=tag, description=""))
        self.writer.flush()

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        self.writer.close()


def histogram_buckets(values: np.ndarray, buckets: int = HISTOGRAM_BUCKETS) -> np.ndarray:
    """[buckets, 3] float64 rows of (left edge, right edge, count): the tensor TensorBoard's histogram plugin reads."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return np.zeros((0, 3))
    low, high = float(values.min()), float(values.max())
    if low == high:  # one value: one bucket around it, as TensorFlow's summary writes it
        return np.array([[low - 0.5, high + 0.5, float(values.size)]])
    counts, edges = np.histogram(values, bins=buckets, range=(low, high))
    return np.column_stack([edges[:-1], edges[1:], counts.astype(np.float64)])


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
    seed: int = 0,
    verbose: int = 0,
    progress: HeadProgress | None = None,
    rows: TrainingRows | None = None,
    val_rows: TrainingRows | None = None,
    target_scale: float | None = None,
) -> keras.callbacks.History:
    """Fits the compiled `model` in place and leaves it holding the weights of the best validation-AUROC epoch.

    The best epoch's weights go to `best_weights_path` (or are kept in memory when it is None, which a
    sweep's many short trials prefer), the per-epoch scalars and weight histograms to `tensorboard_dir`,
    one CSV row per epoch to `csv_log_path`. `seed` orders the rows of every epoch; `verbose` 2 prints
    Keras's per-epoch lines; `progress` shows the epochs as they pass; `rows` and `val_rows`, the training and
    validation rows shared with heads trained beside this one. Setting `model.stop_training` from another thread
    stops it after its epoch.
    """
    training = HeadTraining(model, train_labels=train_labels, val_features=val_features, val_labels=val_labels,
                            num_classes=num_classes, best_weights_path=best_weights_path,
                            tensorboard_dir=tensorboard_dir, csv_log_path=csv_log_path, epochs=epochs,
                            batch_size=batch_size, class_weight=class_weight,
                            early_stopping_patience=early_stopping_patience, histograms=histograms, verbose=verbose,
                            progress=progress, val_rows=val_rows, target_scale=target_scale)
    runner = EpochRunner(model, train_features, train_labels, training.sample_weights, batch_size, seed=seed, rows=rows)
    order_generator = np.random.default_rng(seed)
    training.begin()
    for epoch in range(epochs):
        training.begin_epoch(epoch)
        order = order_generator.permutation(len(train_labels))
        loss, outputs = runner.run(order)
        if not training.end_epoch(epoch, order, loss, outputs):
            break
    return training.finish()


class HeadTraining:
    """One head's training around its epochs, as Keras's `fit` drives it: the callbacks (best weights kept in
    memory, ReduceLROnPlateau, early stopping, TensorBoard, the weight histograms, the CSV log, the progress
    bar), each epoch's metrics and the validation pass. `train_head` runs its epochs alone; heads trained in
    step (pipeline/training/in_step.py) run theirs together, each with its own HeadTraining."""

    def __init__(self, model: keras.Model, *, train_labels: np.ndarray, val_features: np.ndarray,
                 val_labels: np.ndarray, num_classes: int, best_weights_path: Path | None, tensorboard_dir: Path,
                 csv_log_path: Path, epochs: int, batch_size: int, class_weight: dict[int, float] | None,
                 early_stopping_patience: int, histograms: bool, verbose: int, progress: HeadProgress | None,
                 val_rows: TrainingRows | None = None, target_scale: float | None = None):
        self.model, self.train_labels, self.val_labels = model, train_labels, val_labels
        self.num_classes, self.best_weights_path, self.target_scale = num_classes, best_weights_path, target_scale
        monitor, mode = monitored(target_scale)
        # The best epoch's weights are kept in memory and written once at the end, not as an HDF5 file at every
        # improvement as Keras's ModelCheckpoint writes them. EarlyStopping need not keep its own
        # copy (restore_best_weights) either: the best weights are restored below whether it stopped early or not.
        self.keep_best = KeepBestWeights(monitor, mode)
        callbacks: list[keras.callbacks.Callback] = [progress] if progress is not None else []
        callbacks += [
            self.keep_best,
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-5, verbose=0),
            keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=early_stopping_patience),
            keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir), histogram_freq=0, write_graph=False),
            *([WeightHistograms(tensorboard_dir / "train")] if histograms else []),
            keras.callbacks.CSVLogger(str(csv_log_path)),
        ]
        # Several labels per text: the label weights are the compiled loss's (compile_head), each row weighs 1.
        self.sample_weights = np.ones(len(train_labels), dtype=np.float32) \
            if class_weight is None or train_labels.ndim == 2 else \
            np.array([class_weight[int(label)] for label in train_labels], dtype=np.float32)
        steps = -(-len(train_labels) // batch_size)
        self.callbacks = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                                      model=model, verbose=verbose, epochs=epochs, steps=steps)
        # The validation rows standardised once (for all the heads sharing `val_rows`), then the rest of the chain
        # at every epoch: the very values calling the whole model gives, without standardising them anew.
        self.val_rows = val_rows or TrainingRows(val_features)
        self.val_labels_tensor = tf.convert_to_tensor(val_labels, dtype=tf.float32)
        self.standardise, self.chain = training_chain(model)

    def begin(self) -> None:
        # Not resetting stop_training, as Keras's fit does: a stop asked for by another thread before this head's
        # first epoch (trained_side_by_side, when a head beside it fails) must not be lost. finish() resets it.
        self.callbacks.on_train_begin()

    def begin_epoch(self, epoch: int) -> None:
        self.callbacks.on_epoch_begin(epoch)

    def end_epoch(self, epoch: int, order: np.ndarray, loss: float, outputs: np.ndarray) -> bool:
        """The epoch's metrics (training: `outputs` of the rows in `order`; validation: one forward pass), then
        the callbacks; whether training goes on."""
        model = self.model
        logs = epoch_metrics(self.train_labels[order], outputs, self.num_classes, loss, self.target_scale)
        val_outputs = self._validation_outputs()
        val_loss = float(model.compute_loss(None, self.val_labels_tensor, val_outputs))
        logs.update({f"val_{name}": value for name, value in
                     epoch_metrics(self.val_labels, val_outputs.numpy(), self.num_classes, val_loss,
                                   self.target_scale).items()})
        self.callbacks.on_epoch_end(epoch, logs)
        return not model.stop_training

    def _validation_outputs(self) -> tf.Tensor:
        if self.chain is None:
            return self.model(self.val_rows.as_given_to(None), training=False)
        outputs = self.val_rows.as_given_to(self.standardise)
        for layer in self.chain:
            outputs = layer(outputs, training=False)
        return outputs

    def finish(self) -> keras.callbacks.History:
        """Training over: the best epoch's weights in the model (and in `best_weights_path`); the history."""
        model = self.model
        self.callbacks.on_train_end()
        model.stop_training = False
        if self.keep_best.best_weights is not None:
            model.set_weights(self.keep_best.best_weights)
            if self.best_weights_path is not None:
                self.best_weights_path.parent.mkdir(parents=True, exist_ok=True)
                model.save_weights(str(self.best_weights_path))
        history: keras.callbacks.History = model.history
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
    verbose: int = 0,
    show_progress: bool = False,
    progress_stream: IO[str] | None = None,
    target_scale: float | None = None,
) -> tuple[keras.Model, list[keras.callbacks.History]]:
    """Trains `members` heads side by side (a thread each); returns the model averaging them, and each one's history.

    `build_member(seed, name)` gives a compiled, untrained head. Member 1 has the run's seed and writes the
    usual files, so `--ensemble 1` is exactly the single head; member N > 1 has its own seed (initial weights,
    dropout masks, data order), TensorBoard folder `member-N/` and weights and CSV files named `...-member-N`.
    `show_progress`: a progress bar per head on a terminal, one line per head otherwise (HeadProgress), on
    `progress_stream` (sys.stderr when None).
    """
    models, jobs, progress_bars = [], [], []
    rows, val_rows = TrainingRows(train_features), TrainingRows(val_features)
    for member in range(members):  # built one after the other, each from its own seed, as a single head is
        suffix = "" if member == 0 else f"-member-{member + 1}"
        make_deterministic(member_seed(seed, member))
        model = build_member(member_seed(seed, member), "head" if members == 1 else f"member_{member + 1}")
        label = "head" if members == 1 else f"head {member + 1}/{members}"
        monitor, mode = monitored(target_scale)
        progress = HeadProgress(label, epochs, progress_stream, position=member, line_at_end=False, monitor=monitor,
                                mode=mode) \
            if show_progress else None
        progress_bars.append(progress)
        jobs.append(dict(
            model=model, train_features=train_features, train_labels=train_labels, val_features=val_features,
            val_labels=val_labels, num_classes=num_classes,
            best_weights_path=best_weights_path.with_name(best_weights_path.name.replace(".", f"{suffix}.", 1)),
            tensorboard_dir=tensorboard_dir / f"member-{member + 1}" if member else tensorboard_dir,
            csv_log_path=csv_log_path.with_name(f"{csv_log_path.stem}{suffix}{csv_log_path.suffix}"),
            epochs=epochs, batch_size=batch_size, class_weight=class_weight, seed=member_seed(seed, member),
            verbose=verbose, progress=progress, rows=rows, val_rows=val_rows, target_scale=target_scale,
        ))
        models.append(model)
    # Side by side: each head's epoch keeps the two cores only partly busy (and none while its metrics and
    # callbacks run in Python), so the heads fill each other's gaps. Each head's arithmetic is its own and
    # deterministic, so its weights are those it gets trained alone (tested).
    started = time.perf_counter()
    histories = list(trained_side_by_side([functools.partial(train_head, **job) for job in jobs], models,
                                          workers=members))
    for progress in progress_bars:  # off a terminal, one line per head, in order, once all are done
        if progress is not None:
            progress.write_line()
    log.debug("%d heads trained side by side in %.1f s", members, time.perf_counter() - started)
    return average_of(models), histories


def trained_side_by_side(trainings: Sequence[Callable[[], T]], models: Sequence[Any], *,
                         workers: int) -> Generator[T, None, None]:
    """Each of `trainings` (the training of the head in `models` at the same place, or of anything with a
    `stop_training` it reads after each epoch) run in a thread, `workers` at a time; their results are yielded
    in order. The first error, in any of them, or Ctrl-C, or the caller closing the generator, cancels those not
    started and sets `stop_training` on those still training, so they stop after their epoch; an error is
    raised as soon as it happens, not when its turn comes."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="head") as pool:
        futures = [pool.submit(training) for training in trainings]
        try:
            for future in futures:
                while not future.done():
                    wait([other for other in futures if not other.done()], return_when=FIRST_COMPLETED)
                    for other in futures:
                        if other.done() and not other.cancelled() and other.exception() is not None:
                            other.result()  # raises its error
                yield future.result()
        except BaseException:  # GeneratorExit included: a caller that leaves early stops the rest too
            for other, model in zip(futures, models):
                if not other.cancel() and not other.done():
                    model.stop_training = True
            raise


class KeepBestWeights(keras.callbacks.Callback):
    """The weights of the best validation epoch so far (highest `monitor` for mode "max", lowest for "min"), in
    memory (no file written per improvement)."""

    def __init__(self, monitor: str = "val_auroc", mode: str = "max") -> None:
        super().__init__()
        self.monitor, self.sign = monitor, 1.0 if mode == "max" else -1.0
        self.best = -np.inf  # of sign * value
        self.best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and np.isfinite(value) and self.sign * value > self.best:
            self.best = self.sign * float(value)
            self.best_weights = self.model.get_weights()
