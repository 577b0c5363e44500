"""The logistic-regression probe: the simple baseline the head must beat, on the very same features."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.evaluation.metrics import classification_metrics

PROBE_DESCRIPTION = "standardised features + logistic regression"


def logistic_regression_baseline(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    *,
    num_classes: int,
    seed: int,
    class_weight: dict[int, float] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Test metrics and probabilities of standardised features -> logistic regression fitted on train."""
    probe = make_pipeline(
        StandardScaler(),
        LogisticRegression(max_iter=2000, C=1.0, random_state=seed, class_weight=class_weight),
    )
    probe.fit(train_features, train_labels)
    probabilities = probe.predict_proba(test_features)
    return classification_metrics(test_labels, probabilities, num_classes), probabilities
