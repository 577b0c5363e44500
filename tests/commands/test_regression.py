"""A number per text (`--regression`) through the whole command line: run, predict, export, sweep and fine-tuning on
the tiny encoder, the run folder's metrics and target, predictions in the target's units within the training range,
and each bad input's one-line error. The commands run in this process (`main`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import tiny_rating_rows, write_csv
from test_cli import assert_usage_error, run_in_process
from test_multi_label import main_output
from test_multi_label import tiny_options as multi_label_options

REGRESSION_KEYS = {"rmse", "mae", "r2", "spearman", "pearson", "rounded_accuracy", "rows"}


def tiny_options(tiny_encoder_dir: Path, cache_dir: Path) -> list[object]:
    return multi_label_options(tiny_encoder_dir, cache_dir, epochs=20)  # a number takes more epochs than labels


@pytest.fixture(scope="module")
def rating_run(tmp_path_factory, tiny_encoder_dir):
    folder = tmp_path_factory.mktemp("regression")
    csv_path = write_csv(folder / "stars.csv", ["text", "stars"], tiny_rating_rows(120))
    result = main_output("run", "--data", csv_path, "--label-column", "stars", "--regression",
                         *tiny_options(tiny_encoder_dir, folder / "cache"), "--output-dir", folder / "run")
    return folder, result


def test_a_regression_run_records_its_target_and_scores_head_and_ridge_probe(rating_run):
    folder, result = rating_run
    assert result.returncode == 0, result.stderr
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    target = metrics["target"]
    assert target["kind"] == "regression" and target["names"] == ["stars"]
    assert target["bounds"] == [1.0, 5.0] and target["levels"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert target["scale"][0] == pytest.approx(3.0, abs=0.2)
    for part in (metrics["test"], metrics["val"], metrics["baseline"]["test"]):
        assert set(part) >= REGRESSION_KEYS
    assert "ridge" in metrics["baseline"]["model"] and metrics["baseline"]["test"]["alpha"] > 0
    # The stars are written in the texts: both find them well beyond guessing the mean (R^2 0).
    assert metrics["test"]["r2"] > 0.3 and metrics["baseline"]["test"]["r2"] > 0.3
    assert metrics["training"]["members"][0]["best_val_rmse"] > 0
    with np.load(folder / "run" / "test_predictions.npz", allow_pickle=False) as saved:
        predictions, targets = saved["probabilities"], saved["labels"]
    assert predictions.shape == (metrics["test"]["rows"], 1) and targets.dtype == np.float32
    assert predictions.min() >= 1.0 and predictions.max() <= 5.0  # kept within the training range
    rmse = float(np.sqrt(np.mean((predictions[:, 0] - targets) ** 2)))
    assert metrics["test"]["rmse"] == pytest.approx(rmse, rel=1e-5)
    assert "baseline (ridge regression)" in result.stdout and "rmse" in result.stdout and "spearman" in result.stdout
    log = pd.read_csv(folder / "run" / "training_log.csv")
    assert {"rmse", "val_rmse", "mae", "val_mae"} <= set(log.columns) and "val_auroc" not in log.columns


def test_predict_and_export_give_one_number_per_text_equal_to_the_runs(rating_run, tmp_path):
    from helpers import assert_run_and_export_predict_the_runs_test_probabilities

    folder, _ = rating_run
    export_dir = tmp_path / "exported"
    assert main_output("export", "--run", folder / "run", "--output", export_dir).returncode == 0
    assert json.loads((export_dir / "export_info.json").read_text())["target"]["kind"] == "regression"
    assert_run_and_export_predict_the_runs_test_probabilities(folder / "run", export_dir)
    write_csv(tmp_path / "new.csv", ["text"], [("the movie is great great great great and long",),
                                              ("the film is and slow",)])
    for model_dir in (folder / "run", export_dir):
        output = tmp_path / f"{model_dir.name}.csv"
        done = main_output("predict", "--model", model_dir, "--input", tmp_path / "new.csv", "--output", output,
                           "--quiet")
        assert done.returncode == 0, done.stderr
        table = pd.read_csv(output)
        assert list(table.columns) == ["text", "prediction"]
        assert table["prediction"][0] > table["prediction"][1]  # four times great, against none


def test_sweep_and_fine_tuning_take_a_number(rating_run, tiny_encoder_dir, tmp_path):
    folder, _ = rating_run
    data = ["--data", folder / "stars.csv", "--label-column", "stars", "--regression"]
    options = tiny_options(tiny_encoder_dir, folder / "cache")
    sweep = main_output("sweep", *data, *options, "--output-dir", tmp_path / "sweep")
    assert sweep.returncode == 0, sweep.stderr
    metrics = json.loads((tmp_path / "sweep" / "metrics.json").read_text())
    trials = metrics["sweep"]["trials"]
    assert trials and all(trial["model"] == "mlp" and trial["val_rmse"] > 0 for trial in trials)
    assert metrics["sweep"]["best"] == min(trials, key=lambda trial: trial["val_rmse"])["trial"]
    assert set(metrics["test"]) >= REGRESSION_KEYS and "by validation RMSE" in sweep.stdout
    tuned = main_output("run", *data, *options, "--fine-tune", "--epochs", 1, "--loss", "huber",
                        "--output-dir", tmp_path / "tuned")
    assert tuned.returncode == 0, tuned.stderr
    tuned_metrics = json.loads((tmp_path / "tuned" / "metrics.json").read_text())
    assert tuned_metrics["mode"] == "fine-tune" and set(tuned_metrics["test"]) >= REGRESSION_KEYS
    assert tuned_metrics["config"]["loss"] == "huber"


# ----------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def bad_tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-regression")
    rows = tiny_rating_rows(40)
    tables = {
        "good": write_csv(folder / "good.csv", ["text", "stars"], rows),
        "word": write_csv(folder / "word.csv", ["text", "stars"], [*rows[:6], ("a plot", "five"), *rows[7:]]),
        "constant": write_csv(folder / "constant.csv", ["text", "stars"], [(text, 3) for text, _ in rows]),
        "few": write_csv(folder / "few.csv", ["text", "stars"], rows[:6]),
    }
    return folder, tables


@pytest.mark.parametrize(("case", "arguments", "fragments"), [
    ("word", [], ["'five' in row 7, not a number", "--regression"]),
    ("constant", [], ["holds 3 on every row", "targets that vary"]),
    ("few", [], ["6 rows are too few", "at least 10"]),
    ("good", ["--label-columns", "a,b"], ["--regression predicts one number per text and --label-columns"]),
    ("good", ["--preset", "sst2"], ["preset sst2 has classes, not numbers"]),
    ("good", ["--class-weights", "balanced"], ["--class-weights balanced weighs classes"]),
])
def test_bad_regression_input_is_one_line_and_writes_nothing(bad_tables, case, arguments, fragments, capsys):
    folder, tables = bad_tables
    output_dir = folder / f"run-{len(list(folder.iterdir()))}"
    result = run_in_process(capsys, "run", "--data", tables[case], "--label-column", "stars", "--regression",
                            *arguments, "--output-dir", output_dir, "--cache-dir", folder / "cache")
    assert_usage_error(result, *fragments)
    assert not output_dir.exists() and not (folder / "cache").exists()


def test_regression_options_without_regression_are_one_line(bad_tables, capsys):
    folder, tables = bad_tables
    for option in (["--loss", "huber"], ["--extrapolate"]):
        result = run_in_process(capsys, "run", "--data", tables["good"], "--label-column", "stars", *option)
        assert result.returncode == 2 and f"{option[0]} is a setting of --regression" in result.stderr
