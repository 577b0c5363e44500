"""Several labels per text through the whole command line (run, predict, export, sweep, extract), on the tiny encoder:
0/1 label columns and one column of joined labels, the run folder's metrics and thresholds, predictions with a
probability per label, one cache entry serving single- and multi-label runs, and each bad input's one-line error.
The commands run in this process (`main`), as a subprocess would only add a TensorFlow start-up."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from subprocess import CompletedProcess

import numpy as np
import pandas as pd
import pytest
from helpers import MULTI_LABELS, tiny_multi_label_rows, write_csv, write_tiny_multi_label_csv
from test_cli import assert_usage_error, run_in_process

LABEL_COLUMNS = ",".join(MULTI_LABELS)
MULTI_LABEL_KEYS = {"macro_auroc", "micro_auroc", "macro_f1", "micro_f1", "subset_accuracy", "hamming_loss", "per_label"}


def main_output(*arguments: object) -> CompletedProcess[str]:
    """`python -m pipeline *arguments` in this process, its stdout and stderr captured (for module-scoped
    fixtures, where pytest's capsys is not available)."""
    from pipeline.commands.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(argument) for argument in arguments])
    return CompletedProcess(list(arguments), code, stdout.getvalue(), stderr.getvalue())


def tiny_options(tiny_encoder_dir: Path, cache_dir: Path, epochs: int = 3) -> list[object]:
    """The tiny encoder in float32 (so a run and its export agree), short texts, a few epochs."""
    return ["--encoder", tiny_encoder_dir, "--epochs", epochs, "--batch-size", 16, "--max-seq-length", 24,
            "--precision", "float32", "--cache-dir", cache_dir, "--quiet"]


@pytest.fixture(scope="module")
def multi_label_run(tmp_path_factory, tiny_encoder_dir):
    """A run on 0/1 label columns, its stdout, and the folder it shares with the tests below."""
    folder = tmp_path_factory.mktemp("multi-label")
    csv_path = write_tiny_multi_label_csv(folder / "tags.csv", 90)
    result = main_output("run", "--data", csv_path, "--label-columns", LABEL_COLUMNS,
                                         *tiny_options(tiny_encoder_dir, folder / "cache"),
                                         "--output-dir", folder / "run")
    return folder, result


def test_a_run_on_label_columns_records_each_label_and_its_threshold(multi_label_run):
    folder, result = multi_label_run
    assert result.returncode == 0, result.stderr
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    assert metrics["target"]["kind"] == "multi-label" and metrics["target"]["names"] == list(MULTI_LABELS)
    thresholds = metrics["target"]["thresholds"]
    assert len(thresholds) == 3 and all(0 < value < 1 for value in thresholds)
    for part in (metrics["test"], metrics["val"], metrics["baseline"]["test"]):
        assert set(part) >= MULTI_LABEL_KEYS
        assert set(part["per_label"]) == set(MULTI_LABELS)
        for values in part["per_label"].values():
            assert set(values) == {"auroc", "pr_auc", "f1", "threshold", "support"}
    assert [metrics["test"]["per_label"][name]["threshold"] for name in MULTI_LABELS] == thresholds
    # Each label is written in its text, so the head and the probe both find them all.
    assert metrics["test"]["macro_auroc"] > 0.75 and metrics["baseline"]["test"]["macro_auroc"] > 0.75  # chance: 0.5
    with np.load(folder / "run" / "test_predictions.npz", allow_pickle=False) as saved:
        assert saved["labels"].shape == saved["probabilities"].shape == (metrics["test"]["rows"], 3)
        assert not np.allclose(saved["probabilities"].sum(axis=1), 1.0)  # independent, not a softmax
    assert "macro_auroc" in result.stdout and "micro_f1" in result.stdout and "Weakest labels (test AUROC):" in result.stdout
    assert "3 labels" in result.stdout
    report = (folder / "run" / "report.txt").read_text()
    assert all(name in report for name in MULTI_LABELS)


