"""TextRegressor: `run --regression` as a scikit-learn regressor, and load_run of a regression's run folder."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from helpers import tiny_rating_rows

from pipeline import TextClassifier, TextRegressor, load_run
from pipeline.api.inputs import InvalidInput

ROWS = tiny_rating_rows(120)
TEXTS = [text for text, _ in ROWS]
STARS = pd.Series([stars for _, stars in ROWS], name="stars")
NEW_TEXTS = ["the movie is great great great great and long", "the film is and slow"]


def regressor(tiny_encoder_dir, cache_dir, **options):
    return TextRegressor(str(tiny_encoder_dir), epochs=20, batch_size=16, max_seq_length=24, precision="float32",
                         cache_dir=cache_dir, progress=False, **options)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, tiny_encoder_dir):
    return regressor(tiny_encoder_dir, tmp_path_factory.mktemp("cache")).fit(TEXTS, STARS)


def test_fit_predict_and_score_as_a_scikit_learn_regressor(fitted):
    from sklearn.metrics import r2_score

    predictions = fitted.predict(NEW_TEXTS)
    assert predictions.shape == (2,) and predictions.dtype == np.float32
    assert predictions[0] > predictions[1] and 1.0 <= predictions.min() <= predictions.max() <= 5.0
    assert fitted.score(TEXTS, STARS) == pytest.approx(r2_score(STARS, fitted.predict(TEXTS)))
    assert fitted.metrics_["target"]["names"] == ["stars"] and fitted.metrics_["test"]["r2"] > 0.3
    assert "baseline (ridge regression)" in fitted.summary()
    assert not hasattr(fitted, "classes_")


def test_load_run_and_pickling_give_back_the_same_regressor(fitted, tmp_path):
    loaded = load_run(fitted.save(tmp_path / "saved"))
    assert isinstance(loaded, TextRegressor) and not isinstance(loaded, TextClassifier)
    np.testing.assert_allclose(loaded.predict(NEW_TEXTS), fitted.predict(NEW_TEXTS), atol=1e-6)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(again.predict(NEW_TEXTS), fitted.predict(NEW_TEXTS), atol=1e-6)


def test_extrapolate_and_huber_reach_the_run(tiny_encoder_dir, tmp_path):
    model = regressor(tiny_encoder_dir, tmp_path / "cache", ensemble=1, loss="huber", extrapolate=True)
    model.fit(TEXTS, STARS.to_numpy())
    assert model.metrics_["target"]["bounds"] is None and model.metrics_["config"]["loss"] == "huber"
    assert model.metrics_["target"]["names"] == ["target"]  # an array has no name


@pytest.mark.parametrize(("targets", "message"), [
    (["five"] + STARS.tolist()[1:], "target 0 of the training data is 'five', not a number"),
    ([3] * len(TEXTS), "holds 3 on every row"),
    (STARS.tolist()[:10], "120 texts but 10 targets"),
    ([float("nan")] + STARS.tolist()[1:], "holds nan in row 0, not a number"),
])
def test_bad_targets_are_one_error_before_any_work(tiny_encoder_dir, tmp_path, targets, message):
    with pytest.raises(InvalidInput, match=message):
        regressor(tiny_encoder_dir, tmp_path / "cache").fit(TEXTS, targets)
    assert not (tmp_path / "cache").exists()
    with pytest.raises(InvalidInput, match="--loss 'l1' is unknown"):
        regressor(tiny_encoder_dir, tmp_path / "cache", loss="l1").fit(TEXTS, STARS)
