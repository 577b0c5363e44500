"""TextClassifier with several labels per text: a 0/1 matrix, a DataFrame of 0/1 columns or label collections in;
an indicator matrix, independent probabilities and the label names out, as scikit-learn's multi-label estimators."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import MULTI_LABELS, tiny_multi_label_rows

from pipeline import TextClassifier, load_run
from pipeline.api.inputs import InvalidInput

ROWS = tiny_multi_label_rows(90)
TEXTS = [row[0] for row in ROWS]
FRAME = pd.DataFrame([row[1:] for row in ROWS], columns=list(MULTI_LABELS))
NEW_TEXTS = ["the acting is good", "the plot is good and the ending is good", "the movie is long"]


def classifier(tiny_encoder_dir, cache_dir, **options):
    return TextClassifier(str(tiny_encoder_dir), epochs=3, batch_size=16, max_seq_length=24, precision="float32",
                          cache_dir=cache_dir, progress=False, **options)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, tiny_encoder_dir):
    return classifier(tiny_encoder_dir, tmp_path_factory.mktemp("cache")).fit(TEXTS, FRAME)


def test_a_dataframe_of_label_columns_gives_names_an_indicator_matrix_and_independent_probabilities(fitted):
    assert list(fitted.classes_) == list(MULTI_LABELS)
    probabilities = fitted.predict_proba(NEW_TEXTS)
    predicted = fitted.predict(NEW_TEXTS)
    assert probabilities.shape == predicted.shape == (3, 3) and probabilities.dtype == np.float32
    thresholds = np.array(fitted.metrics_["target"]["thresholds"], np.float32)
    np.testing.assert_array_equal(predicted, (probabilities >= thresholds).astype(int))
    assert set(np.unique(predicted)) <= {0, 1}
    assert fitted.metrics_["test"]["macro_auroc"] > 0.75  # chance: 0.5
    expected_subset_accuracy = np.mean((fitted.predict(TEXTS) == FRAME.to_numpy()).all(axis=1))
    assert fitted.score(TEXTS, FRAME) == pytest.approx(expected_subset_accuracy)
    assert "macro_auroc" in fitted.summary()


def test_label_collections_and_a_matrix_give_the_same_labels(tiny_encoder_dir, tmp_path):
    collections = [{name for name, flag in zip(MULTI_LABELS, row[1:]) if flag} for row in ROWS]
    from_sets = classifier(tiny_encoder_dir, tmp_path / "cache", ensemble=1).fit(TEXTS, collections)
    assert list(from_sets.classes_) == sorted(MULTI_LABELS)
    assert from_sets.predict(NEW_TEXTS).shape == (3, 3)
    assert from_sets.score(TEXTS, [list(labels) for labels in collections]) > 0.25  # chance: 1/8
    from_matrix = classifier(tiny_encoder_dir, tmp_path / "cache", ensemble=1).fit(TEXTS, FRAME.to_numpy())
    np.testing.assert_array_equal(from_matrix.classes_, [0, 1, 2])


def test_a_saved_and_loaded_run_predicts_the_same_with_its_thresholds(fitted, tmp_path):
    loaded = load_run(fitted.save(tmp_path / "saved"))
    assert list(loaded.classes_) == list(MULTI_LABELS)
    np.testing.assert_allclose(loaded.predict_proba(NEW_TEXTS), fitted.predict_proba(NEW_TEXTS), atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(NEW_TEXTS), fitted.predict(NEW_TEXTS))


@pytest.mark.parametrize(("labels", "message"), [
    (FRAME.assign(ending=0), "'ending' is never positive"),
    (FRAME.assign(plot=["x"] + [0] * (len(FRAME) - 1)), "holds 'x' in row 0; .* or drop that column from the labels"),
    ([["acting"]] * 10 + ["plot"] * (len(TEXTS) - 10), "label 10 of the training data is a str, not a collection"),
    (FRAME.iloc[:10], "90 texts but 10 rows of labels"),
])
def test_bad_labels_are_one_error_before_any_work(tiny_encoder_dir, tmp_path, labels, message):
    with pytest.raises(InvalidInput, match=message):
        classifier(tiny_encoder_dir, tmp_path / "cache").fit(TEXTS, labels)
    assert not (tmp_path / "cache").exists()
