"""A multi-label run's metrics and thresholds (pipeline.evaluation.multi_label), against scikit-learn's own
functions and a brute-force search, on random matrices with and without ties."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from pipeline.evaluation.multi_label import best_thresholds, multi_label_metrics, weakest_labels

NAMES = ["anger", "joy", "fear", "trust"]


def random_run(seed: int, rows: int = 300, ties: bool = False):
    generator = np.random.default_rng(seed)
    indicators = (generator.random((rows, len(NAMES))) < [0.5, 0.3, 0.1, 0.05]).astype(np.int8)
    probabilities = np.clip(0.35 * indicators + 0.65 * generator.random((rows, len(NAMES))), 0, 1).astype(np.float32)
    if ties:
        probabilities = np.round(probabilities, 1)
    return indicators, probabilities


@pytest.mark.parametrize("ties", [False, True])
def test_the_metrics_are_scikit_learns(ties):
    indicators, probabilities = random_run(0, ties=ties)
    thresholds = [0.3, 0.5, 0.6, 0.7]
    metrics = multi_label_metrics(indicators, probabilities, thresholds, NAMES)
    predicted = probabilities >= np.array(thresholds, np.float32)
    assert metrics["macro_auroc"] == pytest.approx(roc_auc_score(indicators, probabilities, average="macro"), abs=1e-12)
    assert metrics["micro_auroc"] == pytest.approx(roc_auc_score(indicators, probabilities, average="micro"), abs=1e-12)
    assert metrics["macro_f1"] == pytest.approx(f1_score(indicators, predicted, average="macro"))
    assert metrics["micro_f1"] == pytest.approx(f1_score(indicators, predicted, average="micro"))
    assert metrics["subset_accuracy"] == pytest.approx(np.mean((indicators == predicted).all(axis=1)))
    assert metrics["hamming_loss"] == pytest.approx(np.mean(indicators != predicted))
    for index, name in enumerate(NAMES):
        label = metrics["per_label"][name]
        assert label["pr_auc"] == pytest.approx(average_precision_score(indicators[:, index], probabilities[:, index]))
        assert (label["threshold"], label["support"]) == (thresholds[index], int(indicators[:, index].sum()))
    assert metrics["rows"] == 300 and metrics["macro_auroc_labels"] == 4


def test_a_label_without_positives_has_no_auroc_and_is_left_out_of_the_macro_mean():
    indicators, probabilities = random_run(1)
    indicators[:, 3] = 0
    metrics = multi_label_metrics(indicators, probabilities, [0.5] * 4, NAMES)
    assert metrics["per_label"]["trust"]["auroc"] is None and metrics["per_label"]["trust"]["pr_auc"] is None
    assert metrics["macro_auroc_labels"] == 3
    assert metrics["macro_auroc"] == pytest.approx(roc_auc_score(indicators[:, :3], probabilities[:, :3]))
    assert [name for name, _ in weakest_labels(metrics, 3)] == sorted(
        NAMES[:3], key=lambda name: metrics["per_label"][name]["auroc"])


@pytest.mark.parametrize("seed, ties", [(2, False), (3, True), (4, False)])
def test_each_threshold_gives_its_label_the_best_f1_any_threshold_gives_on_those_rows(seed, ties):
    indicators, probabilities = random_run(seed, rows=120, ties=ties)
    thresholds = best_thresholds(indicators, probabilities)
    for index in range(len(NAMES)):
        column, scores = indicators[:, index], probabilities[:, index]
        best_possible = max(f1_score(column, scores >= cut, zero_division=0) for cut in np.unique(scores))
        assert f1_score(column, scores >= thresholds[index], zero_division=0) == pytest.approx(best_possible)
        assert 0 <= thresholds[index] <= 1


def test_a_label_never_positive_in_validation_keeps_one_half():
    indicators, probabilities = random_run(5)
    indicators[:, 0] = 0
    assert best_thresholds(indicators, probabilities)[0] == 0.5
