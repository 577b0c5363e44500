"""Numeric targets (issue 40): the regression metrics against scikit-learn's and SciPy's own functions, the rounded
accuracy of a target of a few whole values counted by hand, and the ridge probe: the alpha it keeps is the
validation-best of a brute-force loop, and on noisy linear data it explains most of the variance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.preprocessing import StandardScaler

from pipeline.data.targets import MAX_WHOLE_VALUE_LEVELS, whole_value_levels
from pipeline.evaluation import regression
from pipeline.evaluation.regression import (
    RIDGE_ALPHAS,
    nearest_levels,
    regression_metrics,
    ridge_baseline,
)

STARS = np.array([1, 2, 3, 4, 5, 5, 4, 1], np.float32)
PREDICTED_STARS = np.array([1.4, 2.5, 2.2, 4.6, 6.3, 4.49, 3.51, -0.7], np.float32)


# ============================================================================ metrics

def test_metrics_equal_scikit_learns_and_scipys():
    generator = np.random.default_rng(0)
    targets = generator.normal(3.0, 2.0, 200)
    predictions = targets + generator.normal(0.0, 1.0, 200)
    metrics = regression_metrics(targets.astype(np.float32), predictions.astype(np.float32)[:, None])
    targets, predictions = targets.astype(np.float32), predictions.astype(np.float32)  # the arrays the metrics saw
    assert metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(targets, predictions)), rel=1e-6)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(targets, predictions), rel=1e-6)
    assert metrics["r2"] == pytest.approx(r2_score(targets, predictions), rel=1e-6)
    assert metrics["spearman"] == pytest.approx(spearmanr(targets, predictions)[0], rel=1e-9)
    assert metrics["pearson"] == pytest.approx(pearsonr(targets, predictions)[0], rel=1e-6)
    assert metrics["rows"] == 200 and "rounded_accuracy" not in metrics
    assert 0.5 < metrics["r2"] < 0.9 and metrics["rmse"] > metrics["mae"] > 0.5  # the data are not trivial
    assert all(type(value) in (float, int) for value in metrics.values())  # plain numbers, for metrics.json


def test_undefined_metrics_are_none():
    constant_predictions = regression_metrics(STARS, np.full(len(STARS), 3.0))
    assert constant_predictions["spearman"] is None and constant_predictions["pearson"] is None
    assert constant_predictions["r2"] == pytest.approx(r2_score(STARS, np.full(len(STARS), 3.0)))
    assert constant_predictions["rmse"] == pytest.approx(np.sqrt(np.mean((STARS - 3.0) ** 2)))
    constant_targets = regression_metrics(np.full(4, 2.0), np.array([1.0, 2.0, 3.0, 2.5]))
    assert constant_targets["r2"] is None and constant_targets["spearman"] is None
    assert constant_targets["pearson"] is None and constant_targets["mae"] == pytest.approx(0.625)
    one_row = regression_metrics(np.array([2.0]), np.array([2.5]))
    assert one_row["spearman"] is None and one_row["r2"] is None and one_row["rmse"] == pytest.approx(0.5)


def test_predictions_that_do_not_fit_the_targets_or_are_not_finite_are_refused():
    with pytest.raises(ValueError, match="one prediction per target"):
        regression_metrics(STARS, PREDICTED_STARS[:-1])
    with pytest.raises(ValueError, match="one prediction per target"):
        regression_metrics(STARS, np.column_stack([PREDICTED_STARS, PREDICTED_STARS]))
    with pytest.raises(ValueError, match="finite"):
        regression_metrics(STARS, np.where(np.arange(len(STARS)) == 3, np.nan, PREDICTED_STARS))


# ============================================================================ a few whole values: rounded accuracy

def test_whole_value_levels_are_a_few_distinct_whole_numbers():
    assert whole_value_levels(STARS).tolist() == [1, 2, 3, 4, 5]
    assert whole_value_levels(np.array([0, 10, 10, 0, 5.0])).tolist() == [0, 5, 10]
    assert whole_value_levels(np.arange(MAX_WHOLE_VALUE_LEVELS, dtype=np.float32)) is not None
    assert whole_value_levels(np.arange(MAX_WHOLE_VALUE_LEVELS + 1, dtype=np.float32)) is None
    assert whole_value_levels(np.array([1.0, 2.0, 3.5])) is None  # not whole
    assert whole_value_levels(np.array([4.0, 4.0, 4.0])) is None  # one value: nothing to round between
    assert whole_value_levels(np.array([1.0, np.nan])) is None


def test_rounded_accuracy_counted_by_hand():
    # Nearest of 1..5, halfway going up, clipped to 1..5:  1.4->1 (1 yes), 2.5->3 (2 no), 2.2->2 (3 no), 4.6->5 (4 no),
    # 6.3->5 (5 yes), 4.49->4 (5 no), 3.51->4 (4 yes), -0.7->1 (1 yes): 4 of 8.
    assert nearest_levels(PREDICTED_STARS, whole_value_levels(STARS)).tolist() == [1, 3, 2, 5, 5, 4, 4, 1]
    metrics = regression_metrics(STARS, PREDICTED_STARS, levels=whole_value_levels(STARS))
    assert metrics["rounded_accuracy"] == pytest.approx(4 / 8)


def test_rounded_accuracy_rounds_to_the_training_levels_not_to_every_whole_number():
    levels = np.array([0.0, 5.0, 10.0])  # e.g. a 0/5/10 grade seen in training
    targets = np.array([0.0, 5.0, 10.0, 5.0])
    predictions = np.array([2.4, 6.0, 7.6, 2.5])  # -> 0, 5, 10, 5 (2.5 is halfway: up)
    assert regression_metrics(targets, predictions, levels)["rounded_accuracy"] == pytest.approx(1.0)
    assert regression_metrics(targets, predictions)["rmse"] > 0  # and without levels, no rounded accuracy:
    assert "rounded_accuracy" not in regression_metrics(targets, predictions)
    unseen = regression_metrics(np.array([6.0, 5.0]), np.array([6.0, 5.0]), levels)  # 6 was never a training level
    assert unseen["rounded_accuracy"] == pytest.approx(0.5)


# ============================================================================ the ridge probe

def linear_data(rows, *, columns=20, noise=0.3, seed=0):
    """Features and a target that is a linear function of them plus Gaussian noise, off-centre and scaled."""
    generator = np.random.default_rng(seed)
    features = generator.normal(0.0, 1.0, (rows, columns)) * generator.uniform(0.5, 3.0, columns) + 7.0
    weights = generator.normal(0.0, 1.0, columns)
    targets = 40.0 + 5.0 * (features @ weights) + generator.normal(0.0, noise * 5.0 * np.std(features @ weights), rows)
    return features.astype(np.float32), targets.astype(np.float32)


def split_three_ways(features, targets, sizes):
    edges = np.cumsum([0, *sizes])
    return [(features[start:end], targets[start:end]) for start, end in zip(edges[:-1], edges[1:])]


def test_ridge_probe_explains_most_of_the_variance_of_noisy_linear_data():
    # The noise's spread is a fifth of the signal's, so the best possible R² is 1 / 1.04, about 0.96.
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = split_three_ways(*linear_data(600, noise=0.2), (400, 100, 100))
    metrics, alpha = ridge_baseline(train_x, train_y, val_x, val_y, test_x, test_y)
    assert metrics["r2"] > 0.9 and metrics["spearman"] > 0.9 and metrics["rows"] == 100
    assert alpha in RIDGE_ALPHAS and metrics["alpha"] == alpha and metrics["val_rmse"] > 0
    assert ridge_baseline(train_x, train_y, val_x, val_y, test_x, test_y) == (metrics, alpha)  # deterministic


def brute_force_validation_rmses(train_x, train_y, val_x, val_y, bounds):
    """{alpha: validation RMSE} by hand: scale on train, Ridge on the standardised target, back to units, clip to
    `bounds` if any."""
    scaler = StandardScaler().fit(train_x.astype(np.float64))
    train_y = train_y.astype(np.float64)
    mean, deviation = train_y.mean(), train_y.std()
    rmses = {}
    for alpha in (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0):
        model = Ridge(alpha=alpha).fit(scaler.transform(train_x.astype(np.float64)), (train_y - mean) / deviation)
        predicted = model.predict(scaler.transform(val_x.astype(np.float64))) * deviation + mean
        if bounds is not None:
            predicted = np.clip(predicted, *bounds)
        rmses[alpha] = float(np.sqrt(mean_squared_error(val_y.astype(np.float64), predicted)))
    return rmses


@pytest.mark.parametrize("rows, columns, noise, clipped", [(60, 40, 1.0, True), (80, 200, 2.0, False),
                                                           (300, 10, 0.1, False), (300, 10, 0.1, True)])
def test_ridge_probe_keeps_the_alpha_with_the_lowest_validation_rmse(rows, columns, noise, clipped):
    features, targets = linear_data(rows + 80, columns=columns, noise=noise, seed=rows)
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = split_three_ways(features, targets, (rows, 40, 40))
    bounds = (float(train_y.min()), float(train_y.max())) if clipped else None
    rmses = brute_force_validation_rmses(train_x, train_y, val_x, val_y, bounds)
    assert sorted(rmses) == RIDGE_ALPHAS.tolist()
    expected = min(rmses, key=rmses.get)
    metrics, alpha = ridge_baseline(train_x, train_y, val_x, val_y, test_x, test_y, bounds=bounds)
    assert alpha == expected and metrics["val_rmse"] == pytest.approx(rmses[expected], rel=1e-6)


def test_ridge_probe_chooses_differently_when_the_data_ask_for_it():
    """The choice is made, not fixed: little noise and many rows want a weak alpha, pure noise the strongest."""
    features, targets = linear_data(700, columns=10, noise=0.01, seed=1)
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = split_three_ways(features, targets, (500, 100, 100))
    _, weak = ridge_baseline(train_x, train_y, val_x, val_y, test_x, test_y)
    noise = np.random.default_rng(2).normal(size=700).astype(np.float32)
    (_, train_noise), (_, val_noise), (_, test_noise) = split_three_ways(features, noise, (500, 100, 100))
    _, strong = ridge_baseline(train_x, train_noise, val_x, val_noise, test_x, test_noise)
    assert weak < 10 and strong == RIDGE_ALPHAS.max()


def test_ridge_probe_ties_go_to_the_stronger_alpha(monkeypatch):
    calls = []

    def same_rmse_for_every_alpha(targets, predictions, levels=None):
        calls.append(levels)
        return {"rmse": 1.0}

    features, targets = linear_data(30, columns=3)
    monkeypatch.setattr(regression, "regression_metrics", same_rmse_for_every_alpha)
    metrics, alpha = ridge_baseline(features[:10], targets[:10], features[10:20], targets[10:20], features[20:],
                                    targets[20:], levels=np.array([1.0, 2.0]))
    assert alpha == RIDGE_ALPHAS.max() and len(calls) == len(RIDGE_ALPHAS) + 1
    assert calls[-1].tolist() == [1.0, 2.0] and calls[0] is None  # only the test metrics get the levels


def test_ridge_probe_predicts_within_its_bounds_and_scores_rounded_stars():
    generator = np.random.default_rng(5)
    features = generator.normal(size=(300, 8)).astype(np.float32)
    stars = np.clip(np.round(3 + 1.5 * features[:, 0] + generator.normal(0, 0.3, 300)), 1, 5).astype(np.float32)
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = split_three_ways(features, stars, (200, 50, 50))
    levels = whole_value_levels(train_y)
    clipped, _ = ridge_baseline(train_x, train_y, val_x, val_y, test_x, test_y, levels=levels, bounds=(1.0, 5.0))
    unclipped, _ = ridge_baseline(train_x, train_y, val_x, val_y, test_x, test_y, levels=levels)
    assert levels.tolist() == [1, 2, 3, 4, 5] and clipped["rounded_accuracy"] > 0.5
    assert clipped["rmse"] < unclipped["rmse"]  # the straight line overshoots the stars' ends


def test_the_report_lists_each_metric_with_n_a_for_none():
    report = regression.regression_report({"rmse": 0.51234, "r2": None, "rows": 8, "rounded_accuracy": 0.5})
    assert [line.split() for line in report.splitlines()] == [["rmse", "0.5123"], ["r2", "n/a"], ["rows", "8"],
                                                              ["rounded_accuracy", "0.5000"]]


def test_a_constant_training_target_is_refused():
    features, _ = linear_data(30, columns=3)
    with pytest.raises(ValueError, match="not constant"):
        ridge_baseline(features[:10], np.ones(10), features[10:20], np.ones(10), features[20:], np.ones(10))
