"""Tables with several labels per text: read from 0/1 columns or joined names, split with every label's share kept."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from helpers import MULTI_LABELS, tiny_multi_label_rows, write_csv, write_tiny_multi_label_csv

from pipeline.base.errors import UserError
from pipeline.data.tables import load_labeled_texts, split_labeled_texts
from pipeline.data.targets import MULTI_LABEL


def test_label_columns_and_joined_labels_give_the_same_indicators(tmp_path):
    columns = load_labeled_texts(write_tiny_multi_label_csv(tmp_path / "columns.csv", 40),
                                 label_columns=list(MULTI_LABELS))
    joined = load_labeled_texts(write_tiny_multi_label_csv(tmp_path / "joined.csv", 40, joined=True),
                                label_column="tags", label_separator="|")
    assert columns.kind == joined.kind == MULTI_LABEL
    assert columns.label_names == list(MULTI_LABELS) and joined.label_names == sorted(MULTI_LABELS)
    reordered = columns.labels[:, [MULTI_LABELS.index(name) for name in joined.label_names]]
    np.testing.assert_array_equal(reordered, joined.labels)
    assert columns.texts == joined.texts and len(columns.texts) == 40
    assert (columns.labels.sum(axis=1) == 0).sum() == 5  # texts with no label are kept


def test_true_false_yes_no_and_blanks_are_read_and_rows_without_text_dropped(tmp_path):
    rows = [("a", "true", "yes", ""), ("b", "False", "NO", "1"), ("", "1", "1", "1"), ("c", "0", "", "TRUE")]
    data = load_labeled_texts(write_csv(tmp_path / "words.csv", ["text", *MULTI_LABELS], rows),
                              label_columns=list(MULTI_LABELS))
    assert data.texts == ["a", "b", "c"]
    np.testing.assert_array_equal(data.labels, [[1, 1, 0], [0, 0, 1], [0, 0, 1]])


def test_a_test_table_is_read_in_the_training_labels(tmp_path):
    path = write_tiny_multi_label_csv(tmp_path / "joined.csv", 40, joined=True)
    train = load_labeled_texts(path, label_column="tags", label_separator="|")
    write_csv(tmp_path / "test.csv", ["text", "tags"], [("x", "plot"), ("y", "")])
    test = load_labeled_texts(tmp_path / "test.csv", label_column="tags", label_separator="|",
                              label_names=train.label_names)
    np.testing.assert_array_equal(test.labels, [[0, 0, 1], [0, 0, 0]])  # a test table need not use the separator
    write_csv(tmp_path / "unknown.csv", ["text", "tags"], [("x", "cast")])
    with pytest.raises(UserError, match="label 'cast' in row 1, not among the training labels"):
        load_labeled_texts(tmp_path / "unknown.csv", label_column="tags", label_separator="|",
                           label_names=train.label_names)


def test_the_split_keeps_every_labels_share_and_is_seeded(tmp_path):
    data = load_labeled_texts(write_tiny_multi_label_csv(tmp_path / "tags.csv", 200), label_columns=list(MULTI_LABELS))
    splits = split_labeled_texts(data, seed=3)
    assert [len(part.texts) for part in (splits.train, splits.validation, splits.test)] == [160, 20, 20]
    for part in (splits.validation, splits.test):
        np.testing.assert_allclose(part.labels.mean(axis=0), data.labels.mean(axis=0), atol=0.051)
    again = split_labeled_texts(data, seed=3)
    assert again.test.texts == splits.test.texts
    assert split_labeled_texts(data, seed=4).test.texts != splits.test.texts
    assert sorted(splits.train.texts + splits.validation.texts + splits.test.texts) == sorted(data.texts)


def test_a_label_too_rare_for_every_split_is_named_in_one_warning(tmp_path, caplog):
    rows = [(text, acting, plot, 1 if index == 0 else 0)
            for index, (text, acting, plot, _) in enumerate(tiny_multi_label_rows(40))]
    data = load_labeled_texts(write_csv(tmp_path / "rare.csv", ["text", *MULTI_LABELS], rows),
                              label_columns=list(MULTI_LABELS))
    with caplog.at_level(logging.WARNING):
        split_labeled_texts(data, seed=0)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ending (absent from" in warnings[0] and "acting" not in warnings[0]


def test_too_few_rows_for_three_splits_is_a_user_error(tmp_path):
    rows = [("the acting is good", 1, 1, 1), ("the plot is good", 1, 1, 1)]
    data = load_labeled_texts(write_csv(tmp_path / "two.csv", ["text", *MULTI_LABELS], rows),
                              label_columns=list(MULTI_LABELS))
    with pytest.raises(UserError, match="2 rows are too few to split into train, validation, test"):
        split_labeled_texts(data, seed=0)


def test_the_toxic_comments_preset_reads_kaggles_train_csv(tmp_path):
    from pipeline.data.presets import TOXIC_LABELS

    header = ["id", "comment_text", *TOXIC_LABELS]
    rows = [("0001", "Thanks for the edit.\n\nLooks   good.", 0, 0, 0, 0, 0, 0),
            ("0002", "You are an idiot", 1, 0, 1, 0, 1, 0),
            ("0003", "I will find you", 1, 1, 0, 1, 0, 1),
            ("0004", "", 1, 0, 0, 0, 0, 0)]
    data = load_labeled_texts(write_csv(tmp_path / "train.csv", header, rows), preset="toxic-comments")
    assert data.kind == MULTI_LABEL and data.label_names == list(TOXIC_LABELS)
    assert data.texts == ["Thanks for the edit. Looks good.", "You are an idiot", "I will find you"]
    np.testing.assert_array_equal(data.labels, [row[2:] for row in rows[:3]])
    chosen = load_labeled_texts(tmp_path / "train.csv", preset="toxic-comments", label_columns=["insult", "threat"])
    np.testing.assert_array_equal(chosen.labels, [[0, 0], [1, 0], [0, 1]])
    with pytest.raises(UserError, match="preset toxic-comments reads 0/1 label columns"):
        load_labeled_texts(tmp_path / "train.csv", preset="toxic-comments", label_separator=",")
