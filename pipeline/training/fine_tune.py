"""Fine-tuning: the encoder unfrozen and trained together with a small classification head.

The trained model is encoder -> pooling (as for extraction) -> dropout -> head. When training ends,
the encoder at its best validation-AUROC epoch is saved as its own TF-Hub SavedModel (the run's
`encoder/` folder) and the head as `head.keras` on pooled features, so a fine-tuned run folder is
read, exported and used for prediction exactly like a frozen one, with the tuned encoder.

Resuming: each finished epoch leaves a backup (weights, optimizer state, the best epoch so far) in
the run folder. Everything random depends only on the seed and the step or epoch number (batch
order, dropout masks), and the encoder's own dropout is off (its SavedModel draws unseeded random
numbers), so a resumed run repeats the uninterrupted run's computation.
"""

from __future__ import annotations

import csv
import logging
import math
import shutil
import sys
import tempfile
import time
from array import array as int_array
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras as keras
from tqdm import tqdm

from pipeline.base.errors import UserError
from pipeline.base.progress_bars import redraw_interval
from pipeline.data.targets import MULTI_LABEL, REGRESSION, SINGLE_LABEL
from pipeline.encoders.encoder import call_encoder_layer
from pipeline.encoders.model_info import read_model_info, write_model_info
from pipeline.evaluation.metrics import ranking_metrics
from pipeline.features.encoder_io import feature_size, pool, tokenize_whole
from pipeline.features.long_texts import TRUNCATE, LongTexts, segments
from pipeline.training import token_batches
from pipeline.training.head import build_output_head, compile_head

if TYPE_CHECKING:
    from pipeline.encoders.encoder import Encoder

log = logging.getLogger(__name__)

WARMUP_FRACTION = 0.1  # of all training steps, as in the BERT paper's recipe
EARLY_STOPPING_PATIENCE = 2  # epochs without a better validation AUROC
GLOBAL_CLIP_NORM = 1.0
# Weight decay skips biases and layer-norm scales and offsets (the usual BERT AdamW recipe).
NO_DECAY_NAME_PARTS = ["bias", "norm", "Norm"]


@dataclass(frozen=True)
class FineTuneSettings:
    epochs: int
    batch_size: int
    learning_rate: float
    dropout_rate: float
    weight_decay: float
    hidden_units: tuple[int, ...]
    seed: int


@dataclass
class FineTuneResult:
    model: keras.Model  # the whole model (token ids in), at its best epoch
    head: keras.Model  # pooled features in, probabilities out
    history: dict[str, list[float]]
    initial_epoch: int  # > 0 when this run resumed an interrupted one
    epochs_run: int
    best_epoch: int
    texts_per_second: float  # training texts per second over this process's epochs, validation excluded
    seconds: float
    padding_fraction: float


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate rising linearly to `peak` over `warmup_steps`, then falling linearly to 0 at `total_steps`."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int):
        super().__init__()
        self.peak, self.total_steps, self.warmup_steps = float(peak), int(total_steps), int(warmup_steps)

    def value(self, step: int) -> float:
        """The rate at `step` in plain Python (for logging every step without running TensorFlow ops)."""
        if step < self.warmup_steps:
            return self.peak * (step + 1.0) / max(self.warmup_steps, 1)
        return max(self.peak * (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1), 0.0)

    def __call__(self, step: Any) -> Any:
        step = tf.cast(step, tf.float32)
        warming = self.peak * (step + 1.0) / float(max(self.warmup_steps, 1))
        decaying = self.peak * (float(self.total_steps) - step) / float(max(self.total_steps - self.warmup_steps, 1))
        return tf.maximum(tf.where(step < self.warmup_steps, warming, decaying), 0.0)

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