def test_predict_and_export_give_a_probability_per_label_and_the_labels_predicted(multi_label_run, tmp_path):
    from helpers import assert_run_and_export_predict_the_runs_test_probabilities

    folder, _ = multi_label_run
    export_dir = tmp_path / "exported"
    assert run_in_process_ok("export", "--run", folder / "run", "--output", export_dir)
    info = json.loads((export_dir / "export_info.json").read_text())
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    assert info["target"] == metrics["target"]
    assert_run_and_export_predict_the_runs_test_probabilities(folder / "run", export_dir)
    texts = ["the acting is good", "the plot is good and the ending is good", "the movie is long"]
    write_csv(tmp_path / "new.csv", ["text"], [(text,) for text in texts])
    for model_dir in (folder / "run", export_dir):
        output = tmp_path / f"{model_dir.name}.csv"
        assert run_in_process_ok("predict", "--model", model_dir, "--input", tmp_path / "new.csv", "--output", output,
                                 "--quiet")
        table = pd.read_csv(output, keep_default_na=False)
        assert list(table.columns) == ["text", "labels", *(f"probability_{name}" for name in MULTI_LABELS)]
        thresholds = np.array(metrics["target"]["thresholds"])
        for _, row in table.iterrows():
            probabilities = np.array([row[f"probability_{name}"] for name in MULTI_LABELS])
            expected = [name for name, chosen in zip(MULTI_LABELS, probabilities >= thresholds) if chosen]
            assert row["labels"] == ",".join(expected)


def run_in_process_ok(*arguments: object) -> bool:
    result = main_output(*arguments)
    assert result.returncode == 0, result.stderr
    return True


def test_joined_labels_read_as_label_columns_and_one_cache_entry_serves_every_target(multi_label_run, tiny_encoder_dir):
    """The same texts with their labels joined in one column give the same labels (sorted by name), and neither
    that run nor a single-label run on the same texts extracts anything: the cache key is the texts and encoder."""
    folder, _ = multi_label_run
    joined = write_tiny_multi_label_csv(folder / "joined.csv", 90, joined=True)
    options = tiny_options(tiny_encoder_dir, folder / "cache")
    result = main_output("run", "--data", joined, "--label-column", "tags", "--label-separator", "|",
                                         *options, "--output-dir", folder / "joined-run")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((folder / "joined-run" / "metrics.json").read_text())
    assert metrics["target"]["names"] == sorted(MULTI_LABELS)
    assert metrics["features"]["cache_hit"] is True
    single = main_output("run", "--data", folder / "tags.csv", "--label-column", "plot", *options,
                                         "--output-dir", folder / "single-run")
    assert single.returncode == 0, single.stderr
    single_metrics = json.loads((folder / "single-run" / "metrics.json").read_text())
    assert single_metrics["features"]["cache_hit"] is True and "target" in single_metrics
    assert single_metrics["target"]["kind"] == "single-label" and set(single_metrics["test"]) >= {"accuracy", "auroc"}


def test_balanced_weights_weigh_each_labels_positives(multi_label_run, tiny_encoder_dir):
    folder, _ = multi_label_run
    rows = [(text, acting, plot, 1 if index % 9 == 0 else 0)  # `ending` on one row in nine
            for index, (text, acting, plot, _) in enumerate(tiny_multi_label_rows(90))]
    csv_path = write_csv(folder / "rare.csv", ["text", *MULTI_LABELS], rows)
    result = main_output("run", "--data", csv_path, "--label-columns", LABEL_COLUMNS,
                                         "--class-weights", "balanced", *tiny_options(tiny_encoder_dir, folder / "cache"),
                                         "--ensemble", 1, "--output-dir", folder / "balanced")
    assert result.returncode == 0, result.stderr
    config = json.loads((folder / "balanced" / "config.json").read_text())
    negative, positive = config["class_weight"]["2"]
    # Balanced per label: n / (2 * negatives) and n / (2 * positives), so half their inverses add up to one, and the
    # rare label's positives weigh as much as all its negatives.
    assert 1 / (2 * negative) + 1 / (2 * positive) == pytest.approx(1.0)
    assert positive > 3 * negative
    positives = config["split_sizes"]["train"] / (2 * positive)
    assert positives == pytest.approx(round(positives)) and 1 <= round(positives) <= 10


