"""How a run's predictions are scored, asked of its target: classes by accuracy, AUROC, PR-AUC and F1; several
labels per text by macro and micro AUROC and F1 at each label's threshold, chosen here on the validation split; a
number by RMSE, MAE, R^2 and the correlations. One function for the run (and the sweep's pick) to call."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.data.targets import Target
from pipeline.evaluation.metrics import classification_metrics, report_text
from pipeline.evaluation.multi_label import best_thresholds, multi_label_metrics, multi_label_report
from pipeline.evaluation.probe import PROBE_DESCRIPTION
from pipeline.evaluation.regression import RIDGE_DESCRIPTION, regression_metrics, regression_report


def scored_splits(target: Target, validation: tuple[np.ndarray, np.ndarray],
                  test: tuple[np.ndarray, np.ndarray]) -> tuple[Target, dict[str, Any], dict[str, Any], str]:
    """(the target with what the validation split chooses: each label's threshold; the test metrics; the validation
    metrics; the test split's report) of (labels, model outputs) of the validation and test splits."""
    names = list(target.names)
    if target.regression:
        levels = None if target.levels is None else np.asarray(target.levels)
        test_metrics, val_metrics = (regression_metrics(labels, outputs[:, 0], levels) for labels, outputs in (test, validation))
        return target, test_metrics, val_metrics, regression_report(test_metrics)
    if target.multi_label:
        target = target.with_thresholds(best_thresholds(*validation))
        thresholds = target.thresholds or ()
        test_metrics, val_metrics = (multi_label_metrics(labels, outputs, thresholds, names)
                                     for labels, outputs in (test, validation))
        return target, test_metrics, val_metrics, multi_label_report(*test, thresholds, names)
    test_metrics, val_metrics = (classification_metrics(labels, outputs, len(names)) for labels, outputs in (test, validation))
    return target, test_metrics, val_metrics, report_text(*test, names)


def probe_description(target: Target) -> str:
    """What the baseline beside the head is, for metrics.json."""
    return RIDGE_DESCRIPTION if target.regression else PROBE_DESCRIPTION