class StepSeededDropout(keras.layers.Layer):
    """Dropout whose mask depends only on (seed, training step): the step counter is a weight, saved
    in the backup, so a resumed run draws the same masks as an uninterrupted one."""

    def __init__(self, rate: float, seed: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.rate, self.seed = float(rate), int(seed)
        self.step = self.add_weight(name="step", shape=(), dtype=tf.int64, initializer="zeros", trainable=False)

    def call(self, inputs: Any, training: Any = None) -> Any:
        if not training or self.rate == 0:
            return inputs
        step = self.step.assign_add(1)
        seed = tf.stack([tf.constant(self.seed, tf.int64), step])
        return tf.nn.experimental.stateless_dropout(inputs, rate=self.rate, seed=seed)


class PooledEncoder(keras.layers.Layer):
    """The trainable encoder and the run's pooling: token ids in, pooled features out (as extraction pools)."""

    def __init__(self, encoder_layer: hub.KerasLayer, signature: str, pooling: str, layers: tuple[int, ...],
                 combine: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.encoder_layer = encoder_layer
        self.signature, self.pooling, self.layers_chosen, self.combine = signature, pooling, layers, combine

    def call(self, inputs: list[Any]) -> Any:
        word_ids, mask, type_ids = inputs
        # training=False: the encoder's own dropout draws unseeded random numbers inside its SavedModel,
        # which would make runs (and resumed runs) differ; dropout is applied to the pooled features instead.
        outputs = call_encoder_layer(self.encoder_layer, self.signature, word_ids, mask, type_ids, training=False)
        return tf.cast(pool(outputs, mask, self.pooling, self.layers_chosen, self.combine), tf.float32)


class FineTunedClassifier(keras.Model):
    """The functional model with a training step that updates every trainable variable except the word-embedding
    table: on ~10k texts most of its rows are never seen, and leaving it alone saves a fifth of each step's
    time (the table is half of MiniLM's parameters; docs/quality.md)."""

    def tuned_variables(self) -> list[tf.Variable]:
        return [variable for variable in self.trainable_variables if not is_word_embedding_table(variable)]

    def train_step(self, data: Any) -> dict[str, Any]:
        inputs, labels, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            predictions = self(inputs, training=True)
            loss = self.compute_loss(inputs, labels, predictions, sample_weight)
        self.optimizer.minimize(loss, self.tuned_variables(), tape=tape)
        return self.compute_metrics(inputs, labels, predictions, sample_weight)


def is_word_embedding_table(variable: tf.Variable) -> bool:
    """The token-embedding matrix, as TF-Hub BERTs and our converter name it."""
    return "word_embeddings" in variable.name


def require_trainable(encoder: Encoder) -> None:
    """UserError unless the encoder can be fine-tuned: the dict signature and trainable variables in its SavedModel."""
    if encoder.signature != "dict":
        raise UserError(f"--fine-tune: encoder {encoder.handle} has the old list signature, which TF-Hub cannot "
                        f"train through; use a dict-signature encoder (TF-Hub's newer BERTs, or one made by "
                        f"`python -m pipeline convert`)")
    if not list(getattr(encoder.layer.resolved_object, "trainable_variables", None) or []):
        raise UserError(f"--fine-tune: encoder {encoder.handle} has no trainable variables in its SavedModel, so "
                        f"it cannot be fine-tuned; use the frozen path (drop --fine-tune) or a trainable encoder")


def load_trainable_encoder(encoder: Encoder) -> hub.KerasLayer:
    """A second, trainable copy of the encoder's SavedModel (the frozen one keeps serving the probe's features)."""
    require_trainable(encoder)
    return hub.KerasLayer(str(encoder.model_dir), trainable=True)


def build_fine_tune_model(encoder: Encoder, encoder_layer: hub.KerasLayer, *, pooling: str, layers: tuple[int, ...],
                          combine: str, num_classes: int, settings: FineTuneSettings,
                          kind: str = SINGLE_LABEL) -> tuple[keras.Model, keras.Model]:
    """(whole model, head): token ids -> pooled features -> dropout -> head -> probabilities."""
    inputs = [keras.Input(shape=(None,), dtype=tf.int32, name=name)
              for name in ("input_word_ids", "input_mask", "input_type_ids")]
    features = PooledEncoder(encoder_layer, encoder.signature, pooling, layers, combine, name="encoder")(inputs)
    features = StepSeededDropout(settings.dropout_rate, settings.seed, name="feature_dropout")(features)
    head = build_output_head(feature_size(encoder.hidden_size, layers, combine), num_classes,
                             hidden_units=settings.hidden_units, seed=settings.seed, kind=kind)
    return FineTunedClassifier(inputs, head(features), name="fine_tuned_classifier"), head


def learning_rate_schedule(settings: FineTuneSettings, total_steps: int) -> WarmupLinearDecay:
    return WarmupLinearDecay(settings.learning_rate, total_steps, math.ceil(WARMUP_FRACTION * total_steps))


def make_optimizer(settings: FineTuneSettings, schedule: WarmupLinearDecay, *, loss_scaling: bool) -> keras.optimizers.Optimizer:
    """AdamW on `schedule` with BERT's epsilon and gradient clipping; loss scaling for float16."""
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=settings.weight_decay, epsilon=1e-6,
                                       global_clipnorm=GLOBAL_CLIP_NORM)
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAME_PARTS)
    if loss_scaling:  # float16 gradients underflow without it (Keras's dynamic loss scaling)
        return keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


