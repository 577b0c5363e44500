"""`python -m pipeline predict`: labels for texts from an exported model or a run folder, printed as
aligned lines or written as a table, with a progress bar that --quiet hides; bad input is one line."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from helpers import run_cli, write_csv
from test_export import AWKWARD_TEXTS, exported_probabilities, load_exported, make_fake_run, shared_tiny_export

from pipeline.data.targets import SINGLE_LABEL, Target

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_encoder_dir):
    """The tiny run and its export, shared with test_export.py."""
    return shared_tiny_export(tmp_path_factory, tiny_encoder_dir)


class FakeModel:
    """Stands in for a loaded model: probability of class 1 grows with the text's length."""

    chunk_size = 2
    label_names = ["short", "long"]
    target = Target(kind=SINGLE_LABEL, names=("short", "long"))

    def __init__(self):
        self.calls = []

    def predict(self, texts):
        self.calls.append(list(texts))
        positive = np.array([min(len(text) / 20.0, 1.0) for text in texts], np.float32)
        return np.stack([1.0 - positive, positive], axis=1)


def fake_predictions(texts=("a fine film", "dull", "")):
    from pipeline.runs.predict import Predictions

    probabilities = np.array([[0.25, 0.75], [0.9, 0.1], [0.5, 0.5]][: len(texts)], np.float32)
    return Predictions(texts=list(texts), probabilities=probabilities,
                       target=Target(kind=SINGLE_LABEL, names=("rotten", "fresh")))


# ----------------------------------------------------------------------------- the real command


def test_cli_prints_one_aligned_line_per_text(tiny):
    texts = ["the movie is good and the story is great", "the film is bad", ""]
    result = run_cli("predict", "--model", tiny.export_dir, *texts, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "text/s" not in result.stderr  # --quiet hides the progress bar
    assert result.stderr == ""  # nor does TensorFlow's runtime say anything (its oneDNN int64 note is dropped)
    lines = result.stdout.rstrip("\n").split("\n")
    assert len(lines) == 3
    expected = exported_probabilities(load_exported(tiny.export_dir), texts)
    pattern = re.compile(r"^(neg|pos) {1,3} (\d\.\d{4})  (.*)$")
    for line, text, row in zip(lines, texts, expected):
        match = pattern.match(line)
        assert match, line
        label, probability, shown = match.groups()
        assert label == ["neg", "pos"][int(np.argmax(row))]
        assert abs(float(probability) - row.max()) <= 5e-5
        assert shown == text
    # Aligned: the probability starts in the same column on every line.
    assert len({line.index(".") for line in lines}) == 1


def test_cli_writes_a_table_from_an_input_file_with_a_run_folder_model(tiny, tmp_path):
    """--input/--output with a run folder as --model: the pipeline's own path, with a progress bar."""
    texts = ["the movie is good", "", "the film is bad and dull", "Café crème, très BON!"]
    input_path = write_csv(tmp_path / "reviews.csv", ["id", "review"], enumerate(texts))
    output_path = tmp_path / "out" / "predictions.jsonl"
    result = run_cli("predict", "--model", tiny.run_dir, "--input", input_path, "--text-column", "review",
                     "--output", output_path)
    assert result.returncode == 0, result.stderr
    assert "text/s" in result.stderr and "4/4" in result.stderr  # tqdm's bar, not hidden without --quiet
    assert f"Wrote 4 predictions to {output_path}" in result.stdout
    rows = [json.loads(line) for line in output_path.read_text(encoding="utf-8").splitlines()]
    assert [row["text"] for row in rows] == texts  # one row per input row, in order, blank kept
    assert list(rows[0]) == ["text", "label", "probability", "probability_neg", "probability_pos"]
    expected = exported_probabilities(load_exported(tiny.export_dir), texts)
    got = np.array([[row["probability_neg"], row["probability_pos"]] for row in rows])
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    for row in rows:
        assert row["label"] == ("pos" if row["probability_pos"] > row["probability_neg"] else "neg")
        assert row["probability"] == max(row["probability_neg"], row["probability_pos"])


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (lambda root, tiny: ["--model", root / "missing", "text"], "not found"),
        (lambda root, tiny: ["--model", tiny.folder / "encoder", "text"], "neither an exported model"),
        (lambda root, tiny: ["--model", tiny.export_dir, "--input", tiny.csv_path, "--text-column", "body"],
         "text column 'body' not found"),
    ],
    ids=["missing-model", "not-a-model", "no-text-column"],
)
def test_cli_bad_input_is_one_error_line_and_exit_2(tiny, tmp_path, arguments, fragment):
    result = run_cli("predict", *arguments(tmp_path, tiny))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]


# ----------------------------------------------------------------------------- in process


def test_run_folder_and_exported_model_agree(tiny):
    from pipeline.runs.predict import load_model, predict_texts

    texts = ["the movie is good", "the film is bad"] + AWKWARD_TEXTS
    exported = predict_texts(load_model(tiny.export_dir), texts, show_progress=False)
    from_run = predict_texts(load_model(tiny.run_dir), texts, show_progress=False)
    assert exported.label_names == from_run.label_names == ["neg", "pos"]
    np.testing.assert_allclose(exported.probabilities, from_run.probabilities, rtol=0, atol=TOLERANCE)


