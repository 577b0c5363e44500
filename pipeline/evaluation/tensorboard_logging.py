"""What a run writes for TensorBoard beyond Keras's own callback (which logs the per-epoch scalars,
learning rate included, and the head's weight histograms under logs/train and logs/validation).

Everything here goes into one more TensorBoard run, `logs/evaluation/`, written once after the test
metrics exist:
  - images: ROC curve, precision-recall curve, confusion matrix (test set), rendered with matplotlib; a
    multi-label run draws one line per label and has no confusion matrix; a regression run (a numeric target)
    has instead its predictions against the true values and its residuals' histogram;
  - PR curves (multi-label): one per label in TensorBoard's own PR Curves plugin, tagged `pr_curve/<label>`;
  - text: the run's config, the classification report (a regression run: its report, tagged
    `regression_report`) and (multi-label) the per-label table;
  - hparams: the settings that matter for comparing runs, with final test/val metrics as scalars (a
    multi-label run: macro AUROC and the other metrics it records; a regression run: RMSE, MAE, R², Spearman,
    Pearson and, for a target of a few whole values, the rounded prediction's accuracy);
  - the Projector: a sample of the run's features with label, prediction, split and text as metadata (a
    multi-label run: the labels joined by ",", predicted those at or above their thresholds; a regression run:
    the target's value, and the prediction rounded to 2 decimals).

The projector plugin looks for `projector_config.pbtxt` in the folder of each TensorBoard run (a
folder holding an event file), and for the embedding in that folder's latest TF checkpoint. Both live
in `logs/evaluation/` next to its event file, so `tensorboard --logdir <run folder>` and
`--logdir artifacts/runs` (many runs) both find them, and the run folder can be moved.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.data.targets import MULTI_LABEL, REGRESSION
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
NO_LABELS = "(none)"  # the projector's label of a text with none of the labels
PREDICTION_DECIMALS = 2  # a regression's predictions in the projector's metadata
PR_CURVE_THRESHOLDS = 201  # the PR Curves plugin's own default: thresholds 0, 0.005, ..., 1
SINGLE_LABEL_SCALARS = ("accuracy", "auroc", "pr_auc", "f1")
MULTI_LABEL_SCALARS = ("macro_auroc", "micro_auroc", "macro_f1", "micro_f1", "subset_accuracy", "hamming_loss")
REGRESSION_SCALARS = ("rmse", "mae", "r2", "spearman", "pearson", "rounded_accuracy")
HPARAM_KEYS = ("encoder", "pooling", "layers", "combine", "max_seq_length", "head", "learning_rate", "batch_size", "epochs",
               "hidden_units", "dropout_rate", "weight_decay", "ensemble", "class_weights", "seed",
               "fine_tune", "precision", "long_texts", "head_tokens", "window_overlap", "max_windows")


def write_run_summaries(logs_dir: Path, *, run_name: str, metrics: dict[str, Any], report: str, splits: Splits,
                        split_features: dict[str, np.ndarray], test_probabilities: np.ndarray,
                        predict: Callable[[np.ndarray], np.ndarray] | None = None, seed: int = 0,
                        max_projector_rows: int = MAX_PROJECTOR_ROWS) -> Path:
    """Writes logs/evaluation/ (images, text, hparams, final metrics, projector); returns that folder.

    `metrics` is the run's metrics.json content (test, val, labels, config, target); `splits` its data splits,
    `split_features` {"train"|"validation"|"test": features}; `predict(features) -> probabilities`
    adds each projector point's predicted class to the metadata. A multi-label run (metrics["target"]["kind"])
    has 0/1 indicator matrices as labels and independent per-label probabilities; a regression run has the targets
    as labels and its predictions in the target's units, [rows, 1], as `test_probabilities` and from `predict`.
    """
    import tensorflow as tf

    started = time.perf_counter()
    folder = Path(logs_dir) / EVALUATION_RUN
    folder.mkdir(parents=True, exist_ok=True)
    regression = is_regression(metrics)
    label_names = list(metrics["target"]["names"] if regression else metrics["labels"])
    test_labels = splits.test.labels
    multi_label = is_multi_label(metrics)
    step = int(metrics.get("training", {}).get("epochs_run") or 0)  # a probe picked by a sweep has no epochs
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        if regression:
            images = regression_images(test_labels, test_probabilities, name=label_names[0] if label_names else "target")
        else:
            images = evaluation_images(test_labels, test_probabilities, label_names, multi_label=multi_label)
        for tag, png in images.items():
            tf.summary.image(tag, tf.expand_dims(tf.image.decode_png(png, channels=4), 0), step=step)
        tf.summary.text("config", as_preformatted(json.dumps(metrics["config"], indent=2, sort_keys=True)), step=step)
        tf.summary.text("regression_report" if regression else "classification_report", as_preformatted(report),
                        step=step)
        if multi_label:
            write_pr_curves(test_labels, test_probabilities, label_names, step=step)
            tf.summary.text("per_label", per_label_table(metrics), step=step)
        write_hparams(metrics["config"], trial_id=run_name)
        for tag, value in final_metric_scalars(metrics).items():
            tf.summary.scalar(tag, value, step=step)
    writer.close()
    write_projector(folder, splits, split_features, label_names, predict=predict, seed=seed, max_rows=max_projector_rows,
                    thresholds=metrics["target"]["thresholds"] if multi_label else None, regression=regression)
    log.debug("TensorBoard evaluation summaries written in %.2f s", time.perf_counter() - started)
    return folder


def as_preformatted(text: str) -> str:
    """TensorBoard renders text summaries as Markdown; four leading spaces keep a block as it is."""
    return "\n".join("    " + line for line in text.splitlines())


def is_multi_label(metrics: dict[str, Any]) -> bool:
    """Whether the run predicts several labels per text; metrics without a target (older callers) are single-label."""
    return (metrics.get("target") or {}).get("kind") == MULTI_LABEL


def is_regression(metrics: dict[str, Any]) -> bool:
    """Whether the run predicts a number (its target's kind is REGRESSION)."""
    return (metrics.get("target") or {}).get("kind") == REGRESSION


def final_metric_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """{'test/auroc': ..., 'val/accuracy': ...} ('test/macro_auroc', ... for a multi-label run, 'test/rmse', ... for
    a regression run): the numbers the hparams table compares runs by; a metric that is None or absent is left
    out."""
    keys: tuple[str, ...] = SINGLE_LABEL_SCALARS
    if is_regression(metrics):
        keys = REGRESSION_SCALARS
    elif is_multi_label(metrics):
        keys = MULTI_LABEL_SCALARS
    scalars = {}
    for part in ("test", "val"):
        for key in keys:
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


def evaluation_images(labels: np.ndarray, probabilities: np.ndarray, label_names: list[str], *,
                      multi_label: bool = False) -> dict[str, bytes]:
    """{'roc_curve'|'pr_curve'|'confusion_matrix': PNG bytes} for the test set; a multi-label run (`labels` a 0/1
    indicator matrix) gets one line per label and no confusion matrix."""
    images = {
        "roc_curve": plots.render_png(plots.draw_roc, plots.roc_points(labels, probabilities, label_names)),
        "pr_curve": plots.render_png(plots.draw_pr, plots.pr_points(labels, probabilities, label_names)),
    }
    if not multi_label:
        images["confusion_matrix"] = plots.render_png(plots.draw_confusion,
                                                      plots.confusion_table(labels, probabilities, label_names))
    return images


def regression_images(targets: np.ndarray, predictions: np.ndarray, *, name: str) -> dict[str, bytes]:
    """{'predicted_vs_true'|'residuals': PNG bytes} for the test set; `name` is the target's (its column's)."""
    return {
        "predicted_vs_true": plots.render_png(partial(plots.draw_predicted_vs_true, name=name), targets, predictions),
        "residuals": plots.render_png(plots.draw_residuals, plots.prediction_errors(targets, predictions)),
    }


# ============================================================================ multi-label: PR curves, per-label table

def pr_curve_value(name: str, is_label: np.ndarray, scores: np.ndarray) -> Any:
    """The PR Curves plugin's summary value for one label: its counts, precision and recall at PR_CURVE_THRESHOLDS
    even thresholds. The plugin has no TF2 summary op, so its protobuf builder computes and a TF2 writer writes."""
    from tensorboard.plugins.pr_curve import summary as pr_curve_summary

    summary = pr_curve_summary.pb(name, labels=np.asarray(is_label).astype(bool),
                                  predictions=np.clip(scores, 0, 1).astype(np.float32),
                                  num_thresholds=PR_CURVE_THRESHOLDS)
    [value] = summary.value
    return value


def write_pr_curves(indicators: np.ndarray, probabilities: np.ndarray, label_names: list[str], *, step: int) -> None:
    """One PR curve per label, tagged `pr_curve/<label>`, into the default summary writer."""
    import tensorflow as tf

    for index, name in enumerate(label_names):
        value = pr_curve_value(name, indicators[:, index], probabilities[:, index])
        tf.summary.write(f"pr_curve/{name}", tf.make_ndarray(value.tensor), step=step,
                         metadata=value.metadata.SerializeToString())


def per_label_table(metrics: dict[str, Any]) -> str:
    """Markdown: a table per split (test, then validation) of each label's AUROC, PR-AUC, F1, threshold and support,
    in the labels' order, so rows line up across splits and runs."""
    sections = []
    for part, title in (("test", "test"), ("val", "validation")):
        per_label = metrics.get(part, {}).get("per_label")
        if per_label:
            sections.append(f"**{title}**\n\n" + per_label_markdown(per_label))
    return "\n\n".join(sections)


def per_label_markdown(per_label: dict[str, dict[str, Any]]) -> str:
    """One Markdown table; a metric that is None (a label with no positive or no negative) shows as 'n/a'."""
    lines = ["| label | AUROC | PR-AUC | F1 | threshold | support |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, values in per_label.items():
        numbers = ["n/a" if values[key] is None else f"{values[key]:.4f}" for key in ("auroc", "pr_auc", "f1", "threshold")]
        cells = [name.replace("|", "\\|"), *numbers, str(values["support"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


def label_cells(labels: np.ndarray, label_names: list[str]) -> list[str]:
    """Each row's label as the metadata shows it: the class's name for class ids, or for a 0/1 indicator matrix the
    row's labels joined by ',' (NO_LABELS for none)."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return [label_names[int(label)] for label in labels]
    return [",".join(name for name, present in zip(label_names, row) if present) or NO_LABELS for row in labels]


def predicted_labels(probabilities: np.ndarray, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """The most probable class's id per row or, given each label's threshold, a 0/1 matrix: probability >= threshold."""
    if thresholds is None:
        return probabilities.argmax(axis=1)
    return (probabilities >= np.asarray(thresholds, dtype=probabilities.dtype)[None, :]).astype(np.int8)


def target_cells(targets: np.ndarray) -> list[str]:
    """A regression's true values as the metadata shows them: the shortest text that reads back as the same number
    of the array's type ('4' for 4.0, '3.5')."""
    return [np.format_float_positional(value, trim="-") for value in np.asarray(targets).reshape(-1)]


def prediction_cells(predictions: np.ndarray) -> list[str]:
    """A regression's predictions as the metadata shows them: rounded to PREDICTION_DECIMALS ('3.50'; never '-0.00')."""
    return [f"{round(float(value), PREDICTION_DECIMALS) + 0.0:.{PREDICTION_DECIMALS}f}"
            for value in np.asarray(predictions).reshape(-1)]


def metadata_tsv(texts: list[str], labels: np.ndarray, label_names: list[str], split_names: list[str],
                 predicted: np.ndarray | None = None) -> str:
    """The projector's metadata: a header row (needed with more than one column), then one row per point.
    `labels` and `predicted` hold class ids, or 0/1 indicator matrices for several labels per text."""
    return metadata_table(texts, label_cells(labels, label_names), split_names,
                          label_cells(predicted, label_names) if predicted is not None else None)


def metadata_table(texts: list[str], label_column: list[str], split_names: list[str],
                   predicted_column: list[str] | None = None) -> str:
    """metadata_tsv from each row's label and prediction already written out (label_cells, target_cells, ...)."""
    columns = ["label"] + (["predicted"] if predicted_column is not None else []) + ["split", "text"]
    lines = ["\t".join(columns)]
    for index, text in enumerate(texts):
        row = [metadata_field(label_column[index])]
        if predicted_column is not None:
            row.append(metadata_field(predicted_column[index]))
        row += [split_names[index], metadata_field(text)]
        lines.append("\t".join(row))
    return "\n".join(lines) + "\n"


def write_projector(folder: Path, splits: Splits, split_features: dict[str, np.ndarray], label_names: list[str], *,
                    predict: Callable[[np.ndarray], np.ndarray] | None = None, seed: int = 0,
                    max_rows: int = MAX_PROJECTOR_ROWS, thresholds: Sequence[float] | None = None,
                    regression: bool = False) -> None:
    """The projector's embedding, metadata and config in `folder`; `thresholds` (one per label) for a multi-label
    run, whose predicted labels are those at or above them; `regression` for a run whose labels are numbers and
    whose `predict` returns them."""
    import tensorflow as tf
    from tensorboard.plugins import projector

    features, texts, labels, split_names = projector_sample(splits, split_features, max_rows=max_rows, seed=seed)
    if regression:
        metadata = metadata_table(texts, target_cells(labels), split_names,
                                  prediction_cells(predict(features)) if predict is not None else None)
    else:
        predicted = predicted_labels(predict(features), thresholds) if predict is not None else None
        metadata = metadata_tsv(texts, labels, label_names, split_names, predicted)
    (folder / PROJECTOR_METADATA).write_text(metadata, encoding="utf-8")
    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(features, trainable=False))
    checkpoint.save(str(folder / PROJECTOR_CHECKPOINT_PREFIX))
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = PROJECTOR_TENSOR_NAME
    embedding.metadata_path = PROJECTOR_METADATA  # relative to this config file, so the folder can move
    projector.visualize_embeddings(str(folder), config)