class TokenizedSplit:
    """One split's token ids and labels, served as padded length-bucketed batches."""

    def __init__(self, token_ids: list[Any], labels: np.ndarray, *, max_seq_length: int, cls_id: int, sep_id: int,
                 sample_weights: np.ndarray | None = None):
        self.labels = np.asarray(labels)
        self.lengths = np.array([len(ids) + 2 for ids in token_ids], dtype=np.int64)  # with [CLS] and [SEP]
        if np.any(self.lengths > max_seq_length):
            raise ValueError(f"token ids longer than max_seq_length {max_seq_length} - 2; tokenize with that limit")
        # Every row as [CLS] ids [SEP], end to end: batches are gathered from it inside tf.data.
        self.packed_ids = np.concatenate([np.concatenate([[cls_id], np.asarray(ids, np.int32), [sep_id]])
                                          for ids in token_ids]).astype(np.int32) if token_ids else np.zeros(0, np.int32)
        self.sample_weights = None if sample_weights is None else np.asarray(sample_weights, np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def dataset(self, batches: list[np.ndarray], *, with_labels: bool) -> tf.data.Dataset:
        """The batches in the order given, each padded to its own longest row: (inputs,), or (inputs, labels)
        and the sample weights when there are any.

        Built from tensors, not from a Python generator: once a `from_generator` dataset has run, every later
        TensorFlow op in the process runs slower (measured: docs/benchmarks-history.md#fine-tuning).
        """
        order = np.concatenate(batches) if batches else np.zeros(0, np.int64)
        sizes = np.array([len(rows) for rows in batches], np.int64)
        rows = tf.RaggedTensor.from_row_lengths(self.packed_ids, self.lengths)
        by_batch = tf.RaggedTensor.from_row_lengths(tf.gather(rows, order), sizes)
        parts: dict[str, Any] = {"ids": by_batch}
        if with_labels:
            labels = self.labels[order]  # class ids or 0/1 labels as int32; a standardised number stays float32
            labels = labels.astype(np.float32 if labels.dtype.kind == "f" else np.int32)
            parts["labels"] = tf.RaggedTensor.from_row_lengths(labels, sizes)
            if self.sample_weights is not None:
                parts["weights"] = tf.RaggedTensor.from_row_lengths(self.sample_weights[order], sizes)

        def pad(batch: dict[str, Any]) -> Any:
            word_ids = batch["ids"].to_tensor(default_value=0)
            mask = tf.sequence_mask(batch["ids"].row_lengths(), maxlen=tf.shape(word_ids)[1], dtype=tf.int32)
            element: tuple[Any, ...] = ((word_ids, mask, tf.zeros_like(word_ids)),)
            if with_labels:
                element += (batch["labels"],)
                if "weights" in batch:
                    element += (batch["weights"],)
            return element

        return tf.data.Dataset.from_tensor_slices(parts).map(pad).prefetch(2)


def tokenize_split(texts: list[str], labels: np.ndarray, encoder: Encoder, max_seq_length: int, *,
                   long_texts: LongTexts = TRUNCATE, sample_weights: np.ndarray | None = None,
                   show_progress: bool = False) -> TokenizedSplit:
    """Each text's ids as the encoder reads them: one segment (truncated, or head and tail); windows are refused
    by the configuration, since training through several encoder calls per text is not implemented."""
    vocab = encoder.tokenizer.vocab
    if long_texts.strategy == "windows":
        raise ValueError("fine-tuning reads one segment per text; windows are refused by validate()")
    read = [int_array("i", segments(ids, max_seq_length, long_texts)[0])
            for ids in tokenize_whole(texts, encoder.tokenizer, show_progress=show_progress)]
    return TokenizedSplit(read, labels,
                          max_seq_length=max_seq_length, cls_id=vocab["[CLS]"], sep_id=vocab["[SEP]"],
                          sample_weights=sample_weights)


class EpochState(keras.callbacks.Callback):
    """At each epoch's end: keep the best validation-AUROC weights (or of the metric `monitor` names: val_rmse for a
    number), stop early, and back up what resuming needs.

    Both are TensorFlow checkpoints in the run folder: `best` (model weights) and `backup` (model,
    optimizer, epochs done, best AUROC and epoch). The best weights are written before the backup, so
    an interruption between the two only repeats an epoch that writes the same weights again.
    """

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, *, backup_dir: Path, best_dir: Path,
                 patience: int, monitor: str = "val_auroc", mode: str = "max"):
        super().__init__()
        # `best_auroc` keeps its name in the backups (resuming reads it), and holds sign * the monitored value.
        self.monitor, self.sign = monitor, 1.0 if mode == "max" else -1.0
        self.epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_auroc = tf.Variable(-math.inf, dtype=tf.float64, trainable=False)
        self.best_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self.patience = patience
        self._backup = tf.train.Checkpoint(model=model, optimizer=optimizer, epochs_done=self.epochs_done,
                                           best_auroc=self.best_auroc, best_epoch=self.best_epoch)
        self._manager = tf.train.CheckpointManager(self._backup, str(backup_dir), max_to_keep=1)
        self._best = tf.train.Checkpoint(model=model)
        self._best_prefix = str(best_dir / "weights")

    def restore(self) -> int:
        """Loads the latest backup when there is one; returns the number of epochs it had finished."""
        if self._manager.latest_checkpoint is None:
            return 0
        self._backup.restore(self._manager.latest_checkpoint).assert_existing_objects_matched()
        log.info("resuming after epoch %d from %s", int(self.epochs_done.numpy()), self._manager.latest_checkpoint)
        return int(self.epochs_done.numpy())

    def stopped_early(self) -> bool:
        return int(self.epochs_done.numpy()) - 1 - int(self.best_epoch.numpy()) >= self.patience

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        value = self.sign * float((logs or {}).get(self.monitor, float("nan")))
        if math.isfinite(value) and value > float(self.best_auroc.numpy()):
            self.best_auroc.assign(value)
            self.best_epoch.assign(epoch)
            self._best.write(self._best_prefix)
        self.epochs_done.assign(epoch + 1)
        self._manager.save(checkpoint_number=epoch + 1)
        if self.stopped_early():
            log.info("early stop: no better %s for %d epochs", self.monitor, self.patience)
            self.model.stop_training = True

    def restore_best(self) -> None:
        if int(self.best_epoch.numpy()) >= 0:
            self._best.read(self._best_prefix).assert_existing_objects_matched().expect_partial()


