"""Reading tables, label mapping, errors, stratified splits and class weights (pipeline/data/tables.py)."""

import bz2
import gzip
import json
import logging

import numpy as np
import pandas as pd
import pytest
from helpers import write_csv

from pipeline.base.errors import UserError
from pipeline.data.tables import (
    LabeledTexts,
    align_labels,
    compute_class_weights,
    load_labeled_texts,
    split_labeled_texts,
)


def user_error_message(function, *args, **kwargs) -> str:
    """The message of the UserError `function` raises; every one must be a single line."""
    with pytest.raises(UserError) as caught:
        function(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def balanced_rows(count_per_class, classes=("neg", "pos")):
    return [(f"{label} review number {index}", label) for label in classes for index in range(count_per_class)]


def labeled(labels, label_names=("a", "b")):
    labels = np.asarray(labels, dtype=np.int64)
    texts = [f"text {index}" for index in range(len(labels))]
    return LabeledTexts(texts=texts, labels=labels, label_names=list(label_names))


# ----------------------------------------------------------------------------- formats


def test_csv_quoted_fields_keep_commas_and_newlines(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('text,label\n"good, really\ngood",pos\n"bad ""awful"" film",neg\n', encoding="utf-8")
    data = load_labeled_texts(path)
    assert data.texts == ["good, really\ngood", 'bad "awful" film']
    assert data.label_names == ["neg", "pos"]
    assert data.labels.tolist() == [1, 0]
    assert data.labels.dtype == np.int64


@pytest.mark.parametrize("suffix", [".tsv", ".txt"])
def test_tab_separated_reads_quotes_literally(tmp_path, suffix):
    path = tmp_path / f"reviews{suffix}"
    path.write_text('text\tlabel\n" a quote opens here\tpos\nplain, with comma\tneg\n', encoding="utf-8")
    data = load_labeled_texts(path)
    assert data.texts == ['" a quote opens here', "plain, with comma"]
    assert data.labels.tolist() == [1, 0]


def test_json_lines_and_json_array(tmp_path):
    records = [{"text": "fine", "label": "pos"}, {"text": 404, "label": "neg"}, {"text": "no label"}]
    lines = tmp_path / "reviews.jsonl"
    lines.write_text("\n".join(json.dumps(record) for record in records) + "\n\n", encoding="utf-8")
    array = tmp_path / "reviews.json"
    array.write_text(json.dumps(records), encoding="utf-8")
    for path in (lines, array):
        data = load_labeled_texts(path)
        assert data.texts == ["fine", "404"]
        assert data.label_names == ["neg", "pos"]
        assert data.dropped_rows == 1


def test_parquet_with_numeric_text_and_integer_labels(tmp_path):
    path = tmp_path / "reviews.parquet"
    pd.DataFrame({"body": [12, 34, 56], "stars": [1, 5, 1]}).to_parquet(path)
    data = load_labeled_texts(path, text_column="body", label_column="stars")
    assert data.texts == ["12", "34", "56"]
    assert data.label_names == ["1", "5"]
    assert data.labels.tolist() == [0, 1, 0]


@pytest.mark.parametrize("suffix,opener", [(".csv.gz", gzip.open), (".csv.bz2", bz2.open)])
def test_compressed_csv(tmp_path, suffix, opener):
    path = tmp_path / f"reviews{suffix}"
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.write("text,label\nnice,pos\nbad,neg\n")
    assert load_labeled_texts(path).texts == ["nice", "bad"]


def test_latin1_file_falls_back_with_a_warning(tmp_path, caplog):
    path = tmp_path / "reviews.csv"
    path.write_bytes("text,label\ncafé crème,pos\nnaïve,neg\n".encode("latin-1"))
    with caplog.at_level(logging.WARNING):
        data = load_labeled_texts(path)
    assert data.texts == ["café crème", "naïve"]
    assert "not valid UTF-8" in caplog.text and "latin-1" in caplog.text


def test_utf8_byte_order_mark_is_not_part_of_the_header(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes("text,label\nnice,pos\nbad,neg\n".encode("utf-8-sig"))
    assert load_labeled_texts(path).texts == ["nice", "bad"]


def test_words_that_look_like_missing_values_stay_text(tmp_path):
    path = write_csv(tmp_path / "reviews.csv", ["text", "label"], [("NA", "pos"), ("null", "neg"), ("0123", "neg")])
    assert load_labeled_texts(path).texts == ["NA", "null", "0123"]


def test_numeric_text_column_is_text(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("text,label\n1.5,pos\n7,neg\n", encoding="utf-8")
    data = load_labeled_texts(path)
    assert data.texts == ["1.5", "7"]
    assert all(isinstance(text, str) for text in data.texts)


# ----------------------------------------------------------------------------- labels


def test_numeric_labels_sort_by_value(tmp_path):
    path = write_csv(tmp_path / "stars.csv", ["text", "label"], [("a", 10), ("b", 2), ("c", 1), ("d", 2)])
    data = load_labeled_texts(path)
    assert data.label_names == ["1", "2", "10"]
    assert data.labels.tolist() == [2, 1, 0, 1]


def test_text_labels_sort_alphabetically(tmp_path):
    path = write_csv(tmp_path / "topics.csv", ["text", "label"], [("a", "sport"), ("b", "arts"), ("c", "news")])
    data = load_labeled_texts(path)
    assert data.label_names == ["arts", "news", "sport"]
    assert data.labels.tolist() == [2, 0, 1]
    assert data.class_weighting is None


def test_rows_without_label_or_text_are_dropped_and_counted(tmp_path, caplog):
    rows = [("kept", "pos"), ("no label", None), ("   ", "neg"), ("also kept", "neg"), ("blank label", " ")]
    path = write_csv(tmp_path / "reviews.csv", ["text", "label"], rows)
    with caplog.at_level(logging.WARNING):
        data = load_labeled_texts(path)
    assert data.texts == ["kept", "also kept"]
    assert data.dropped_rows == 3
    assert "dropped 2 rows" in caplog.text and "'label'" in caplog.text


def test_custom_column_names(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["id", "body", "tag"], [("x", "hello", "y"), ("z", "bye", "w")])
    data = load_labeled_texts(path, text_column="body", label_column="tag")
    assert data.texts == ["hello", "bye"]
    assert data.label_names == ["w", "y"]


def test_align_labels_maps_into_the_training_order():
    test_data = LabeledTexts(texts=["x", "y", "z"], labels=np.array([0, 1, 0]), label_names=["fresh", "rotten"])
    aligned = align_labels(test_data, ["rotten", "fresh"])
    assert aligned.label_names == ["rotten", "fresh"]
    assert aligned.labels.tolist() == [1, 0, 1]
    message = user_error_message(align_labels, test_data, ["rotten", "meh"])
    assert "'fresh'" in message and "rotten, meh" in message


def test_test_file_read_in_the_training_classes(tmp_path):
    train = load_labeled_texts(write_csv(tmp_path / "train.csv", ["text", "label"], [("a", "pos"), ("b", "neg"), ("c", "neu")]))
    test_path = write_csv(tmp_path / "test.csv", ["text", "label"], [("x", "pos"), ("y", "neu")])
    test = load_labeled_texts(test_path, label_names=train.label_names)
    assert test.label_names == ["neg", "neu", "pos"]
    assert test.labels.tolist() == [2, 1]
    other_path = write_csv(tmp_path / "other.csv", ["text", "label"], [("x", "pos"), ("y", "meh")])
    message = user_error_message(load_labeled_texts, other_path, label_names=train.label_names)
    assert "'meh'" in message and "neg, neu, pos" in message


# ----------------------------------------------------------------------------- errors


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "reviews.csv"
    message = user_error_message(load_labeled_texts, path)
    assert "not found" in message and str(path) in message


def test_directory_is_not_a_file(tmp_path):
    assert "directory" in user_error_message(load_labeled_texts, tmp_path)


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "reviews.csv"
    path.write_bytes(content)
    assert "is empty" in user_error_message(load_labeled_texts, path)


def test_header_only(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\n", encoding="utf-8")
    message = user_error_message(load_labeled_texts, path)
    assert "no data rows" in message and "header: text, label" in message


def test_missing_text_column_lists_the_columns_found(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["review", "label"], [("hi", "pos")])
    message = user_error_message(load_labeled_texts, path)
    assert "text column 'text' not found" in message
    assert "columns found: review, label" in message and "--text-column" in message


def test_missing_label_column_lists_the_columns_found(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["text", "sentiment"], [("hi", "pos")])
    message = user_error_message(load_labeled_texts, path)
    assert "label column 'label' not found" in message
    assert "columns found: text, sentiment" in message and "--label-column" in message


def test_text_column_without_text(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["text", "label"], [("", "pos"), ("  ", "neg")])
    assert "no text on any row" in user_error_message(load_labeled_texts, path)


def test_labels_missing_on_every_row(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["text", "label"], [("hello", None), ("bye", None)])
    assert "empty on every row" in user_error_message(load_labeled_texts, path)


def test_no_row_with_both_text_and_label(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["text", "label"], [("hello", None), (None, "pos")])
    assert "both a text and a label" in user_error_message(load_labeled_texts, path)


def test_one_class_only(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["text", "label"], [("hello", "pos"), ("bye", "pos")])
    message = user_error_message(load_labeled_texts, path)
    assert "only one class" in message and "'pos'" in message


def test_unknown_extension(tmp_path):
    path = tmp_path / "reviews.xlsx"
    path.write_bytes(b"not a table")
    message = user_error_message(load_labeled_texts, path)
    assert ".xlsx" in message or "reviews.xlsx" in message
    assert ".parquet" in message


def test_rows_with_too_many_fields(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\nok,pos\nbroken,neg,extra\n", encoding="utf-8")
    assert "could not parse" in user_error_message(load_labeled_texts, path)


def test_invalid_json_line_is_named(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": oops}\n', encoding="utf-8")
    assert "line 2" in user_error_message(load_labeled_texts, path)


def test_json_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n[1, 2]\n', encoding="utf-8")
    assert "line 2" in user_error_message(load_labeled_texts, path)


def test_damaged_compressed_file(tmp_path):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(b"this is not gzip data")
    assert "could not read" in user_error_message(load_labeled_texts, path)


def test_unknown_preset_lists_known_ones(tmp_path):
    message = user_error_message(load_labeled_texts, tmp_path / "x.csv", preset="imdb")
    assert "'imdb'" in message
    for name in ("amazon-fine-food", "gop-debate", "rotten-tomatoes", "sst2"):
        assert name in message


def test_preset_without_a_bundled_file_needs_a_path():
    message = user_error_message(load_labeled_texts, None, preset="gop-debate")
    assert "--data" in message and "kaggle" in message.lower()


# ----------------------------------------------------------------------------- splits


def test_split_proportions_are_stratified():
    data = labeled([0] * 60 + [1] * 40)
    splits = split_labeled_texts(data, seed=7)
    assert (len(splits.train.texts), len(splits.validation.texts), len(splits.test.texts)) == (80, 10, 10)
    for part, expected in ((splits.train, [48, 32]), (splits.validation, [6, 4]), (splits.test, [6, 4])):
        assert np.bincount(part.labels, minlength=2).tolist() == expected
        assert part.label_names == ["a", "b"]
    everything = splits.train.texts + splits.validation.texts + splits.test.texts
    assert sorted(everything) == sorted(data.texts)


def test_split_is_deterministic_per_seed():
    data = labeled([0] * 60 + [1] * 40)
    first, again, other = (split_labeled_texts(data, seed=seed) for seed in (1, 1, 2))
    assert first.test.texts == again.test.texts and first.train.texts == again.train.texts
    assert first.test.texts != other.test.texts


def test_split_keeps_texts_with_their_labels():
    texts = [f"{'a' if label == 0 else 'b'}-{index}" for index, label in enumerate([0] * 30 + [1] * 30)]
    data = LabeledTexts(texts=texts, labels=np.array([0] * 30 + [1] * 30), label_names=["a", "b"])
    for part in split_labeled_texts(data, seed=3).__dict__.values():
        assert all(text[0] == "ab"[label] for text, label in zip(part.texts, part.labels))


def test_split_with_test_data_uses_it_and_maps_its_labels():
    data = labeled([0] * 45 + [1] * 45, label_names=("neg", "pos"))
    test_data = LabeledTexts(texts=["t1", "t2", "t3"], labels=np.array([0, 0, 1]), label_names=["pos", "neg"])
    splits = split_labeled_texts(data, seed=0, test_data=test_data)
    assert splits.test.texts == ["t1", "t2", "t3"]
    assert splits.test.label_names == ["neg", "pos"]
    assert splits.test.labels.tolist() == [1, 1, 0]
    # validation is 0.1 / 0.9 = 1/9 of the training file, train keeps the other 8/9
    assert (len(splits.train.texts), len(splits.validation.texts)) == (80, 10)


def test_split_with_test_data_rejects_unknown_labels():
    data = labeled([0] * 45 + [1] * 45, label_names=("neg", "pos"))
    test_data = LabeledTexts(texts=["t1", "t2"], labels=np.array([0, 1]), label_names=["neg", "neutral"])
    message = user_error_message(split_labeled_texts, data, seed=0, test_data=test_data)
    assert "'neutral'" in message


def test_class_too_small_to_stratify_is_named():
    data = labeled([0] * 50 + [1] * 4, label_names=("common", "rare"))
    message = user_error_message(split_labeled_texts, data, seed=0)
    assert "'rare' has 4 rows" in message and "at least 10" in message


def test_split_fractions_are_checked():
    message = user_error_message(split_labeled_texts, labeled([0] * 50 + [1] * 50), seed=0, test_fraction=0.95)
    assert "sum to less than 1" in message


def test_split_carries_dropped_rows_and_weighting():
    data = LabeledTexts(
        texts=[str(i) for i in range(40)], labels=np.array([0, 1] * 20), label_names=["a", "b"],
        dropped_rows=5, class_weighting="balanced",
    )
    splits = split_labeled_texts(data, seed=0)
    assert (splits.train.dropped_rows, splits.validation.dropped_rows, splits.test.dropped_rows) == (5, 0, 0)
    assert splits.validation.class_weighting == "balanced"


# ----------------------------------------------------------------------------- class weights


def test_balanced_class_weights():
    weights = compute_class_weights(np.array([0, 0, 0, 1, 2, 2]), 3)
    assert weights == pytest.approx({0: 6 / 9, 1: 2.0, 2: 1.0})


def test_class_weights_refuse_an_absent_class():
    with pytest.raises(ValueError, match="class 1"):
        compute_class_weights(np.array([0, 0, 2]), 3)


def test_labeled_texts_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        LabeledTexts(texts=["a"], labels=np.array([0, 1]), label_names=["x", "y"])
