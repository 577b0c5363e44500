"""TextRegressor: `run --regression` as a scikit-learn regressor: texts in, one number per text out (stars, scores,
grades), through the same split, cached features, head and run folder as TextClassifier (pipeline.api.run_estimator).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import RegressorMixin

from pipeline.api.inputs import numeric_texts, store_parameters
from pipeline.api.run_estimator import RunEstimator
from pipeline.base.config import DEFAULT_HEAD, EMBEDDED_ENCODER, FEATURES_STAGE, REGRESSION_STAGE, TRAINING_STAGE
from pipeline.data.tables import LabeledTexts

REGRESSOR_STAGES = (FEATURES_STAGE, TRAINING_STAGE, REGRESSION_STAGE)  # the options TextRegressor takes


class TextRegressor(RegressorMixin, RunEstimator):
    """Texts -> a number: frozen BERT features and a small Keras head ending in one linear unit, trained on the
    standardised target and evaluated exactly as `python -m pipeline run --regression` does.

    Parameters are TextClassifier's feature and head options (without `class_weights`), plus `loss` ('mse' or
    'huber') and `extrapolate` (False keeps predictions within the range of the training targets).

    `score` is R^2, as for any scikit-learn regressor. Attributes after `fit`: `run_dir_` (the run folder),
    `metrics_` (its metrics.json: RMSE, MAE, R^2, Spearman and Pearson of the head and the ridge probe).
    """

    STAGES = REGRESSOR_STAGES
    FIXED = {"regression": True}

    def __init__(self, encoder: str = EMBEDDED_ENCODER, *, pooling: str | None = None, layers: Any = None,
                 combine: str = "concat", max_seq_length: int | str | None = None, long_texts: str | None = None,
                 head_tokens: int | None = None, window_overlap: int | None = None, max_windows: int | None = None,
                 precision: str = "auto", head: str = DEFAULT_HEAD, epochs: int | None = None, batch_size: int | None = None,
                 learning_rate: float | None = None, dropout_rate: float | None = None, hidden_units: Any = None,
                 weight_decay: float | None = None, ensemble: int | None = None, loss: str | None = None,
                 extrapolate: bool = False, fine_tune: bool = False, seed: int = 42,
                 output_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 extraction_batch_size: int = 64, progress: bool = True):
        store_parameters(self, locals())

    def fit(self, texts: Any, targets: Any, validation_data: Any = None, test_data: Any = None) -> TextRegressor:
        """Trains and evaluates as `run --regression` does, and writes the run folder; the split is stratified on
        the target's quantile bins, otherwise as TextClassifier.fit."""
        self._fit(texts, targets, validation_data, test_data)
        return self

    def _labeled(self, texts: Any, targets: Any, *, source: str, training: LabeledTexts | None = None) -> LabeledTexts:
        return numeric_texts(texts, targets, source=source, name=None if training is None else training.label_names[0])

    def predict(self, texts: Any) -> np.ndarray:
        """float32 [len(texts)]: each text's predicted number, in the target's own units."""
        return self._outputs(texts)[:, 0]
