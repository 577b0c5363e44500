"""Several labels per text (pipeline.data.targets): indicator matrices from 0/1 columns and from joined label
names, the errors that name what to fix, and the iterative stratification that keeps each label's share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.base.errors import UserError
from pipeline.data.targets import (
    MULTI_LABEL,
    Target,
    indicators_from_columns,
    indicators_from_joined,
    iterative_split,
    labels_missing_from_splits,
    require_positives,
)


def test_label_columns_read_1_0_true_false_yes_no_and_blank_as_0():
    table = pd.DataFrame({"text": list("abcde"), "toxic": [1, 0, "1", None, 1.0],
                          "insult": ["yes", "No", "TRUE", "false", ""], "threat": [True, False, np.nan, 0, "0"]})
    matrix = indicators_from_columns(table, ["toxic", "insult", "threat"], source="train.csv")
    assert matrix.tolist() == [[1, 1, 1], [0, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]]
    assert matrix.dtype == np.int8


@pytest.mark.parametrize("columns, cells, message", [
    (["toxic", "obscene"], [1, 0], "train.csv has no column 'obscene' (its columns: text, toxic); name label columns "
                                   "that exist in --label-columns"),
    (["toxic"], [1, "maybe"], "label column 'toxic' of train.csv holds 'maybe' in row 2; a label column holds 1 or 0"),
    (["toxic"], [1, 2], "label column 'toxic' of train.csv holds 2 in row 2"),
    (["toxic", "toxic"], [1, 0], "--label-columns names a column twice (toxic, toxic); name each label once"),
])
def test_a_missing_column_a_bad_cell_or_a_repeated_column_is_one_error_that_says_what_to_do(columns, cells, message):
    with pytest.raises(UserError) as raised:
        indicators_from_columns(pd.DataFrame({"text": ["a", "b"], "toxic": cells}), columns, source="train.csv")
    assert str(raised.value).startswith(message)


def test_joined_labels_are_split_sorted_and_an_empty_cell_is_a_text_without_labels():
    names, matrix = indicators_from_joined(["joy,love", "", None, " fear ", "love,joy,joy"], ",", source="tags.csv")
    assert names == ["fear", "joy", "love"]
    assert matrix.tolist() == [[0, 1, 1], [0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 1]]
    names, matrix = indicators_from_joined(["love", "anger"], ",", source="test.csv", names=names + ["anger"])
    assert matrix.tolist() == [[0, 0, 1, 0], [0, 0, 0, 1]]
    with pytest.raises(UserError, match="test.csv has label 'surprise' in row 1, not among the training labels"):
        indicators_from_joined(["surprise"], ",", source="test.csv", names=names)


def test_a_separator_that_occurs_nowhere_is_refused():
    with pytest.raises(UserError, match="--label-separator ';' occurs in no label cell of tags.csv"):
        indicators_from_joined(["joy,love", "fear"], ";", source="tags.csv")


def test_a_label_never_positive_in_the_training_data_is_named():
    with pytest.raises(UserError, match="label 'trust' is never positive in the training data; drop it"):
        require_positives(np.array([[1, 0], [0, 0]]), ["joy", "trust"], source="the training data")
    require_positives(np.array([[1, 0], [0, 1]]), ["joy", "trust"], source="the training data")


def test_the_target_round_trips_through_its_record():
    target = Target(MULTI_LABEL, ("joy", "love"), thresholds=(0.25, 0.5))
    assert Target.from_record(target.record()) == target
    assert Target.from_record(Target(MULTI_LABEL, ("a",)).record()).thresholds is None


def emotions(rows: int, seed: int) -> np.ndarray:
    """Correlated labels of very different frequencies, as emotions of tweets are, with some texts unlabelled."""
    generator = np.random.default_rng(seed)
    base = generator.random((rows, 1))
    return (generator.random((rows, 6)) < np.array([0.45, 0.3, 0.15, 0.06, 0.03, 0.01]) * (0.5 + base)).astype(np.int8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iterative_stratification_keeps_every_labels_share_in_each_split_better_than_a_random_split(seed):
    matrix = emotions(2000, seed)
    fractions = [0.8, 0.1, 0.1]
    assignment = iterative_split(matrix, fractions, seed=seed)
    assert sorted(np.bincount(assignment).tolist()) == sorted([1600, 200, 200])
    totals = matrix.sum(axis=0)
    for split, fraction in enumerate(fractions):
        share = matrix[assignment == split].sum(axis=0)
        assert np.all(np.abs(share - fraction * totals) <= 1), (split, share, fraction * totals)
    random_assignment = np.random.default_rng(seed).permutation(np.repeat([0, 1, 2], [1600, 200, 200]))
    random_error = np.abs(matrix[random_assignment == 2].sum(axis=0) - 0.1 * totals).sum()
    assert np.abs(matrix[assignment == 2].sum(axis=0) - 0.1 * totals).sum() < random_error
    assert np.array_equal(iterative_split(matrix, fractions, seed=seed), assignment)  # seeded


def test_a_label_too_rare_for_three_splits_is_named_with_the_splits_it_misses():
    matrix = np.zeros((50, 2), np.int8)
    matrix[:20, 0] = 1
    matrix[0, 1] = 1  # one positive: two splits go without
    assignment = iterative_split(matrix, [0.8, 0.1, 0.1], seed=0)
    (missing,) = labels_missing_from_splits(matrix, assignment, ["joy", "trust"], ["train", "validation", "test"])
    assert missing.startswith("trust (absent from ") and missing.count(",") == 1
