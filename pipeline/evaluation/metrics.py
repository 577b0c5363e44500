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
