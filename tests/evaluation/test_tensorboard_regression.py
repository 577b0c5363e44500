"""TensorBoard's evaluation summaries of a regression run (issue 40): the predictions against the true values and the
residuals' histogram as images, RMSE, MAE, R², Spearman, Pearson and the rounded accuracy as scalars for the HParams
view (None left out), no confusion matrix, ROC, PR image or PR curve, and the projector's metadata holding the target
and the prediction rounded to 2 decimals. Tiny arrays, the event files read back with TensorBoard's
EventAccumulator, then the real `tensorboard` server on them for the HParams view.
"""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
from test_tensorboard import running_tensorboard
from test_tensorboard_multi_label import read_summaries, tags_of, text_of

from pipeline.data.targets import whole_value_levels
from pipeline.evaluation import plots
from pipeline.evaluation import tensorboard_logging as tb
from pipeline.evaluation.regression import regression_metrics, regression_report

COLUMN = "stars"
TRAIN_TARGETS = np.array([1, 2, 3, 4, 5], np.float32)
VALIDATION_TARGETS = np.array([2, 3.5, 5, 1], np.float32)
TEST_TARGETS = np.array([1, 4, 3, 5, 2, 4], np.float32)
TEST_PREDICTIONS = np.array([[1.3], [3.6], [3.2], [4.4], [2.9], [4.1]], np.float32)
VALIDATION_PREDICTIONS = np.full((4, 1), 3.0, np.float32)  # constant: no correlation is defined
CONFIG = {"encoder": "tiny-encoder", "pooling": "mean", "epochs": 3, "batch_size": 4, "seed": 7, "regression": True}
REGRESSION_SCALARS = ("rmse", "mae", "r2", "spearman", "pearson", "rounded_accuracy")


# ============================================================================ a tiny regression run's inputs

def _split(name, targets):
    return SimpleNamespace(texts=[f"{name} text {row}" for row in range(len(targets))], labels=targets)


def _features(rows):
    """Column 0 is +1 on even rows and -1 on odd ones: what the fake head's predictions follow."""
    sign = np.where(np.arange(rows) % 2 == 0, 1.0, -1.0)
    return np.column_stack([sign, np.arange(rows), np.ones(rows)]).astype(np.float32)


def _predict(features):
    """[rows, 1] in the target's units: 4.256 on even rows, -0.001 on odd ones (shown as 4.26 and 0.00)."""
    return np.where(features[:, :1] > 0, 4.256, -0.001).astype(np.float32)


def regression_inputs():
    splits = SimpleNamespace(train=_split("train", TRAIN_TARGETS), validation=_split("validation", VALIDATION_TARGETS),
                             test=_split("test", TEST_TARGETS))
    features = {name: _features(len(getattr(splits, name).texts)) for name in ("train", "validation", "test")}
    levels = whole_value_levels(TRAIN_TARGETS)
    metrics = {
        "test": regression_metrics(TEST_TARGETS, TEST_PREDICTIONS, levels),
        "val": regression_metrics(VALIDATION_TARGETS, VALIDATION_PREDICTIONS, levels),
        "labels": [COLUMN], "config": CONFIG, "training": {"epochs_run": 3},
        "target": {"kind": "regression", "names": [COLUMN], "thresholds": None, "scale": [3.0, 1.41],
                   "bounds": [1.0, 5.0], "levels": levels.tolist()},
    }
    return metrics, splits, features


@pytest.fixture(scope="module")
def regression_folder(tmp_path_factory):
    """logs/evaluation/ of a tiny regression run, written by write_run_summaries."""
    metrics, splits, features = regression_inputs()
    return tb.write_run_summaries(tmp_path_factory.mktemp("regression") / "logs", run_name="tiny-regression",
                                  metrics=metrics, report=regression_report(metrics["test"]), splits=splits,
                                  split_features=features, test_probabilities=TEST_PREDICTIONS, predict=_predict,
                                  seed=3)


@pytest.fixture(scope="module")
def regression_summaries(regression_folder):
    return read_summaries(regression_folder)


# ============================================================================ pieces

def test_final_scalars_of_a_regression_run_are_its_metrics_without_the_undefined_ones():
    metrics, _, _ = regression_inputs()
    scalars = tb.final_metric_scalars(metrics)
    assert metrics["val"]["spearman"] is None and metrics["val"]["pearson"] is None
    assert set(scalars) == ({f"test/{key}" for key in REGRESSION_SCALARS}
                            | {f"val/{key}" for key in ("rmse", "mae", "r2", "rounded_accuracy")})
    assert scalars["test/rmse"] == pytest.approx(metrics["test"]["rmse"])
    assert scalars["test/rounded_accuracy"] == pytest.approx(metrics["test"]["rounded_accuracy"])
    assert scalars["val/r2"] == pytest.approx(metrics["val"]["r2"])
    assert all(isinstance(value, float) for value in scalars.values())
    without_levels = {**metrics, "test": regression_metrics(TEST_TARGETS, TEST_PREDICTIONS)}
    assert "test/rounded_accuracy" not in tb.final_metric_scalars(without_levels)


def test_metadata_cells_show_the_target_as_written_and_the_prediction_to_two_decimals():
    assert tb.target_cells(np.array([4, 3.5, 1.25, 0, -2, 1e-3], np.float32)) == ["4", "3.5", "1.25", "0", "-2",
                                                                                    "0.001"]
    assert tb.target_cells(np.array([0.1, 12345678.0])) == ["0.1", "12345678"]
    assert tb.prediction_cells(np.array([[4.256], [3.5], [-0.001], [-1.004], [2.0]], np.float32)) == [
        "4.26", "3.50", "0.00", "-1.00", "2.00"]