# ----------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def bad_tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-multi-label")
    good = write_tiny_multi_label_csv(folder / "good.csv", 30)
    rows = [(text, acting, plot, "maybe" if index == 4 else ending)
            for index, (text, acting, plot, ending) in enumerate(tiny_multi_label_rows(30))]
    not_binary = write_csv(folder / "not-binary.csv", ["text", *MULTI_LABELS], rows)
    never = write_csv(folder / "never.csv", ["text", *MULTI_LABELS],
                      [(text, acting, plot, 0) for text, acting, plot, _ in tiny_multi_label_rows(30)])
    single_tags = write_csv(folder / "single-tags.csv", ["text", "tags"],
                            [("the acting is good", "acting"), ("the plot is good", "plot")] * 10)
    return folder, {"good": good, "not-binary": not_binary, "never": never, "single-tags": single_tags}


@pytest.mark.parametrize(("case", "arguments", "fragments"), [
    ("good", ["--label-columns", "acting,plot,cast"], ["no column 'cast'", "--label-columns"]),
    ("not-binary", ["--label-columns", LABEL_COLUMNS], ["'ending'", "'maybe'", "row 5", "1 or 0"]),
    ("never", ["--label-columns", LABEL_COLUMNS], ["'ending' is never positive", "drop it"]),
    ("single-tags", ["--label-column", "tags", "--label-separator", ","], ["--label-separator ','", "occurs in no"]),
    ("good", ["--label-columns", LABEL_COLUMNS, "--label-separator", ","], ["--label-columns and --label-separator",
                                                                          "use one"]),
    ("good", ["--label-columns", LABEL_COLUMNS, "--label-column", "acting"], ["--label-columns and --label-column"]),
    ("good", ["--label-columns", "acting"], ["two or more", "--label-column NAME"]),
    ("good", ["--label-columns", LABEL_COLUMNS, "--preset", "sst2"], ["preset sst2 has one label per text",
                                                                    "--label-columns"]),
])
def test_bad_multi_label_input_is_one_line_and_writes_nothing(bad_tables, case, arguments, fragments, capsys):
    folder, tables = bad_tables
    output_dir = folder / f"run-{len(list(folder.iterdir()))}"
    result = run_in_process(capsys, "run", "--data", tables[case], *arguments, "--output-dir", output_dir,
                            "--cache-dir", folder / "cache")
    assert_usage_error(result, *fragments)
    assert not output_dir.exists() and not (folder / "cache").exists()


def test_sweep_extract_and_fine_tuning_take_several_labels(multi_label_run, tiny_encoder_dir, tmp_path):
    """The sweep scores its trials on the labels' mean validation AUROC and keeps thresholds for its pick;
    extract fills the cache the runs read; fine-tuning trains a sigmoid per label through the encoder."""
    folder, _ = multi_label_run
    data = ["--data", folder / "tags.csv", "--label-columns", LABEL_COLUMNS]
    options = tiny_options(tiny_encoder_dir, tmp_path / "cache")
    assert main_output("extract", *data, *options).returncode == 0
    sweep = main_output("sweep", *data, *options, "--output-dir", tmp_path / "sweep")
    assert sweep.returncode == 0, sweep.stderr
    metrics = json.loads((tmp_path / "sweep" / "metrics.json").read_text())
    assert metrics["features"]["cache_hit"] is True
    best = max(metrics["sweep"]["trials"], key=lambda trial: trial["val_auroc"])
    assert metrics["sweep"]["best"] == best["trial"] and 0.5 < best["val_auroc"] <= 1.0
    assert metrics["target"]["kind"] == "multi-label" and len(metrics["target"]["thresholds"]) == 3
    assert set(metrics["test"]) >= MULTI_LABEL_KEYS
    tuned = main_output("run", *data, *options, "--fine-tune", "--epochs", 1, "--output-dir", tmp_path / "tuned")
    assert tuned.returncode == 0, tuned.stderr
    tuned_metrics = json.loads((tmp_path / "tuned" / "metrics.json").read_text())
    assert tuned_metrics["mode"] == "fine-tune" and set(tuned_metrics["test"]) >= MULTI_LABEL_KEYS
    assert len(tuned_metrics["target"]["thresholds"]) == 3
    assert "fine-tuned encoder + head" in tuned.stdout and "macro_auroc" in tuned.stdout
