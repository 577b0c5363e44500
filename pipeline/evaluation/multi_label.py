"""Several labels per text: each label's decision threshold, chosen on the validation split to maximise its F1, and
the metrics of a multi-label run (macro and micro AUROC and F1, subset accuracy, Hamming loss, and each label's
AUROC, PR-AUC, F1, threshold and support). No TensorFlow.

AUROC and PR-AUC rank each label's column on its own (pipeline.evaluation.metrics counts both from one sort);
micro AUROC ranks all cells of the matrix together. A label with no positive (or no negative) among the rows has
no AUROC: it is None in `per_label` and left out of the macro mean, which then says over how many labels it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import classification_report, f1_score, hamming_loss, roc_auc_score

from pipeline.evaluation.metrics import ranking_metrics

DEFAULT_THRESHOLD = 0.5  # a label with no positive in the validation split keeps it


def best_thresholds(indicators: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per label, the threshold that maximises F1 on these rows (the validation split): the midpoint between the
    probability of the last row predicted positive and the next one down, so rows between them fall where they did;
    ties go to the higher threshold. A label with no positive keeps DEFAULT_THRESHOLD."""
    thresholds = np.full(indicators.shape[1], DEFAULT_THRESHOLD)
    for label in range(indicators.shape[1]):
        positive = indicators[:, label].astype(bool)
        if not positive.any():
            continue
        order = np.argsort(-probabilities[:, label], kind="mergesort")
        scores, hits = probabilities[order, label], positive[order]
        true_positives = np.cumsum(hits)
        predicted = np.arange(1, len(scores) + 1)
        f1 = 2 * true_positives / (predicted + positive.sum())
        distinct = np.r_[scores[1:] < scores[:-1], True]  # a cut only where the next score is lower
        best = int(np.flatnonzero(distinct)[np.argmax(f1[distinct])])
        below = scores[best + 1] if best + 1 < len(scores) else 0.0
        thresholds[label] = float((scores[best] + below) / 2)
    return thresholds


def multi_label_metrics(indicators: np.ndarray, probabilities: np.ndarray, thresholds: Sequence[float] | np.ndarray,
                        names: Sequence[str]) -> dict[str, Any]:
    """The metrics a multi-label run records for one split, the predictions being probability >= threshold."""
    indicators = indicators.astype(bool)
    predicted = probabilities >= np.asarray(thresholds, dtype=probabilities.dtype)[None, :]
    per_label = {}
    for index, name in enumerate(names):
        column = indicators[:, index]
        scorable = 0 < column.sum() < len(column)
        auroc, pr_auc = ranking_metrics(column.astype(np.int64), _two_columns(probabilities[:, index]), 2) \
            if scorable else (float("nan"), float("nan"))
        per_label[name] = {
            "auroc": _finite_or_none(auroc), "pr_auc": _finite_or_none(pr_auc),
            "f1": float(f1_score(column, predicted[:, index], zero_division=0)),
            "threshold": float(thresholds[index]), "support": int(column.sum()),
        }
    scored = [values["auroc"] for values in per_label.values() if values["auroc"] is not None]
    flat_truth, flat_scores = indicators.ravel(), probabilities.ravel()
    micro_auroc = roc_auc_score(flat_truth, flat_scores) if 0 < flat_truth.sum() < len(flat_truth) else float("nan")
    return {
        "macro_auroc": float(np.mean(scored)) if scored else None,
        "macro_auroc_labels": len(scored),
        "micro_auroc": _finite_or_none(float(micro_auroc)),
        "macro_f1": float(f1_score(indicators, predicted, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(indicators, predicted, average="micro", zero_division=0)),
        "subset_accuracy": float(np.mean((indicators == predicted).all(axis=1))),
        "hamming_loss": float(hamming_loss(indicators, predicted)),
        "per_label": per_label,
        "rows": int(len(indicators)),
    }


def multi_label_report(indicators: np.ndarray, probabilities: np.ndarray, thresholds: Sequence[float] | np.ndarray,
                       names: Sequence[str]) -> str:
    """scikit-learn's classification report of each label's predictions (probability >= its threshold)."""
    predicted = (probabilities >= np.asarray(thresholds, dtype=probabilities.dtype)[None, :]).astype(np.int8)
    report: str = classification_report(indicators, predicted, target_names=list(names), digits=4, zero_division=0)
    return report


def weakest_labels(metrics: dict[str, Any], count: int = 3) -> list[tuple[str, float]]:
    """The labels with the lowest test AUROC, lowest first: what a run summary names."""
    scored = [(name, values["auroc"]) for name, values in metrics["per_label"].items() if values["auroc"] is not None]
    return sorted(scored, key=lambda pair: pair[1])[:count]


def _two_columns(column: np.ndarray) -> np.ndarray:
    return np.stack([1 - column, column], axis=1)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