class ValidationRmse(keras.callbacks.Callback):
    """The validation split's RMSE in the target's own units (`target_scale`: the standard deviation the
    standardised `targets` [N, 1] are in), put into `logs` as val_rmse."""

    def __init__(self, inputs: tf.data.Dataset, targets: np.ndarray, target_scale: float):
        super().__init__()
        self.inputs, self.targets, self.target_scale = inputs, targets, target_scale

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs if logs is not None else {}
        predictions = self.model.predict(self.inputs, verbose=0)
        errors = (predictions[:, 0] - self.targets[:, 0]) * self.target_scale
        logs["val_rmse"] = float(np.sqrt(np.mean(errors ** 2)))


class ValidationAuroc(keras.callbacks.Callback):
    """Macro one-vs-rest AUROC and PR-AUC of the validation split (or the labels' mean, with several labels per
    text), put into `logs` (K > 2 and several labels; Keras does K = 2)."""

    def __init__(self, inputs: tf.data.Dataset, labels: np.ndarray, num_classes: int):
        super().__init__()
        self.inputs, self.labels, self.num_classes = inputs, labels, num_classes

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs if logs is not None else {}
        probabilities = self.model.predict(self.inputs, verbose=0)
        logs["val_auroc"], logs["val_pr_auc"] = ranking_metrics(self.labels, probabilities, self.num_classes)