def test_predict_command_writes_csv_with_one_probability_column_per_class(tiny, tmp_path):
    from pipeline.runs.predict import predict_command

    input_path = tmp_path / "texts.jsonl"
    texts = ["the movie is good", "the film is bad", "a long, long story"]
    input_path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts), encoding="utf-8")
    message = predict_command(str(tiny.export_dir), [], input_path=str(input_path),
                              output_path=str(tmp_path / "predictions.csv"), show_progress=False)
    assert message.startswith("Wrote 3 predictions")
    table = pd.read_csv(tmp_path / "predictions.csv")
    assert list(table.columns) == ["text", "label", "probability", "probability_neg", "probability_pos"]
    assert table["text"].tolist() == texts
    expected = exported_probabilities(load_exported(tiny.export_dir), texts)
    np.testing.assert_allclose(table[["probability_neg", "probability_pos"]].to_numpy(), expected, atol=1e-6)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda tiny, root: dict(texts=["x"], input_path=str(tiny.csv_path)), "not both"),
        (lambda tiny, root: dict(texts=[], input_path=str(root / "none.csv")), "input file not found"),
        (lambda tiny, root: dict(texts=[]), "no texts given"),
        (lambda tiny, root: dict(texts=[], input_path=str(tiny.folder)), "is a folder"),
        (lambda tiny, root: dict(texts=["x"], output_path=str(root / "out.xlsx")), "use .csv, .tsv or .jsonl"),
    ],
    ids=["texts-and-input", "missing-input", "no-texts", "input-is-a-folder", "unknown-output-format"],
)
def test_predict_command_refuses_bad_input_before_loading_a_model(tiny, tmp_path, call, fragment):
    from pipeline.base.errors import UserError
    from pipeline.runs.predict import predict_command

    with pytest.raises(UserError, match=fragment):
        predict_command(str(tiny.export_dir), **call(tiny, tmp_path))


def test_an_unfinished_run_folder_is_refused_as_a_model(tmp_path):
    from pipeline.base.errors import UserError
    from pipeline.runs.predict import model_kind

    with pytest.raises(UserError, match="incomplete"):
        model_kind(make_fake_run(tmp_path / "run", incomplete=True))
    with pytest.raises(UserError, match="no metrics.json"):
        model_kind(make_fake_run(tmp_path / "unfinished", metrics=False))


def test_a_folder_with_export_info_but_no_model_signatures_is_refused(tiny, tmp_path):
    from pipeline.base.errors import UserError
    from pipeline.runs.predict import load_model

    fake = tmp_path / "fake-export"
    fake.mkdir()
    for name in ("saved_model.pb", "export_info.json"):
        (fake / name).write_bytes(b"not a model")
    with pytest.raises(UserError, match="could not be loaded as an exported model"):
        load_model(fake)


# ----------------------------------------------------------------------------- no TensorFlow needed


def test_predict_texts_batches_by_length_and_keeps_the_given_order(capsys):
    from pipeline.runs.predict import predict_texts

    model = FakeModel()
    texts = ["a much longer text than the others", "", "mid length", "tiny"]
    predictions = predict_texts(model, texts, show_progress=False)
    assert [len(call) for call in model.calls] == [2, 2]
    assert model.calls[0] == ["", "tiny"]  # shortest first, so a batch pads little
    np.testing.assert_allclose(predictions.probabilities, model.predict(texts))
    assert predictions.labels == ["long", "short", "short", "short"]
    assert capsys.readouterr().err == ""


def test_progress_bar_counts_texts_per_second_unless_hidden(capsys):
    from pipeline.runs.predict import predict_texts

    predict_texts(FakeModel(), ["one", "two", "three"], show_progress=True)
    shown = capsys.readouterr().err
    assert "predict" in shown and "3/3" in shown and "text/s" in shown
    predict_texts(FakeModel(), ["one", "two", "three"], show_progress=False)
    assert capsys.readouterr().err == ""


def test_printed_lines_are_aligned_and_long_texts_shortened():
    from pipeline.runs.predict import PRINTED_TEXT_WIDTH, format_predictions

    texts = ("a fine film", "dull\nand   long " * 20, "")
    lines = format_predictions(fake_predictions(texts)).split("\n")
    assert lines[0] == "fresh   0.7500  a fine film"
    assert lines[1].startswith("rotten  0.9000  dull and long dull")
    assert lines[1].endswith("...") and len(lines[1]) == len("rotten  0.9000  ") + PRINTED_TEXT_WIDTH
    assert lines[2] == "rotten  0.5000  "  # a tie goes to the first class


def test_tsv_and_jsonl_tables_keep_unicode_and_columns(tmp_path):
    from pipeline.runs.predict import write_predictions

    predictions = fake_predictions(("Café, \"crème\"", "dull", ""))
    write_predictions(predictions, tmp_path / "out.tsv")
    write_predictions(predictions, tmp_path / "out.jsonl")
    table = pd.read_csv(tmp_path / "out.tsv", sep="\t", keep_default_na=False)
    assert table["text"].tolist() == ["Café, \"crème\"", "dull", ""]
    assert table["label"].tolist() == ["fresh", "rotten", "rotten"]
    assert table["probability_fresh"].tolist() == [0.75, 0.10000000149011612, 0.5]
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert "Café" in (tmp_path / "out.jsonl").read_text(encoding="utf-8")  # not \u00e9
    assert rows[1] == {"text": "dull", "label": "rotten", "probability": 0.8999999761581421,
                       "probability_rotten": 0.8999999761581421, "probability_fresh": 0.10000000149011612}
