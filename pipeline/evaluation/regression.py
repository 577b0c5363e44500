"""Numeric targets (regression): the metrics of predicted numbers, the same for the head, the test set and the probe,
and the probe itself, ridge regression on the same standardised features with its strength chosen on validation.
No TensorFlow here.

Metrics: RMSE and MAE in the target's own units, R², Spearman's and Pearson's correlations, each None where it is
undefined (a constant target or constant predictions), and for a target of a few whole values (1-5 stars) the share
of predictions that, rounded to the nearest of those values, equal the target (`rounded_accuracy`). Which values
count is decided on the training split (`pipeline.data.targets.whole_value_levels`) and passed in, so every split and the probe are
scored against the same levels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

# A target is "a few whole values" (stars, grades) when it takes at least 2 and at most this many distinct values,
# each a whole number; more distinct values read as a scale, where a rounded prediction's accuracy means little.
# The ridge probe's strengths, on standardised features and a standardised target: 0.1, 1, ..., 100,000. The upper
# end matters for BERT features, which may outnumber the training rows (2,304 wide, a few thousand texts).
RIDGE_ALPHAS = 10.0 ** np.arange(-1, 6)
RIDGE_SOLVER = "cholesky"  # a closed form: the same coefficients every time for the same arrays
RIDGE_DESCRIPTION = "standardised features + ridge regression (alpha chosen on validation RMSE)"
REPORT_NAME_WIDTH, REPORT_VALUE_WIDTH = 18, 10  # regression_report's columns


# ============================================================================ levels of a target of a few whole values

def nearest_levels(predictions: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each prediction replaced by the nearest of `levels`; halfway between two goes to the higher one (3.5 -> 4
    for levels 1..5). Below the lowest level gives the lowest, above the highest the highest."""
    levels = np.unique(np.asarray(levels, dtype=np.float64))  # sorted, as the midpoints need
    midpoints = (levels[:-1] + levels[1:]) / 2
    return levels[np.searchsorted(midpoints, np.asarray(predictions, dtype=np.float64), side="right")]


def rounded_accuracy(targets: np.ndarray, predictions: np.ndarray, levels: np.ndarray) -> float:
    """The share of rows whose prediction, moved to the nearest level, equals the target."""
    targets = np.asarray(targets, dtype=np.float64).ravel()
    return float(np.mean(nearest_levels(np.asarray(predictions).ravel(), levels) == targets))


# ============================================================================ metrics

def regression_metrics(targets: np.ndarray, predictions: np.ndarray,
                       levels: np.ndarray | None = None) -> dict[str, Any]:
    """rmse, mae, r2, spearman, pearson (None where undefined) and rows of `predictions` against `targets`, both
    in the target's units (a [rows, 1] column is read as [rows]); with `levels` (pipeline.data.targets.whole_value_levels of the training
    targets) also rounded_accuracy. ValueError for shapes that differ or a prediction that is not finite."""
    targets, predictions = _as_columns(targets, predictions)
    errors = predictions - targets
    metrics: dict[str, Any] = {
        "rmse": float(np.sqrt(np.mean(errors ** 2))),
        "mae": float(np.mean(np.abs(errors))),
        "r2": coefficient_of_determination(targets, predictions),
        "spearman": correlation(spearmanr, targets, predictions),
        "pearson": correlation(pearsonr, targets, predictions),
        "rows": int(len(targets)),
    }
    if levels is not None:
        metrics["rounded_accuracy"] = rounded_accuracy(targets, predictions, levels)
    return metrics