class LearningRatePerStep(keras.callbacks.Callback):
    """The learning rate of every training step, as a TensorBoard scalar beside the epoch curves."""

    def __init__(self, logs_dir: Path, schedule: WarmupLinearDecay, first_step: int):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(logs_dir))
        self.schedule, self.step = schedule, first_step
        self.epoch_steps: list[int] = []

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self.epoch_steps.append(self.step)  # written at the epoch's end: a summary per step costs milliseconds
        self.step += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        with self.writer.as_default():
            for step in self.epoch_steps:
                tf.summary.scalar("learning_rate", self.schedule.value(step), step=step)
        self.writer.flush()
        self.epoch_steps = []


class TextsProgress(keras.callbacks.Callback):
    """A progress bar counting training texts (so it shows texts/s), one summary line per epoch, and the
    training speed with validation left out."""

    def __init__(self, batch_rows: dict[int, list[int]], epochs: int, *, show: bool):
        super().__init__()
        self.batch_rows, self.epochs, self.show = batch_rows, epochs, show
        self.texts, self.seconds = 0, 0.0
        self._bar: tqdm | None = None
        self._epoch = 0
        self._started = 0.0
        self._last_batch_end = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._epoch, self._started = epoch, time.perf_counter()
        self._last_batch_end = self._started
        # stdout, like Keras's own progress: the run captures stderr while training to drop TensorFlow's noise.
        self._bar = tqdm(total=sum(self.batch_rows[epoch]), unit="text", desc=f"fine-tuning {epoch + 1}/{self.epochs}",
                         disable=not self.show, smoothing=0.1, leave=False, file=sys.stdout,
                         mininterval=redraw_interval(sys.stdout))

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        rows = self.batch_rows[self._epoch][batch]
        self.texts += rows
        self._last_batch_end = time.perf_counter()
        if self._bar is not None:
            self._bar.update(rows)
            if logs and "loss" in logs:
                self._bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        seconds = self._last_batch_end - self._started
        self.seconds += seconds
        if self._bar is not None:
            self._bar.close()
        logs = logs or {}
        shown = ", ".join(f"{name} {logs[name]:.4f}" for name in ("loss", "val_loss", "val_accuracy", "val_auroc",
                                                                  "val_rmse") if name in logs)
        speed = sum(self.batch_rows[epoch]) / max(seconds, 1e-9)
        if self.show:
            tqdm.write(f"epoch {epoch + 1}/{self.epochs}: {shown}, {speed:.1f} texts/s", file=sys.stdout)


