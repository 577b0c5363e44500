"""TextClassifier: `run` as a scikit-learn classifier (pipeline.api.run_estimator has what it shares with
TextRegressor: the fit through `run`, the run folder, saving and pickling), and load_run: any finished run folder as
a fitted classifier or regressor."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin

from pipeline.api.inputs import (
    InvalidInput,
    invalid_input_errors,
    label_indicators,
    label_texts,
    labeled_texts,
    store_parameters,
)
from pipeline.api.run_estimator import RunEstimator
from pipeline.api.text_regressor import REGRESSOR_STAGES, TextRegressor
from pipeline.base.config import (
    CLASSES_STAGE,
    DEFAULT_HEAD,
    EMBEDDED_ENCODER,
    FEATURES_STAGE,
    TRAINING_STAGE,
    options_of_record,
)
from pipeline.data.tables import LabeledTexts
from pipeline.runs import run_folder

CLASSIFIER_STAGES = (FEATURES_STAGE, TRAINING_STAGE, CLASSES_STAGE)  # the options TextClassifier takes


class TextClassifier(ClassifierMixin, RunEstimator):
    """Texts -> classes: frozen BERT features and a small Keras head (or, with fine_tune=True, the encoder trained
    with a head), trained and evaluated exactly as `python -m pipeline run` trains and evaluates them.

    Parameters are `run`'s options of the same names (docs/usage.md). Feature options: `encoder`, `pooling`,
    `layers`, `combine`, `max_seq_length` (a number or "auto"), `long_texts` (truncate, head-tail, windows; None:
    windows, truncate when fine-tuning) with `head_tokens`, `window_overlap`, `max_windows` (docs/long-texts.md),
    `precision`, `cache_dir`, `extraction_batch_size`. Head options
    (None: the chosen head's default): `head` (mlp, paperspace), `epochs`, `batch_size`, `learning_rate`,
    `dropout_rate`, `hidden_units`, `weight_decay`, `ensemble`, `class_weights` ('balanced'); `fine_tune`; `seed`
    (the split, the initial weights and the data order). `output_dir`: the run folder `fit` writes (a new
    folder, as `--output-dir`); None keeps it in a private temporary folder until `save(path)`. `progress`:
    progress bars and per-epoch lines.

    Attributes after `fit`: `classes_` (the label values, in the order the run folder records them: sorted as
    the command line sorts a table's labels, or a categorical's categories in order), `run_dir_` (the run
    folder), `metrics_` (its metrics.json: test, validation and baseline metrics).
    """

    def __init__(self, encoder: str = EMBEDDED_ENCODER, *, pooling: str | None = None, layers: Any = None,
                 combine: str = "concat", max_seq_length: int | str | None = None, long_texts: str | None = None,
                 head_tokens: int | None = None, window_overlap: int | None = None, max_windows: int | None = None,
                 precision: str = "auto", head: str = DEFAULT_HEAD, epochs: int | None = None, batch_size: int | None = None,
                 learning_rate: float | None = None, dropout_rate: float | None = None, hidden_units: Any = None,
                 weight_decay: float | None = None, ensemble: int | None = None, class_weights: str | None = None,
                 fine_tune: bool = False, seed: int = 42, output_dir: str | Path | None = None,
                 cache_dir: str | Path | None = None, extraction_batch_size: int = 64, progress: bool = True):
        store_parameters(self, locals())

    STAGES = CLASSIFIER_STAGES

    # ------------------------------------------------------------------ fitting

    def fit(self, texts: Any, labels: Any, validation_data: Any = None, test_data: Any = None) -> TextClassifier:
        """Trains and evaluates as `run` does, and writes the run folder.

        Splits as `run` splits a table (stratified, seeded): 10% test, 10% validation, the rest train. With
        `validation_data=(texts, labels)` that is the validation set (the checkpoint and early stopping watch
        it) and train is the rest after the test split; with `test_data=(texts, labels)` that is the test set
        the run folder's test metrics are measured on, as `--test-data`.
        """
        self._fit(texts, labels, validation_data, test_data)
        return self

    def _labeled(self, texts: Any, targets: Any, *, source: str, training: LabeledTexts | None = None) -> LabeledTexts:
        if training is None:
            return labeled_texts(texts, targets, source=source)
        return labeled_texts(texts, targets, source=source, label_names=training.label_names,
                             multi_label=training.target.multi_label)

    def _fitted_attributes(self, targets: Any, training: LabeledTexts) -> dict[str, Any]:
        return {"classes_": _label_values(targets, training)}

    # ------------------------------------------------------------------ predicting

    def predict_proba(self, texts: Any) -> np.ndarray:
        """float32 [len(texts), len(classes_)]: column k is the probability of `classes_[k]` (several labels per
        text: of label `classes_[k]`, independently of the others)."""
        return self._outputs(texts)

    def predict(self, texts: Any) -> np.ndarray:
        """The most probable class of each text, as a value of `classes_`; with several labels per text, the 0/1
        indicator matrix [len(texts), len(classes_)]: 1 where a label's probability reaches its threshold (chosen on
        the validation split)."""
        target = self._fitted_model().target
        probabilities = self.predict_proba(texts)
        if target.multi_label:
            return (probabilities >= np.asarray(target.thresholds, dtype=probabilities.dtype)).astype(np.int64)
        return self.classes_[np.argmax(probabilities, axis=1)]

    def score(self, texts: Any, labels: Any, sample_weight: Any = None) -> float:
        """Accuracy; labels are compared as the run folder records them (read as a table's cells are), so the
        label values of a loaded run (strings) and the ones fitted on (say integers) both score. Several labels per
        text: subset accuracy (every label of a text right), as scikit-learn scores multi-label classifiers."""
        from sklearn.metrics import accuracy_score

        model = self._fitted_model()
        if model.target.multi_label:
            with invalid_input_errors():
                _, wanted_matrix = label_indicators(labels, source="the labels", label_names=model.label_names)
            predicted_matrix = self.predict(texts)
            if len(wanted_matrix) != len(predicted_matrix):
                raise InvalidInput(f"{len(predicted_matrix)} texts but {len(wanted_matrix)} rows of labels; pass one "
                                   f"row per text")
            return float(accuracy_score(wanted_matrix, predicted_matrix, sample_weight=sample_weight))
        label_names = model.label_names
        with invalid_input_errors():
            wanted = label_texts(labels, source="the labels")
        predicted = np.argmax(self.predict_proba(texts), axis=1)
        if len(wanted) != len(predicted):
            raise InvalidInput(f"{len(predicted)} texts but {len(wanted)} labels; pass one label per text")
        return float(accuracy_score(wanted, [label_names[index] for index in predicted], sample_weight=sample_weight))


def load_run(run_dir: str | os.PathLike[str]) -> TextClassifier | TextRegressor:
    """A fitted TextClassifier from a finished run folder (one the command line wrote, `fit(output_dir=...)` or
    `save`): its parameters are the run's settled options, `classes_` its label names (strings, as recorded),
    and `predict_proba` on its test texts gives the run's test predictions. A regression's run folder gives a
    fitted TextRegressor."""
    with invalid_input_errors():
        run = run_folder.read_run_folder(run_dir)
    if run.target.regression:
        regressor = TextRegressor(**options_of_record(run.config, REGRESSOR_STAGES))
        regressor._attach(run.run_dir, run.metrics)
        return regressor
    classifier = TextClassifier(**options_of_record(run.config, CLASSIFIER_STAGES))
    classifier._attach(run.run_dir, run.metrics)
    classifier.classes_ = np.array(run.label_names)
    return classifier


def _label_values(labels: Any, training: LabeledTexts) -> np.ndarray:
    """The caller's own label value for each class (the first row's that reads as its name), so `predict`
    answers in the type the labels were given in; several labels per text: their names (a 2-D array's column
    numbers)."""
    from pipeline.api.inputs import rows_of
    from pipeline.data.tables import value_to_text

    if training.target.multi_label:
        return np.arange(len(training.label_names)) if isinstance(labels, np.ndarray) else \
            np.array(training.label_names, dtype=object)

    first: dict[str, Any] = {}
    for value in rows_of(labels, source="the labels"):
        first.setdefault(value_to_text(value) or "", value)
    values = [first[name] for name in training.label_names]
    kinds = {type(value) for value in values}
    return np.array(values, dtype=object if len(kinds) > 1 else None)