def _as_columns(targets: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 vectors of the same length, checked: at least one row, all finite."""
    targets = np.asarray(targets, dtype=np.float64)
    predictions = np.asarray(predictions, dtype=np.float64)
    if predictions.ndim == 2 and predictions.shape[1] == 1:
        predictions = predictions[:, 0]
    if targets.ndim != 1 or predictions.shape != targets.shape or len(targets) == 0:
        raise ValueError(f"regression metrics need one prediction per target: targets {targets.shape}, "
                         f"predictions {predictions.shape}")
    if not (np.isfinite(predictions).all() and np.isfinite(targets).all()):
        raise ValueError("regression metrics need finite targets and predictions (a diverged head predicts NaN)")
    return targets, predictions


def coefficient_of_determination(targets: np.ndarray, predictions: np.ndarray) -> float | None:
    """R² = 1 - residual sum of squares / total sum of squares; None for a constant target, where it is undefined
    (scikit-learn's r2_score reports 0 or 1 there)."""
    total = float(np.sum((targets - targets.mean()) ** 2))
    if total == 0:
        return None
    return 1.0 - float(np.sum((targets - predictions) ** 2)) / total


def correlation(statistic: Any, targets: np.ndarray, predictions: np.ndarray) -> float | None:
    """scipy's spearmanr or pearsonr of the two; None when either side is constant or there are fewer than 2 rows,
    where a correlation is undefined."""
    if len(targets) < 2 or np.ptp(targets) == 0 or np.ptp(predictions) == 0:
        return None
    value = float(statistic(targets, predictions)[0])
    return value if np.isfinite(value) else None


def regression_report(metrics: dict[str, Any]) -> str:
    """The metrics of regression_metrics as a plain-text table, one per line ('n/a' where None), for report.txt and
    TensorBoard."""
    lines = []
    for key, value in metrics.items():
        shown = "n/a" if value is None else str(value) if isinstance(value, int) else f"{value:.4f}"
        lines.append(f"{key:<{REPORT_NAME_WIDTH}}{shown:>{REPORT_VALUE_WIDTH}}")
    return "\n".join(lines) + "\n"


# ============================================================================ the probe

def ridge_baseline(train_features: np.ndarray, train_targets: np.ndarray, val_features: np.ndarray,
                   val_targets: np.ndarray, test_features: np.ndarray, test_targets: np.ndarray, *,
                   levels: np.ndarray | None = None,
                   bounds: tuple[float, float] | None = None) -> tuple[dict[str, Any], float]:
    """(test metrics plus "alpha" and "val_rmse", the alpha) of the regression probe: features standardised on train,
    the target standardised by train's mean and standard deviation, one Ridge per strength in RIDGE_ALPHAS, the one
    with the lowest validation RMSE kept (a tie goes to the stronger). Predictions come back in the target's units,
    clipped to `bounds` (low, high) when given, as the head's are (the training targets' range unless the user lets
    predictions leave it); `levels` as for regression_metrics. ValueError for a constant training target."""
    train_targets = np.asarray(train_targets, dtype=np.float64).ravel()
    mean, deviation = float(train_targets.mean()), float(train_targets.std())
    if deviation == 0:
        raise ValueError("the ridge probe needs a training target that is not constant")
    scaler = StandardScaler().fit(np.asarray(train_features, dtype=np.float64))
    train, val, test = (scaler.transform(np.asarray(features, dtype=np.float64))
                        for features in (train_features, val_features, test_features))
    low, high = bounds if bounds is not None else (-np.inf, np.inf)

    def in_target_units(model: Ridge, standardised: np.ndarray) -> np.ndarray:
        return np.clip(model.predict(standardised) * deviation + mean, low, high)

    standardised_targets = (train_targets - mean) / deviation
    models = [Ridge(alpha=float(alpha), solver=RIDGE_SOLVER).fit(train, standardised_targets) for alpha in RIDGE_ALPHAS]
    val_rmses = [regression_metrics(val_targets, in_target_units(model, val))["rmse"] for model in models]
    best = min(range(len(models)), key=lambda index: (val_rmses[index], -RIDGE_ALPHAS[index]))  # a tie: the stronger
    metrics = regression_metrics(test_targets, in_target_units(models[best], test), levels)
    alpha = float(RIDGE_ALPHAS[best])
    return {**metrics, "alpha": alpha, "val_rmse": val_rmses[best]}, alpha
