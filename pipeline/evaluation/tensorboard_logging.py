"""What a run writes for TensorBoard beyond Keras's own callback (which logs the per-epoch scalars,
learning rate included, and the head's weight histograms under logs/train and logs/validation).

Everything here goes into one more TensorBoard run, `logs/evaluation/`, written once after the test
metrics exist:
  - images: ROC curve, precision-recall curve, confusion matrix (test set), rendered with matplotlib;
  - text: the run's config and the classification report;
  - hparams: the settings that matter for comparing runs, with final test/val metrics as scalars;
  - the Projector: a sample of the run's features with label, prediction, split and text as metadata.

The projector plugin looks for `projector_config.pbtxt` in the folder of each TensorBoard run (a
folder holding an event file), and for the embedding in that folder's latest TF checkpoint. Both live
in `logs/evaluation/` next to its event file, so `tensorboard --logdir <run folder>` and
`--logdir artifacts/runs` (many runs) both find them, and the run folder can be moved.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.evaluation import plots

if TYPE_CHECKING:
    from pipeline.data.tables import Splits

log = logging.getLogger(__name__)

EVALUATION_RUN = "evaluation"
MAX_PROJECTOR_ROWS = 5000
PROJECTOR_SPLIT_ORDER = ("test", "validation", "train")  # the test set first: it is what the metrics describe
PROJECTOR_METADATA = "metadata.tsv"
PROJECTOR_CHECKPOINT_PREFIX = "projector-embedding"
# The name tf.train.Checkpoint gives a variable stored as its attribute `embedding`.
PROJECTOR_TENSOR_NAME = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
MAX_METADATA_TEXT_CHARS = 500
HPARAM_KEYS = ("encoder", "pooling", "layers", "combine", "max_seq_length", "head", "learning_rate", "batch_size", "epochs",
               "hidden_units", "dropout_rate", "weight_decay", "ensemble", "class_weights", "seed",
               "fine_tune", "precision", "long_texts", "head_tokens", "window_overlap", "max_windows")


def write_run_summaries(logs_dir: Path, *, run_name: str, metrics: dict[str, Any], report: str, splits: Splits,
                        split_features: dict[str, np.ndarray], test_probabilities: np.ndarray,
                        predict: Callable[[np.ndarray], np.ndarray] | None = None, seed: int = 0,
                        max_projector_rows: int = MAX_PROJECTOR_ROWS) -> Path:
    """Writes logs/evaluation/ (images, text, hparams, final metrics, projector); returns that folder.

    `metrics` is the run's metrics.json content (test, val, labels, config); `splits` its data splits,
    `split_features` {"train"|"validation"|"test": features}; `predict(features) -> probabilities`
    adds each projector point's predicted class to the metadata.
    """
    import tensorflow as tf

    started = time.perf_counter()
    folder = Path(logs_dir) / EVALUATION_RUN
    folder.mkdir(parents=True, exist_ok=True)
    label_names = list(metrics["labels"])
    test_labels = splits.test.labels
    step = int(metrics.get("training", {}).get("epochs_run") or 0)  # a probe picked by a sweep has no epochs
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        for tag, png in evaluation_images(test_labels, test_probabilities, label_names).items():
            tf.summary.image(tag, tf.expand_dims(tf.image.decode_png(png, channels=4), 0), step=step)
        tf.summary.text("config", as_preformatted(json.dumps(metrics["config"], indent=2, sort_keys=True)), step=step)
        tf.summary.text("classification_report", as_preformatted(report), step=step)
        write_hparams(metrics["config"], trial_id=run_name)
        for tag, value in final_metric_scalars(metrics).items():
            tf.summary.scalar(tag, value, step=step)
    writer.close()
    write_projector(folder, splits, split_features, label_names, predict=predict, seed=seed, max_rows=max_projector_rows)
    log.debug("TensorBoard evaluation summaries written in %.2f s", time.perf_counter() - started)
    return folder


def as_preformatted(text: str) -> str:
    """TensorBoard renders text summaries as Markdown; four leading spaces keep a block as it is."""
    return "\n".join("    " + line for line in text.splitlines())


def final_metric_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """{'test/auroc': ..., 'val/accuracy': ...}: the numbers the hparams table compares runs by."""
    scalars = {}
    for part in ("test", "val"):
        for key in ("accuracy", "auroc", "pr_auc", "f1"):
            value = metrics[part].get(key)
            if value is not None:
                scalars[f"{part}/{key}"] = float(value)
    return scalars


def hparam_values(config: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """The run's settings as the hparams plugin accepts them (bool, int, float or str)."""
    values = {}
    for key in HPARAM_KEYS:
        value = config.get(key)
        if isinstance(value, (list, tuple)):
            value = ",".join(str(item) for item in value)
        elif key == "encoder" and value and "/" in str(value):
            value = Path(str(value).rstrip("/")).name or str(value)  # a folder or URL: its last part reads best
        values[key] = "none" if value is None else value
    return values


