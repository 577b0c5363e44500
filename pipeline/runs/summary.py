"""The lines a user reads at the end of a run: the test metrics of the head and the probe, the features, the
precision and why, the head's training, where the run folder is and how to open it in TensorBoard. The command
line prints them; the Python API's `TextClassifier.summary` returns them."""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.base.config import AUTO
from pipeline.data.targets import MULTI_LABEL, REGRESSION
from pipeline.evaluation.multi_label import weakest_labels
from pipeline.features import long_texts as long_texts_module
from pipeline.runs.run import RunResult

MULTI_LABEL_COLUMNS = ("macro_auroc", "micro_auroc", "macro_f1", "micro_f1")  # what a multi-label summary shows
REGRESSION_COLUMNS = ("rmse", "mae", "r2", "spearman")  # what a regression's summary shows


def regression_columns(head: dict) -> tuple[str, ...]:
    """A number's summary columns; the rounded prediction's accuracy too for a target of few whole values."""
    return REGRESSION_COLUMNS + (("rounded_accuracy",) if head.get("rounded_accuracy") is not None else ())


def summary_table(result: RunResult) -> str:
    """The lines a user reads at the end of a run."""
    metrics, run_dir = result.metrics, result.run_dir
    head, baseline, features = metrics["test"], metrics["baseline"]["test"], metrics["features"]

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    fine_tuned = metrics.get("mode") == "fine-tune"
    kind = metrics.get("target", {}).get("kind")
    probe = "ridge regression" if kind == REGRESSION else "logistic regression"
    labels = (("fine-tuned encoder + head", f"baseline ({probe}, frozen features)") if fine_tuned
              else ("head", f"baseline ({probe})"))
    multi_label = kind == MULTI_LABEL
    keys = MULTI_LABEL_COLUMNS if multi_label else regression_columns(head) if kind == REGRESSION \
        else ("accuracy", "auroc", "pr_auc", "f1")
    rows: list[tuple[str, ...]] = [("", *keys)]
    for label, values in zip(labels, (head, baseline)):
        rows.append((label, *(number(values.get(key)) for key in keys)))
    width = max(len(row[0]) for row in rows)
    cell_widths = [max(10, len(key) + 2) for key in keys]
    lines = [f"Test set ({head['rows']} texts" + (f", {len(metrics['labels'])} labels" if multi_label else "") + "):"]
    lines += ["  " + row[0].ljust(width) + "".join(cell.rjust(cell_width) for cell, cell_width in zip(row[1:], cell_widths))
              for row in rows]
    if multi_label:
        weakest = weakest_labels(head)
        if weakest:
            lines.append("Weakest labels (test AUROC): " + ", ".join(f"{name} {auroc:.4f}" for name, auroc in weakest))
    precision = metrics.get("precision", {}).get("used", "float32")
    if "long_texts" in features:  # runs from before long texts were counted do not have it
        chosen = str(metrics["config"].get("max_seq_length_chosen") or "")
        lines.append(long_texts_module.summary_line(features["long_texts"])
                     + (f" (max_seq_length {metrics['config']['max_seq_length']}, {chosen})" if chosen.startswith(AUTO) else ""))
    lines.append(
        f"Features: {features['texts']} texts in {features['seconds']:.1f} s "
        f"({features['texts_per_second']:.0f} texts/s, {precision}), cache {'hit' if features['cache_hit'] else 'miss'}"
        + (f", reused {features['reused_shards']} verified shard(s) from an earlier attempt"
           if features.get("reused_shards") else "")
    )
    why = metrics.get("precision", {}).get("why")
    if why:  # runs from before --precision existed have no reason
        lines.append(f"Precision: {precision} ({why})")
    training = metrics.get("training", {})
    if not fine_tuned and training.get("epochs_run"):  # a probe picked by a sweep has no epochs
        ensemble = metrics["config"].get("ensemble") or 1
        lines.append(f"Head: {metrics['config']['head']}" + (f", {ensemble} heads averaged" if ensemble > 1 else "")
                     + f", {training['epochs_run']} epochs in {training['seconds']:.1f} s")
    if fine_tuned:
        training, details = metrics["training"], metrics["fine_tune"]
        lines.append(f"Fine-tuning: {training['epochs_run']} epoch(s), best {details['best_epoch']}, "
                     f"{training['texts_per_second']:.0f} texts/s, {training['seconds']:.0f} s"
                     + (f" (resumed after epoch {details['resumed_after_epoch']})" if details["resumed_after_epoch"] else ""))
    lines.append(f"Run folder: {run_dir}")
    lines.append(f"TensorBoard: {tensorboard_command(run_dir)}")
    return "\n".join(lines)


def tensorboard_command(run_dir: Path) -> str:
    beside_python = Path(sys.executable).parent / "tensorboard"
    program = str(beside_python) if beside_python.exists() else "tensorboard"
    return f"{program} --logdir {run_dir} --host 127.0.0.1"

