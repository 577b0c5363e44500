"""The real entry point, `python -m pipeline`, in a subprocess: smoke run, cache reuse, help, bad input (cases about a
message alone run in-process, through the same `main`)."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli, write_tiny_csv


def assert_usage_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def run_in_process(capsys, *arguments):
    """`python -m pipeline *arguments` in this process (its TensorFlow already started): the exit status and
    stderr, as run_cli gives them, for cases whose subject is the message rather than the process."""
    from subprocess import CompletedProcess

    from pipeline.commands.cli import main

    capsys.readouterr()
    code = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return CompletedProcess(list(arguments), code, captured.out, captured.err)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory, tiny_encoder_dir):
    """Two runs of the real command on a 60-row CSV with the tiny encoder, sharing one cache."""
    folder = tmp_path_factory.mktemp("smoke")
    csv_path = write_tiny_csv(folder / "reviews.csv")
    common = ["--data", csv_path, "--encoder", tiny_encoder_dir, "--epochs", 3, "--batch-size", 16,
              "--max-seq-length", 16, "--cache-dir", folder / "cache", "--quiet"]
    first = run_cli("run", *common, "--output-dir", folder / "run1", artifacts=folder / "artifacts")
    second = run_cli("run", *common, "--output-dir", folder / "run2", "--seed", 1, artifacts=folder / "artifacts")
    return folder, first, second


def test_run_writes_a_complete_run_folder(smoke_runs):
    folder, first, _ = smoke_runs
    assert first.returncode == 0, first.stderr
    run_dir = folder / "run1"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for part in ("test", "val", "baseline"):
        values = metrics[part]["test"] if part == "baseline" else metrics[part]
        assert set(values) >= {"accuracy", "auroc", "pr_auc", "f1"}
    assert metrics["features"]["cache_hit"] is False
    assert metrics["features"]["texts"] > 0 and metrics["features"]["texts_per_second"] > 0
    assert metrics["config"]["pooling"] == "mean"  # the tiny checkpoint recommends mean pooling
    assert metrics["config"]["labels"] == ["neg", "pos"]
    config = json.loads((run_dir / "config.json").read_text())
    for key in ("layers", "combine", "head", "epochs", "batch_size", "hidden_units", "weight_decay"):
        assert config[key] == metrics["config"][key] and config[key] is not None, key  # settled, not left unset
    assert (run_dir / "head.keras").is_file() and (run_dir / "config.json").is_file()
    assert (run_dir / "report.txt").read_text().count("neg") >= 1
    assert list((run_dir / "logs" / "train").glob("events.out.tfevents.*"))
    assert not (run_dir / "INCOMPLETE").exists()
    assert "TensorBoard:" in first.stdout and str(run_dir) in first.stdout
    assert "baseline (logistic regression)" in first.stdout
    assert f"Head: mlp, 3 heads averaged, {metrics['training']['epochs_run']} epochs in " in first.stdout
    assert [member["epochs_run"] for member in metrics["training"]["members"]] == [3, 3, 3]
    assert config["ensemble"] == 3 and (run_dir / "logs" / "member-3" / "validation").is_dir()
    assert "use_unbounded_threadpool" not in first.stderr  # known TensorFlow runtime noise is dropped


def test_second_run_hits_the_cache(smoke_runs):
    folder, _, second = smoke_runs
    assert second.returncode == 0, second.stderr
    metrics = json.loads((folder / "run2" / "metrics.json").read_text())
    assert metrics["features"]["cache_hit"] is True
    assert "cache hit" in second.stdout


def test_a_finished_run_folder_is_never_overwritten(smoke_runs, tiny_encoder_dir):
    folder, _, _ = smoke_runs
    before = (folder / "run1" / "metrics.json").read_bytes()
    result = run_cli("run", "--data", folder / "reviews.csv", "--encoder", tiny_encoder_dir,
                     "--output-dir", folder / "run1", "--quiet")
    assert_usage_error(result, "already holds files")
    assert (folder / "run1" / "metrics.json").read_bytes() == before


def test_extract_fills_the_cache_and_stops(tmp_path, tiny_encoder_dir):
    csv_path = write_tiny_csv(tmp_path / "reviews.csv")
    result = run_cli("extract", "--data", csv_path, "--encoder", tiny_encoder_dir, "--max-seq-length", 16,
                     "--cache-dir", tmp_path / "cache", "--quiet", artifacts=tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr
    assert "cache miss" in result.stdout
    assert list((tmp_path / "cache").glob("*/manifest.json"))
    assert not (tmp_path / "artifacts" / "runs").exists()


@pytest.mark.parametrize("command", ["run", "extract", "convert"])
def test_every_command_has_help_with_one_line_per_option(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "--help" in result.stdout and "usage:" in result.stdout
    if command != "convert":
        for flag in ("--data", "--test-data", "--text-column", "--label-column", "--preset", "--encoder",
                     "--pooling", "--max-seq-length", "--epochs", "--batch-size", "--seed", "--output-dir",
                     "--cache-dir"):
            assert flag in result.stdout


def test_bad_input_before_any_model_work(tmp_path):
    missing = run_cli("run", "--data", tmp_path / "missing.csv", artifacts=tmp_path)
    assert_usage_error(missing, "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert_usage_error(run_cli("run", "--data", empty, artifacts=tmp_path), "empty")
    columns = tmp_path / "columns.csv"
    columns.write_text("body,stars\nnice,5\nbad,1\n")
    assert_usage_error(run_cli("run", "--data", columns, artifacts=tmp_path), "body", "stars")
    assert_usage_error(run_cli("run", "--preset", "imdb", artifacts=tmp_path), "imdb", "amazon-fine-food")
    assert_usage_error(run_cli("run", "--pooling", "max", artifacts=tmp_path), "--pooling", "mean")
    assert_usage_error(run_cli("run", "--epochs", 0, artifacts=tmp_path), "--epochs")
    assert_usage_error(run_cli("run", "--batch-size", -3, artifacts=tmp_path), "--batch-size")
    assert_usage_error(run_cli("run", "--max-seq-length", 2, artifacts=tmp_path), "--max-seq-length")
    assert_usage_error(run_cli("run", "--epochs", "ten", artifacts=tmp_path), "--epochs")
    assert_usage_error(run_cli("frobnicate", artifacts=tmp_path), "frobnicate")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["predict", "run"])
def test_an_unknown_option_names_its_command_in_the_hint(command, capsys):
    from pipeline.commands.cli import main

    with pytest.raises(SystemExit) as stopped:
        main([command, "--model", "somewhere", "--frobnicate"] if command == "predict" else [command, "--frobnicate"])
    stderr = capsys.readouterr().err
    assert stopped.value.code == 2 and stderr.count("\n") == 1
    assert stderr == f"error: unrecognized arguments: --frobnicate; see `python -m pipeline {command} --help`\n"


def test_bad_encoder_options(tmp_path, tiny_encoder_dir, capsys):
    csv_path = write_tiny_csv(tmp_path / "reviews.csv")
    too_long = run_in_process(capsys, "run", "--data", csv_path, "--encoder", tiny_encoder_dir, "--max-seq-length", 65)
    assert_usage_error(too_long, "--max-seq-length 65", "64")
    not_saved_model = run_in_process(capsys, "run", "--data", csv_path, "--encoder", tmp_path)
    assert_usage_error(not_saved_model, "not a SavedModel")
    assert not (tmp_path / "artifacts" / "runs").exists()


def test_convert_through_the_command_line(tmp_path, capsys):
    from tiny_bert import write_tiny_checkpoint

    checkpoint = write_tiny_checkpoint(tmp_path / "checkpoint")
    done = run_cli("convert", "--checkpoint", checkpoint, "--output", tmp_path / "encoder")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "encoder" / "saved_model.pb").is_file()
    assert json.loads((tmp_path / "encoder" / "pipeline_model.json").read_text())["recommended_pooling"] == "mean"

    assert_usage_error(run_in_process(capsys, "convert", "--checkpoint", tmp_path / "nowhere", "--output", tmp_path / "out1"),
                       "nowhere")
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    assert_usage_error(run_in_process(capsys, "convert", "--checkpoint", checkpoint, "--output", tmp_path / "out2"), "roberta")
    (checkpoint / "config.json").write_text(json.dumps(config))
    (checkpoint / "vocab.txt").unlink()
    assert_usage_error(run_in_process(capsys, "convert", "--checkpoint", checkpoint, "--output", tmp_path / "out3"), "vocab.txt")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint", "encoder"]


def test_option_types_come_from_the_config_annotations():
    """Flags are typed from RunConfig's annotations, so a new `float | None` field needs no special case."""
    from pipeline.commands.cli import _comma_separated_ints, _value_type, build_parser

    assert _value_type(float | None) is float
    assert _value_type(int | None) is int
    assert _value_type(str) is str
    assert _value_type(tuple[int, ...]) is _comma_separated_ints
    with pytest.raises(TypeError, match="cannot parse"):
        _value_type(dict[str, int])
    arguments = build_parser().parse_args(
        ["run", "--learning-rate", "0.01", "--max-seq-length", "64", "--hidden-units", "8,4", "--pooling", "cls"])
    assert (arguments.learning_rate, arguments.max_seq_length, arguments.hidden_units, arguments.pooling) == \
        (0.01, 64, (8, 4), "cls")
    assert build_parser().parse_args(["run"]).max_seq_length is None