def test_residuals_are_prediction_minus_target():
    assert plots.prediction_errors([1.0, 4.0, 3.0], np.array([[1.5], [3.0], [3.0]])).tolist() == [0.5, -1.0, 0.0]


def test_the_scatter_draws_each_test_row_against_its_target_with_the_line_y_equals_x():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    plots.draw_predicted_vs_true(ax, TEST_TARGETS, TEST_PREDICTIONS, name=COLUMN)
    [points] = ax.collections
    assert np.allclose(points.get_offsets(), np.column_stack([TEST_TARGETS, TEST_PREDICTIONS[:, 0]]))
    [diagonal] = ax.lines
    assert np.array_equal(diagonal.get_xdata(), diagonal.get_ydata())
    low, high = ax.get_xlim()
    assert ax.get_ylim() == (low, high) and low < 1.0 and high > 5.0  # equal ranges holding every point
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("true stars", "predicted stars")


def test_the_histogram_counts_every_residual_and_marks_zero():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    errors = plots.prediction_errors(TEST_TARGETS, TEST_PREDICTIONS)
    plots.draw_residuals(ax, errors)
    assert sum(bar.get_height() for bar in ax.patches) == len(TEST_TARGETS)
    assert [line.get_xdata()[0] for line in ax.lines] == [0.0, pytest.approx(errors.mean())]
    many = np.random.default_rng(0).standard_cauchy(5000)  # long tails would ask "auto" for hundreds of bins
    crowded = Figure().add_subplot()
    plots.draw_residuals(crowded, many)
    assert len(crowded.patches) <= plots.MAX_RESIDUAL_BINS
    constant = Figure().add_subplot()
    plots.draw_residuals(constant, np.zeros(4))
    assert sum(bar.get_height() for bar in constant.patches) == 4


def test_regression_images_are_two_pngs():
    from PIL import Image

    images = tb.regression_images(TEST_TARGETS, TEST_PREDICTIONS, name=COLUMN)
    assert set(images) == {"predicted_vs_true", "residuals"}
    for png in images.values():
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and len(image.getcolors(maxcolors=100_000)) > 20


# ============================================================================ the event file of a regression run

def test_images_of_a_regression_run_are_the_scatter_and_the_residuals_only(regression_summaries):
    assert tags_of(regression_summaries, "images") == {"predicted_vs_true", "residuals"}
    assert tags_of(regression_summaries, "pr_curves") == set()
    for tag in ("predicted_vs_true", "residuals"):
        width, height = (int(value) for value in regression_summaries[tag][1][:2])
        assert width > 200 and height > 200


def test_texts_of_a_regression_run_are_its_config_and_report(regression_summaries):
    assert tags_of(regression_summaries, "text") == {"config", "regression_report"}
    assert json.loads(text_of(regression_summaries, "config").replace("\n    ", "\n")) == CONFIG
    report = text_of(regression_summaries, "regression_report")
    metrics, _, _ = regression_inputs()
    assert [line.split() for line in report.splitlines()][:2] == [["rmse", f"{metrics['test']['rmse']:.4f}"],
                                                                  ["mae", f"{metrics['test']['mae']:.4f}"]]


def test_final_metrics_of_a_regression_run_are_scalars_for_the_hparams_view(regression_summaries):
    metrics, _, _ = regression_inputs()
    assert tags_of(regression_summaries, "scalars") == set(tb.final_metric_scalars(metrics))
    assert "test/rmse" in tags_of(regression_summaries, "scalars")
    for key in REGRESSION_SCALARS:
        assert regression_summaries[f"test/{key}"][1] == pytest.approx(metrics["test"][key], rel=1e-6)
    assert regression_summaries["val/rmse"][1] == pytest.approx(metrics["val"]["rmse"], rel=1e-6)
    # Rounded to the training levels 1..5: 1, 4, 3, 4, 3, 4 against 1, 4, 3, 5, 2, 4.
    assert regression_summaries["test/rounded_accuracy"][1] == pytest.approx(4 / 6)
    assert tags_of(regression_summaries, "hparams") == {"_hparams_/session_start_info"}


def test_projector_metadata_of_a_regression_run(regression_folder):
    lines = (regression_folder / tb.PROJECTOR_METADATA).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "label\tpredicted\tsplit\ttext" and len(lines) == 1 + 6 + 4 + 5
    assert lines[1:4] == ["1\t4.26\ttest\ttest text 0", "4\t0.00\ttest\ttest text 1", "3\t4.26\ttest\ttest text 2"]
    assert lines[7:11] == ["2\t4.26\tvalidation\tvalidation text 0", "3.5\t0.00\tvalidation\tvalidation text 1",
                           "5\t4.26\tvalidation\tvalidation text 2", "1\t0.00\tvalidation\tvalidation text 3"]
    assert lines[11] == "1\t4.26\ttrain\ttrain text 0"


# ============================================================================ the real server

@pytest.fixture(scope="module")
def regression_server(regression_folder, tmp_path_factory):
    """TensorBoard on the logs/ folder of the tiny regression run."""
    log_path = tmp_path_factory.mktemp("tensorboard-regression-log") / "tensorboard.log"
    with running_tensorboard(regression_folder.parent, log_path) as server:
        yield server


def test_server_shows_both_images_and_compares_runs_by_rmse(regression_server):
    tags = regression_server.wait_for("/data/plugin/images/tags", lambda tags: "evaluation" in tags, "image tags")
    assert set(tags["evaluation"]) == {"predicted_vs_true", "residuals"}
    experiment = regression_server.get("/data/plugin/hparams/experiment", data=b'{"experimentName": ""}')
    metrics = {info["name"]["tag"] for info in experiment["metricInfos"]}
    assert {"val/rmse", "test/rmse", "test/spearman", "test/r2", "test/rounded_accuracy"} <= metrics
