"""Classification metrics, the same for the head's epochs, the test set and the probe; no TensorFlow.

For two classes AUROC and PR-AUC score the positive (last) class; for more, they are one-vs-rest
macro averages over the classes present, and F1 is the macro average.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    classification_report,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)


def macro_auroc(labels: np.ndarray, probabilities: np.ndarray, num_classes: int) -> float:
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")  # AUROC is undefined with one class; never crash a training run for it
    if num_classes == 2:
        return float(roc_auc_score(labels, probabilities[:, -1]))
    scores = [roc_auc_score(labels == k, probabilities[:, k]) for k in present]
    return float(np.mean(scores))


def macro_pr_auc(labels: np.ndarray, probabilities: np.ndarray, num_classes: int) -> float:
    if num_classes == 2:
        return float(average_precision_score(labels, probabilities[:, -1]))
    scores = [average_precision_score(labels == k, probabilities[:, k]) for k in np.unique(labels)]
    return float(np.mean(scores))


def ranking_metrics(labels: np.ndarray, probabilities: np.ndarray, num_classes: int) -> tuple[float, float]:
    """(macro_auroc, macro_pr_auc) of the same arguments, to the last bit, from one sort of each scored column;
    for an indicator matrix `labels` (several labels per text), the means over the labels with both values.

    A head's every epoch scores its training and validation outputs, and scikit-learn sorts each column twice and
    checks its inputs at each call, several times the cost of counting both from one sort (measured:
    docs/benchmarks-history.md#the-statistics-counted-once-each-step-gathering-its-own-rows-2026-12-04); tested
    equal on random columns with and without ties. Fewer than two classes present gives what macro_auroc and
    macro_pr_auc give; a NaN or infinite output (a diverged head) raises scikit-learn's own error, as
    scikit-learn's functions do."""
    if labels.ndim == 2:  # several labels per text: each label's column on its own, those with both values
        columns = [(labels[:, label].astype(bool), probabilities[:, label]) for label in range(labels.shape[1])
                   if 0 < labels[:, label].sum() < len(labels)]
        if not columns:
            return float("nan"), float("nan")
        scores = [_column_auroc_and_precision(positive, column) for positive, column in columns]
        return float(np.mean([auroc for auroc, _ in scores])), float(np.mean([precision for _, precision in scores]))
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan"), macro_pr_auc(labels, probabilities, num_classes)
    columns = [(labels == present[-1], probabilities[:, -1])] if num_classes == 2 else \
        [(labels == k, probabilities[:, k]) for k in present]
    scores = [_column_auroc_and_precision(positive, column) for positive, column in columns]
    return float(np.mean([auroc for auroc, _ in scores])), float(np.mean([precision for _, precision in scores]))


def _column_auroc_and_precision(positive: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """roc_auc_score and average_precision_score of one column, counted as scikit-learn counts them (the same
    operations in the same order, so the same bits): true and false positives at each distinct score, highest
    first; the ROC curve without its collinear points, integrated by the trapezoid rule; average precision as the
    precision-weighted sum of the recall's steps. Both a positive and a negative row are needed (ranking_metrics
    sees to it)."""
    if not np.isfinite(scores).all():  # scikit-learn checks its input and says what is wrong
        return float(roc_auc_score(positive, scores)), float(average_precision_score(positive, scores))
    order = np.argsort(scores, kind="mergesort")[::-1]
    ordered = scores[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]
    true_positives = np.cumsum(positive[order], dtype=np.float64)[last_of_each_score]
    false_positives = last_of_each_score + 1 - true_positives
    roc_points: slice | np.ndarray = slice(None)
    if len(false_positives) > 2:  # only the corners of the ROC curve, as scikit-learn keeps them
        roc_points = np.flatnonzero(np.r_[True, np.logical_or(np.diff(false_positives, 2),
                                                              np.diff(true_positives, 2)), True])
    roc_true, roc_false = true_positives[roc_points], false_positives[roc_points]
    auroc = np.trapezoid(np.r_[0.0, roc_true] / roc_true[-1], np.r_[0.0, roc_false] / roc_false[-1])
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / true_positives[-1]
    average_precision = -np.sum(np.diff(np.r_[recall[::-1], 0.0]) * precision[::-1])
    return float(auroc), float(average_precision)


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, num_classes: int) -> dict[str, Any]:
    """accuracy, AUROC (one-vs-rest macro for K > 2), PR-AUC, F1 (binary, or macro for K > 2), confusion matrix."""
    predictions = probabilities.argmax(axis=1)
    f1_average = "binary" if num_classes == 2 else "macro"
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "auroc": _finite_or_none(macro_auroc(labels, probabilities, num_classes)),
        "pr_auc": _finite_or_none(macro_pr_auc(labels, probabilities, num_classes)),
        "f1": float(f1_score(labels, predictions, average=f1_average, zero_division=0)),
        "confusion_matrix": confusion_matrix(labels, predictions, labels=list(range(num_classes))).tolist(),
        "rows": int(len(labels)),
    }


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def report_text(labels: np.ndarray, probabilities: np.ndarray, label_names: list[str]) -> str:
    report: str = classification_report(
        labels, probabilities.argmax(axis=1), labels=list(range(len(label_names))),
        target_names=label_names, digits=4, zero_division=0,
    )
    return report