def test_a_run_shows_one_line_per_head_off_a_terminal_and_keras_epoch_lines_only_with_verbose(tmp_path, tiny_encoder_dir):
    """stderr captured by a pipe is not a terminal (a CI log): no bar is redrawn, each head says once how it ended."""
    csv_path = write_tiny_csv(tmp_path / "reviews.csv")
    common = ["--data", csv_path, "--encoder", tiny_encoder_dir, "--epochs", 3, "--batch-size", 16, "--ensemble", 2,
              "--max-seq-length", 16, "--cache-dir", tmp_path / "cache"]
    default = run_cli("run", *common, "--output-dir", tmp_path / "run1", artifacts=tmp_path / "artifacts")
    assert default.returncode == 0, default.stderr
    heads = [line for line in default.stderr.splitlines() if line.startswith("head ")]
    assert [line.split(":")[0] for line in heads] == ["head 1/2", "head 2/2"]
    assert all(", best val AUROC " in line for line in heads)
    assert "Epoch 1/3" not in default.stdout + default.stderr and "\r" not in default.stderr
    verbose = run_cli("run", *common, "--output-dir", tmp_path / "run2", "--verbose", artifacts=tmp_path / "artifacts")
    assert verbose.returncode == 0, verbose.stderr
    assert verbose.stdout.count("Epoch 1/3") == 2 and "val_auroc: " in verbose.stdout  # Keras's lines, per head
    assert not [line for line in verbose.stderr.splitlines() if line.startswith("head ")]