def truncate_csv_log(path: Path, epochs_done: int) -> None:
    """Keeps the CSV log's rows of the epochs a resumed run does not repeat."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    kept = rows[:1] + [row for row in rows[1:] if row and row[0].isdigit() and int(row[0]) < epochs_done]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(kept)


def fine_tune(encoder: Encoder, *, train: TokenizedSplit, validation: TokenizedSplit, num_classes: int, pooling: str,
              layers: tuple[int, ...], combine: str, settings: FineTuneSettings, backup_dir: Path, best_dir: Path,
              tensorboard_dir: Path, csv_log_path: Path, loss_scaling: bool = False,
              show_progress: bool = True, kind: str = SINGLE_LABEL,
              label_weights: dict[int, tuple[float, float]] | None = None, loss_name: str = "mse",
              target_scale: float | None = None) -> FineTuneResult:
    """Trains encoder and head together; resumes from `backup_dir` when an earlier attempt left a backup there.
    Several labels per text (`kind` multi-label, `num_classes` labels): a sigmoid per label, `label_weights` as
    compile_head takes them.

    Returns the model holding the best validation-AUROC epoch's weights.
    """
    encoder_layer = load_trainable_encoder(encoder)
    model, head = build_fine_tune_model(encoder, encoder_layer, pooling=pooling, layers=layers, combine=combine,
                                        num_classes=num_classes, settings=settings, kind=kind)
    epoch_plans = {epoch: token_batches.epoch_batches(train.lengths, settings.batch_size, seed=settings.seed, epoch=epoch)
                   for epoch in range(settings.epochs)}
    steps_per_epoch = len(epoch_plans[0])
    schedule = learning_rate_schedule(settings, steps_per_epoch * settings.epochs)
    optimizer = make_optimizer(settings, schedule, loss_scaling=loss_scaling)
    compile_head(model, num_classes, optimizer=optimizer, kind=kind, label_weights=label_weights, loss_name=loss_name)
    optimizer.build(model.tuned_variables())  # slots exist before a backup is restored into them
    backup_dir.mkdir(parents=True, exist_ok=True)
    best_dir.mkdir(parents=True, exist_ok=True)
    monitor, mode = ("val_rmse", "min") if kind == REGRESSION else ("val_auroc", "max")
    state = EpochState(model, optimizer, backup_dir=backup_dir, best_dir=best_dir, patience=EARLY_STOPPING_PATIENCE,
                       monitor=monitor, mode=mode)
    initial_epoch = state.restore()
    if initial_epoch:
        truncate_csv_log(csv_log_path, initial_epoch)
    remaining = [] if state.stopped_early() else list(range(initial_epoch, settings.epochs))
    batches = [rows for epoch in remaining for rows in epoch_plans[epoch]]
    train_data = train.dataset(batches, with_labels=True)
    validation_batches = token_batches.sorted_batches(validation.lengths, settings.batch_size)
    validation_order = np.concatenate(validation_batches) if validation_batches else np.zeros(0, np.int64)
    callbacks: list[keras.callbacks.Callback] = []
    if kind == REGRESSION:
        callbacks.append(ValidationRmse(validation.dataset(validation_batches, with_labels=False),
                                        validation.labels[validation_order], target_scale or 1.0))
    elif num_classes > 2 or kind == MULTI_LABEL:
        callbacks.append(ValidationAuroc(validation.dataset(validation_batches, with_labels=False),
                                         validation.labels[validation_order], num_classes))
    progress = TextsProgress({epoch: [len(rows) for rows in plan] for epoch, plan in epoch_plans.items()},
                             settings.epochs, show=show_progress)
    callbacks += [
        state,
        LearningRatePerStep(tensorboard_dir / "train", schedule, first_step=initial_epoch * steps_per_epoch),
        # No graph: the model holds the hub encoder, which Keras cannot describe as a config. No weight
        # histograms: TensorBoard's histogram op builds a one-hot [values, buckets] matrix, gigabytes for the
        # word-embedding table alone, which would more than double the demo's peak memory
        # (docs/benchmarks-history.md#fine-tuning).
        keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir), histogram_freq=0, write_graph=False),
        keras.callbacks.CSVLogger(str(csv_log_path), append=initial_epoch > 0),
        progress,
    ]
    started = time.perf_counter()
    history = model.fit(train_data, validation_data=validation.dataset(validation_batches, with_labels=True),
                        epochs=settings.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                        callbacks=callbacks, verbose=0) if remaining else None
    seconds = time.perf_counter() - started
    state.restore_best()
    all_batches = [rows for plan in epoch_plans.values() for rows in plan]
    return FineTuneResult(
        model=model, head=head, history=dict(history.history) if history else {}, initial_epoch=initial_epoch,
        epochs_run=int(state.epochs_done.numpy()), best_epoch=int(state.best_epoch.numpy()),
        texts_per_second=round(progress.texts / max(progress.seconds, 1e-9), 1), seconds=round(seconds, 3),
        padding_fraction=round(token_batches.padding_fraction(train.lengths, all_batches), 4),
    )


def save_tuned_encoder(encoder: Encoder, encoder_layer: hub.KerasLayer, output_dir: Path) -> None:
    """The tuned encoder as a TF-Hub SavedModel (same signatures, vocabulary and notes as the original),
    written beside `output_dir` and renamed into place, so the folder is complete or absent."""
    temporary = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".tmp", dir=output_dir.parent))
    try:
        tf.saved_model.save(encoder_layer.resolved_object, str(temporary))
        info = read_model_info(encoder.model_dir)
        write_model_info(temporary, {**info, "fine_tuned_from": {"handle": encoder.handle,
                                                                  "fingerprint": encoder.fingerprint}})
        if output_dir.exists():
            shutil.rmtree(output_dir)
        temporary.rename(output_dir)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def encoder_layer_of(model: keras.Model) -> hub.KerasLayer:
    layer: hub.KerasLayer = model.get_layer("encoder").encoder_layer
    return layer
