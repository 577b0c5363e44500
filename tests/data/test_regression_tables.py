"""Tables with a number per text: read as float32, split on the target's quantile bins, seeded."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_rating_rows, write_csv

from pipeline.base.errors import UserError
from pipeline.data.tables import load_labeled_texts, split_labeled_texts
from pipeline.data.targets import REGRESSION, quantile_bins, regression_target


def test_a_label_column_is_read_as_numbers_and_rows_without_one_are_dropped(tmp_path):
    rows = [("a", "4"), ("b", "2.5"), ("c", ""), ("d", "-1e1")]
    data = load_labeled_texts(write_csv(tmp_path / "scores.csv", ["text", "score"], rows), label_column="score",
                              regression=True)
    assert data.kind == REGRESSION and data.label_names == ["score"] and data.texts == ["a", "b", "d"]
    np.testing.assert_array_equal(data.labels, np.array([4.0, 2.5, -10.0], np.float32))


def test_the_split_keeps_the_targets_spread_in_every_part_and_is_seeded(tmp_path):
    skewed = [(f"text {index}", 5 if index % 10 < 6 else index % 10 - 5) for index in range(300)]
    data = load_labeled_texts(write_csv(tmp_path / "stars.csv", ["text", "stars"], skewed), label_column="stars",
                              regression=True)
    splits = split_labeled_texts(data, seed=7)
    # 30 test rows, then 1/9 of the other 270 for validation, rounded up as for classes.
    assert [len(part.texts) for part in (splits.train, splits.validation, splits.test)] == [239, 31, 30]
    for part in (splits.validation, splits.test):  # each star's share kept to within a row
        for stars in range(1, 6):
            assert abs(np.mean(part.labels == stars) - np.mean(data.labels == stars)) <= 1 / len(part.labels) + 1e-9
    assert split_labeled_texts(data, seed=7).test.texts == splits.test.texts
    assert split_labeled_texts(data, seed=8).test.texts != splits.test.texts


def test_quantile_bins_join_a_bin_too_small_to_split():
    values = np.array([0.0] * 50 + [5.0] + [10.0] * 49)
    assert np.bincount(quantile_bins(values, 10)).tolist() == [50, 50]
    assert np.bincount(quantile_bins(np.arange(100.0), 10)).tolist() == [10] * 10


def test_the_target_records_scale_range_and_the_levels_of_whole_values():
    stars = np.array([1, 2, 3, 4, 5, 5], np.float32)
    target = regression_target("stars", stars)
    assert target.scale == pytest.approx((np.mean(stars), np.std(stars)))
    assert target.bounds == (1.0, 5.0) and target.levels == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert regression_target("score", np.array([0.5, 1.5, 2.0]), extrapolate=True).bounds is None
    assert regression_target("score", np.array([0.5, 1.5, 2.0])).levels is None


def test_too_few_rows_to_split_is_a_user_error(tmp_path):
    data = load_labeled_texts(write_csv(tmp_path / "few.csv", ["text", "stars"], tiny_rating_rows(9)),
                              label_column="stars", regression=True)
    with pytest.raises(UserError, match="9 rows are too few for a 10% split"):
        split_labeled_texts(data, seed=0)
