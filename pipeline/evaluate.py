"""Test-set metrics for the head, and a logistic-regression baseline on the very same features."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.train import macro_auroc, macro_pr_auc


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, num_classes: int) -> dict:
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
    return classification_report(
        labels, probabilities.argmax(axis=1), labels=list(range(len(label_names))),
        target_names=label_names, digits=4, zero_division=0,
    )


def logistic_regression_baseline(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    *,
    num_classes: int,
    seed: int,
    class_weight: dict[int, float] | None = None,
) -> tuple[dict, np.ndarray]:
    """The simple probe the head must beat: standardised features -> logistic regression."""
    probe = make_pipeline(
        StandardScaler(),
        LogisticRegression(max_iter=2000, C=1.0, random_state=seed, class_weight=class_weight),
    )
    probe.fit(train_features, train_labels)
    probabilities = probe.predict_proba(test_features)
    return classification_metrics(test_labels, probabilities, num_classes), probabilities
