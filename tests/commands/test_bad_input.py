"""Bad and awkward input tables and options, each through the real command line in a subprocess.

A case that cannot go on exits 2 with exactly one stderr line, `error: ...`, that names the problem
and the fix, prints no traceback and leaves no run folder and no cache entry behind. An awkward but
usable table (a few missing labels, latin-1, quoted newlines, a huge text, numbers as text) is read,
with at most a one-line warning, and its texts reach the cache exactly as written.

The subprocesses are independent, so they run a few at a time; most fail before TensorFlow starts.
Four usable tables (latin-1, quoted newlines, a huge text, numbers) go through `pipeline.commands.cli.main` in
this process instead: a subprocess would add only a TensorFlow start-up to what they check.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli, write_csv

PARALLEL_PROCESSES = 4


def balanced_rows(count: int = 40, word: str = "movie") -> list[tuple[str, str]]:
    return [(f"the {word} is {'good' if index % 2 else 'bad'} {index}", "pos" if index % 2 else "neg")
            for index in range(count)]


def make_not_bert_saved_model(folder: Path) -> Path:
    """A valid SavedModel with no vocabulary and no BERT signature: a one-weight scaler."""
    import tensorflow as tf

    class Scaler(tf.Module):
        def __init__(self):
            super().__init__()
            self.weight = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)], autograph=False)
        def __call__(self, values):
            return values * self.weight

    tf.saved_model.save(Scaler(), str(folder))
    return folder


# ----------------------------------------------------------------------------- the inputs

LONG_TEXT = ("good movie " * 50_000).strip()  # 100,000 characters less one: far beyond any max_seq_length
QUOTED_ROWS = [
    ("a good movie, and a great story", "pos"),
    ("first line\nsecond line, with a comma", "neg"),
    ('she said "not bad", then "good"', "pos"),
    ("bad\n\nfilm", "neg"),
]
LATIN_ROWS = [("café crème is good", "pos"), ("façade of a bad film", "neg")]
NUMERIC_TEXTS = ["007", "3.50", "12", "1e5", "-4", "NA"]


def build_inputs(folder: Path, encoder_dir: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good = write_csv(folder / "good.csv", ["text", "label"], balanced_rows())
    paths = {"good": good, "encoder": encoder_dir}
    (folder / "empty.csv").write_bytes(b"")
    paths["empty"] = folder / "empty.csv"
    paths["header"] = write_csv(folder / "header.csv", ["text", "label"], [])
    paths["no_text_column"] = write_csv(folder / "no-text-column.csv", ["body", "label"], balanced_rows())
    paths["no_label_column"] = write_csv(folder / "no-label-column.csv", ["text", "stars"], balanced_rows())
    paths["blank_texts"] = write_csv(folder / "blank-texts.csv", ["text", "label"],
                                     [("", "pos"), ("   ", "neg"), ("\t", "pos")] * 10)
    paths["no_labels"] = write_csv(folder / "no-labels.csv", ["text", "label"],
                                   [(text, "") for text, _ in balanced_rows()])
    paths["one_class"] = write_csv(folder / "one-class.csv", ["text", "label"],
                                   [(text, "pos") for text, _ in balanced_rows()])
    paths["tiny_class"] = write_csv(folder / "tiny-class.csv", ["text", "label"],
                                    [(text, "pos") for text, _ in balanced_rows()] + [("a bad film", "neg")])
    paths["spreadsheet"] = folder / "reviews.xlsx"
    paths["spreadsheet"].write_bytes(b"PK\x03\x04 not really a spreadsheet")
    paths["bad_jsonl"] = folder / "reviews.jsonl"
    paths["bad_jsonl"].write_text('{"text": "good", "label": "pos"}\n{"text": "bad", "label": \n')
    paths["unseen_test_label"] = write_csv(folder / "unseen-test-label.csv", ["text", "label"],
                                           [("a good film", "pos"), ("a dull film", "meh")])
    paths["not_a_model"] = folder / "not-a-model"
    paths["not_a_model"].mkdir()
    (paths["not_a_model"] / "weights.txt").write_text("not a SavedModel\n")
    paths["not_bert"] = make_not_bert_saved_model(folder / "not-bert")
    # Awkward but usable.
    rows = balanced_rows()
    paths["some_labels_missing"] = write_csv(folder / "some-labels-missing.csv", ["text", "label"],
                                             rows + [("an unlabelled film", ""), ("another one", ""), ("a third", "")])
    paths["latin1"] = write_csv(folder / "latin1.csv", ["text", "label"], balanced_rows() + LATIN_ROWS,
                                encoding="latin-1")
    paths["quoted"] = write_csv(folder / "quoted.csv", ["text", "label"], balanced_rows() + QUOTED_ROWS)
    paths["long_text"] = write_csv(folder / "long-text.csv", ["text", "label"],
                                   balanced_rows() + [(LONG_TEXT, "pos")])
    numeric = [(text, "pos" if index % 2 else "neg") for index in range(40) for text in [f"{index * 7}"]]
    paths["numeric"] = write_csv(folder / "numeric.csv", ["text", "label"],
                                 numeric + [(text, "neg" if index % 2 else "pos") for index, text in enumerate(NUMERIC_TEXTS)])
    return paths


# ----------------------------------------------------------------------------- the cases

HUB_URL = "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4"
KAGGLE_HANDLE = "tensorflow/bert/tensorFlow2/en-uncased-l-12-h-768-a-12/4"

# name: (arguments with {placeholders} for build_inputs' paths, fragments the one error line must hold)
ERROR_CASES = {
    "missing file": (["--data", "{good}.missing.csv"], ["data file not found", "--data"]),
    "empty file": (["--data", "{empty}"], ["is empty", "header row"]),
    "header only": (["--data", "{header}"], ["no data rows", "add at least one row"]),
    "no text column": (["--data", "{no_text_column}"],
                       ["text column 'text' not found", "columns found: body, label", "--text-column"]),
    "no label column": (["--data", "{no_label_column}"],
                        ["label column 'label' not found", "columns found: text, stars", "--label-column"]),
    "no usable text": (["--data", "{blank_texts}"], ["no text on any row", "--text-column"]),
    "labels missing on every row": (["--data", "{no_labels}"], ["empty on every row", "--label-column"]),
    "one class only": (["--data", "{one_class}"], ["only one class", "'pos'", "at least two"]),
    "class too small to stratify": (["--data", "{tiny_class}"], ["'neg' has 1 row,", "stratified", "add rows"]),
    "unknown preset": (["--preset", "imdb"], ["unknown preset 'imdb'", "amazon-fine-food", "sst2"]),
    "unknown pooling": (["--data", "{good}", "--pooling", "max"], ["--pooling", "'max'", "mean"]),
    "max_seq_length below 3": (["--data", "{good}", "--max-seq-length", "2"], ["--max-seq-length", "at least 3"]),
    "max_seq_length above the encoder's": (["--data", "{good}", "--max-seq-length", "65"],
                                           ["--max-seq-length 65", "accepts (64)", "64 or less"]),
    "zero epochs": (["--data", "{good}", "--epochs", "0"], ["--epochs", "positive"]),
    "negative batch size": (["--data", "{good}", "--batch-size", "-3"], ["--batch-size", "positive"]),
    "epochs not a number": (["--data", "{good}", "--epochs", "ten"], ["--epochs", "'ten'", "--help"]),
    "unreachable hub URL": (["--data", "{good}", "--encoder", HUB_URL], ["cannot fetch", "TFHUB_CACHE_DIR", "--encoder"]),
    "unreachable Kaggle handle": (["--data", "{good}", "--encoder", KAGGLE_HANDLE], ["cannot fetch", "TFHUB_CACHE_DIR"]),
    "encoder folder not a SavedModel": (["--data", "{good}", "--encoder", "{not_a_model}"],
                                        ["not a SavedModel", "saved_model.pb", "convert"]),
    "SavedModel not a BERT encoder": (["--data", "{good}", "--encoder", "{not_bert}"],
                                      ["not a TF-Hub BERT encoder", "pass a BERT encoder"]),
    "output folder not writable": (["--data", "{good}", "--output-dir", "{good}/run"],
                                   ["--output-dir", "not a writable folder", "choose a folder"]),
    "cache folder not writable": (["--data", "{good}", "--cache-dir", "{good}/cache"],
                                  ["--cache-dir", "not a writable folder", "choose a folder"]),
    "unknown file type": (["--data", "{spreadsheet}"], ["cannot tell the format", ".csv", ".parquet"]),
    "malformed JSON lines": (["--data", "{bad_jsonl}"], ["line 2", "not valid JSON", "one object per line"]),
    "test table with an unseen label": (["--data", "{good}", "--test-data", "{unseen_test_label}"],
                                        ["'meh'", "not among the training labels"]),
    "layer beyond the encoder's": (["--data", "{good}", "--max-seq-length", "32", "--pooling", "mean", "--layers", "9"],
                                   ["--layers 9", "has 2 layers", "0..1", "-2..-1"]),
    "no layers": (["--data", "{good}", "--layers", ""], ["--layers ''", "last, all, last4"]),
    "every layer with pooled": (["--data", "{good}", "--layers", "all", "--pooling", "pooled"],
                                ["--pooling pooled", "last layer", "--layers last"]),
    "unknown combine": (["--data", "{good}", "--combine", "max"], ["--combine", "'max'", "concat"]),
    "unknown head": (["--data", "{good}", "--head", "svm"], ["--head", "'svm'", "paperspace", "mlp"]),
    "an ensemble of no heads": (["--data", "{good}", "--ensemble", "0"], ["--ensemble", "from 1 to 20", "got 0"]),
    "unknown precision": (["--data", "{good}", "--precision", "float8"], ["--precision", "'float8'", "bfloat16"]),
    "float16 without a GPU": (["--data", "{good}", "--max-seq-length", "32", "--precision", "float16"],
                              ["float16 needs a GPU", "--precision auto"]),
    "old and new precision flags disagree": (["--data", "{good}", "--mixed-precision", "--precision", "bfloat16"],
                                             ["--mixed-precision", "--precision float16", "drop --mixed-precision"]),
}
ENCODER_CASES = {"unreachable hub URL", "unreachable Kaggle handle", "encoder folder not a SavedModel",
                 "SavedModel not a BERT encoder"}

# name: (data, warning lines expected on stderr (fragments), texts that must reach the cache)
USABLE_CASES = {
    "labels missing on some rows": ("some_labels_missing", ["dropped 3 rows", "no value in label column 'label'"],
                                    [text for text, _ in balanced_rows()]),
    "latin-1 file": ("latin1", ["not valid UTF-8", "latin-1"], [text for text, _ in balanced_rows() + LATIN_ROWS]),
    "quoted fields with commas and newlines": ("quoted", [], [text for text, _ in balanced_rows() + QUOTED_ROWS]),
    "a 100,000-character text": ("long_text", [], [text for text, _ in balanced_rows()] + [LONG_TEXT]),
    "numeric text column": ("numeric", [], [f"{index * 7}" for index in range(40)] + NUMERIC_TEXTS),
}
USABLE_IN_A_SUBPROCESS = {"labels missing on some rows"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_encoder_dir) -> dict[str, Path]:
    return build_inputs(tmp_path_factory.mktemp("bad-input-tables"), tiny_encoder_dir)


def usable_arguments(data: Path, encoder_dir: Path, cache_dir: Path) -> list[str]:
    return ["extract", "--data", str(data), "--encoder", str(encoder_dir), "--max-seq-length", "32",
            "--cache-dir", str(cache_dir), "--quiet"]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, tiny_encoder_dir, inputs):
    """Runs every subprocess case once, a few at a time; returns {name: (result, folder of the case)}."""
    base = tmp_path_factory.mktemp("bad-input")
    paths = inputs
    jobs = {}
    for name, (template, _) in ERROR_CASES.items():
        case_dir = base / name.replace(" ", "-").replace("'", "")
        arguments = ["run", *[part.format(**paths) for part in template]]
        if "--encoder" not in arguments:
            arguments += ["--encoder", str(tiny_encoder_dir)]
        for flag, value in (("--output-dir", case_dir / "run"), ("--cache-dir", case_dir / "cache")):
            if flag not in arguments:  # so the test can see that nothing was written there
                arguments += [flag, str(value)]
        jobs[name] = (arguments + ["--quiet"], case_dir)
    for name in USABLE_IN_A_SUBPROCESS:
        case_dir = base / name.replace(" ", "-")
        jobs[name] = (usable_arguments(paths[USABLE_CASES[name][0]], tiny_encoder_dir, case_dir / "cache"), case_dir)
    with ThreadPoolExecutor(max_workers=PARALLEL_PROCESSES) as pool:
        futures = {name: pool.submit(run_cli, *arguments, artifacts=case_dir / "artifacts")
                   for name, (arguments, case_dir) in jobs.items()}
        return {name: (future.result(), jobs[name][1]) for name, future in futures.items()}


# ----------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(name, outcomes):
    result, case_dir = outcomes[name]
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in ERROR_CASES[name][1]:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""
    assert not (case_dir / "run").exists()
    assert not (case_dir / "artifacts" / "runs").exists()
    cache_dir = case_dir / "cache"
    assert not cache_dir.exists() or not [path for path in cache_dir.iterdir() if path.is_dir()]


def test_there_are_at_least_twenty_bad_input_cases_and_most_fail_before_tensorflow():
    assert len(ERROR_CASES) + len(USABLE_CASES) >= 20
    assert len(ERROR_CASES) - len(ENCODER_CASES) - 1 >= 15  # -1: max_seq_length above the encoder's needs it too


def _cached_digests(cache_dir: Path) -> tuple[set[bytes], Path]:
    from pipeline.features.cache import digests_from_array, read_cache_entry

    (entry_dir,) = [path for path in cache_dir.iterdir() if path.is_dir()]
    manifest = json.loads((entry_dir / "manifest.json").read_text())
    digests, _ = read_cache_entry(entry_dir, manifest["key"])
    return set(digests_from_array(digests)), entry_dir


def run_in_process(arguments: list[str], capsys, caplog) -> tuple[int, str, list[str]]:
    """(exit status, stdout, warning lines) of pipeline.commands.cli.main; logging goes to caplog in this process."""
    from pipeline.commands.cli import main

    capsys.readouterr()
    with caplog.at_level(logging.WARNING):
        status = main(arguments)
    captured = capsys.readouterr()
    warnings = [f"{record.levelname} {record.getMessage()}" for record in caplog.records
                if record.levelno >= logging.WARNING]
    return status, captured.out, captured.err.splitlines() + warnings


@pytest.mark.parametrize("name", list(USABLE_CASES))
def test_awkward_but_usable_tables_are_read_exactly(name, outcomes, inputs, tiny_encoder_dir, tmp_path, capsys, caplog):
    from pipeline.features.cache import text_digest

    data_name, warnings, texts = USABLE_CASES[name]
    if name in USABLE_IN_A_SUBPROCESS:
        result, case_dir = outcomes[name]
        status, stdout, lines = result.returncode, result.stdout, result.stderr.splitlines()
        cache_dir = case_dir / "cache"
    else:
        cache_dir = tmp_path / "cache"
        status, stdout, lines = run_in_process(usable_arguments(inputs[data_name], tiny_encoder_dir, cache_dir),
                                               capsys, caplog)
    assert status == 0, lines
    assert not any("Traceback" in line for line in lines)
    if warnings:
        assert len(lines) == 1 and lines[0].startswith("WARNING"), lines
        for fragment in warnings:
            assert fragment in lines[0]
    else:
        assert lines == []
    assert "cache miss" in stdout
    digests, _ = _cached_digests(cache_dir)
    assert digests == {text_digest(text) for text in texts}  # every text, exactly as written, and no other


@pytest.mark.parametrize(("reading", "words_read"), [([], 191), (["--long-texts", "truncate"], 30)],
                         ids=["windows", "truncate"])
def test_a_100000_character_text_is_read_up_to_the_cap(reading, words_read, inputs, tiny_encoder_dir, tmp_path, capsys,
                                                       caplog):
    """Its features are those of the tokens read: by default 8 windows of max_seq_length - 2 = 30 tokens overlapping
    by 7 (191 tokens), with --long-texts truncate the first 30 ("good movie good ..." is one token a word)."""
    from pipeline.encoders.encoder import load_encoder
    from pipeline.features.cache import digests_from_array, read_cache_entry, text_digest
    from pipeline.features.extraction import encode_texts
    from pipeline.features.long_texts import LongTexts

    assert len(LONG_TEXT) >= 99_999
    status, _, _ = run_in_process(usable_arguments(inputs["long_text"], tiny_encoder_dir, tmp_path / "cache") + reading
                                  + ["--precision", "float32"], capsys, caplog)  # compared with float32 features below
    assert status == 0
    _, entry_dir = _cached_digests(tmp_path / "cache")
    manifest = json.loads((entry_dir / "manifest.json").read_text())
    digests, features = read_cache_entry(entry_dir, manifest["key"])
    row = digests_from_array(digests).index(text_digest(LONG_TEXT))
    encoder = load_encoder(str(tiny_encoder_dir))
    first_tokens = " ".join(LONG_TEXT.split()[:words_read])
    windows = LongTexts("windows", window_overlap=7, max_windows=8) if not reading else LongTexts()
    expected = encode_texts([first_tokens], encoder, pooling="mean", layers=tuple(manifest["layers"]),
                            combine=manifest["combine"], max_seq_length=32, long_texts=windows)[0]
    np.testing.assert_allclose(features[row], expected, atol=1e-5)
    assert manifest["long_texts"]["tokens_read_at_most"] == words_read