def write_hparams(config: dict[str, Any], *, trial_id: str) -> None:
    from tensorboard.plugins.hparams import api as hparams_api

    hparams_api.hparams(hparam_values(config), trial_id=trial_id)


def evaluation_images(labels: np.ndarray, probabilities: np.ndarray, label_names: list[str]) -> dict[str, bytes]:
    """{'roc_curve'|'pr_curve'|'confusion_matrix': PNG bytes} for the test set."""
    return {
        "roc_curve": plots.render_png(plots.draw_roc, plots.roc_points(labels, probabilities, label_names)),
        "pr_curve": plots.render_png(plots.draw_pr, plots.pr_points(labels, probabilities, label_names)),
        "confusion_matrix": plots.render_png(plots.draw_confusion,
                                             plots.confusion_table(labels, probabilities, label_names)),
    }


# ============================================================================ projector

def projector_sample(splits: Splits, split_features: dict[str, np.ndarray], *, max_rows: int,
                     seed: int) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """(features, texts, labels, split names) of at most `max_rows` rows: whole splits in the order
    test, validation, train while they fit, then a seeded random part of the next one."""
    parts = []
    room = max_rows
    for name in PROJECTOR_SPLIT_ORDER:
        if room <= 0:
            break
        data, features = getattr(splits, name), split_features[name]
        rows = plots.sample_rows(len(data.texts), room, seed)
        parts.append((features[rows], [data.texts[i] for i in rows], data.labels[rows], [name] * len(rows)))
        room -= len(rows)
    features = np.concatenate([part[0] for part in parts]).astype(np.float32, copy=False)
    texts = [text for part in parts for text in part[1]]
    labels = np.concatenate([part[2] for part in parts])
    split_names = [name for part in parts for name in part[3]]
    return features, texts, labels, split_names


def metadata_field(text: str) -> str:
    """One TSV field: tabs and line breaks would start new fields or rows, so they are written escaped."""
    text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")
    if len(text) > MAX_METADATA_TEXT_CHARS:
        text = text[: MAX_METADATA_TEXT_CHARS - 1] + "…"
    return text


def metadata_tsv(texts: list[str], labels: np.ndarray, label_names: list[str], split_names: list[str],
                 predicted: np.ndarray | None = None) -> str:
    """The projector's metadata: a header row (needed with more than one column), then one row per point."""
    columns = ["label"] + (["predicted"] if predicted is not None else []) + ["split", "text"]
    lines = ["\t".join(columns)]
    for index, text in enumerate(texts):
        row = [metadata_field(label_names[int(labels[index])])]
        if predicted is not None:
            row.append(metadata_field(label_names[int(predicted[index])]))
        row += [split_names[index], metadata_field(text)]
        lines.append("\t".join(row))
    return "\n".join(lines) + "\n"


def write_projector(folder: Path, splits: Splits, split_features: dict[str, np.ndarray], label_names: list[str], *,
                    predict: Callable[[np.ndarray], np.ndarray] | None = None, seed: int = 0,
                    max_rows: int = MAX_PROJECTOR_ROWS) -> None:
    import tensorflow as tf
    from tensorboard.plugins import projector

    features, texts, labels, split_names = projector_sample(splits, split_features, max_rows=max_rows, seed=seed)
    predicted = predict(features).argmax(axis=1) if predict is not None else None
    (folder / PROJECTOR_METADATA).write_text(metadata_tsv(texts, labels, label_names, split_names, predicted),
                                             encoding="utf-8")
    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(features, trainable=False))
    checkpoint.save(str(folder / PROJECTOR_CHECKPOINT_PREFIX))
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = PROJECTOR_TENSOR_NAME
    embedding.metadata_path = PROJECTOR_METADATA  # relative to this config file, so the folder can move
    projector.visualize_embeddings(str(folder), config)
