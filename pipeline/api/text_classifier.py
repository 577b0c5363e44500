"""TextClassifier: `run` as a scikit-learn classifier, and load_run: any finished run folder as a fitted one.

`fit` hands texts and labels held in memory to the shared core's `run` (pipeline.runs.run), as the command line does: the same
split, cached features, head or fine-tuning, evaluation and run folder. The run folder is where the fitted model
lives: `output_dir` names it, else it is a private temporary folder that `save(path)` copies out. Prediction
goes through `predict`'s own code on that folder, so a fitted classifier, `load_run` of its folder and
`python -m pipeline predict --model` give the same probabilities.

A fitted TextClassifier pickles (and `joblib.dump`s) without its TensorFlow models: its parameters, classes and
metrics, and the run folder's files as bytes (TensorBoard logs and checkpoints left out, since predicting never
reads them). Unpickling writes them to a private temporary folder and loads the models on the first prediction.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from pipeline.api.inputs import (
    InvalidInput,
    invalid_input_errors,
    label_indicators,
    label_texts,
    labeled_pair,
    labeled_texts,
    settings_from,
    store_parameters,
    texts_from,
)
from pipeline.base.config import (
    DEFAULT_HEAD,
    EMBEDDED_ENCODER,
    FEATURES_STAGE,
    TRAINING_STAGE,
    RunConfig,
    options_of_record,
)
from pipeline.data.tables import IN_MEMORY_DATA, LabeledTexts, split_labeled_texts
from pipeline.runs import run_folder
from pipeline.runs.predict import RunFolderModel

CLASSIFIER_STAGES = (FEATURES_STAGE, TRAINING_STAGE)  # the options TextClassifier takes
NOT_PICKLED = (run_folder.LOGS_DIR, "checkpoints")  # a run folder's parts that predicting never reads


class TextClassifier(ClassifierMixin, BaseEstimator):
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

    # ------------------------------------------------------------------ fitting

    def fit(self, texts: Any, labels: Any, validation_data: Any = None, test_data: Any = None) -> TextClassifier:
        """Trains and evaluates as `run` does, and writes the run folder.

        Splits as `run` splits a table (stratified, seeded): 10% test, 10% validation, the rest train. With
        `validation_data=(texts, labels)` that is the validation set (the checkpoint and early stopping watch
        it) and train is the rest after the test split; with `test_data=(texts, labels)` that is the test set
        the run folder's test metrics are measured on, as `--test-data`.
        """
        config = self._config()
        training = labeled_texts(texts, labels, source="the training data")
        validation = None if validation_data is None else labeled_pair(
            validation_data, name="validation_data", source="the validation data", training=training)
        test = None if test_data is None else labeled_pair(
            test_data, name="test_data", source="the test data", training=training)
        with invalid_input_errors():
            splits = split_labeled_texts(training, seed=config.seed, test_data=test, validation_data=validation)
        classes = _label_values(labels, training)
        self._forget_fit()
        private_dir = None if config.output_dir else Path(tempfile.mkdtemp(prefix="pipeline-text-classifier-"))
        try:
            from pipeline.runs.run import run

            run_dir = None if private_dir is None else run_folder.choose_run_dir(None, runs_dir=private_dir,
                                                                                 name=IN_MEMORY_DATA)
            with invalid_input_errors():
                result = run(config, show_progress=bool(self.progress), data=(training, splits), run_dir=run_dir)
        except BaseException:
            if private_dir is not None:
                shutil.rmtree(private_dir, ignore_errors=True)
            raise
        if private_dir is not None:
            self._remove_private_dir = weakref.finalize(self, shutil.rmtree, str(private_dir), True)
        self._attach(result.run_dir, result.metrics, classes)
        return self

    def _config(self) -> RunConfig:
        """The settings object `run` would get for these parameters; InvalidInput with the command line's message."""
        return settings_from(self, CLASSIFIER_STAGES, data=IN_MEMORY_DATA)

    def _attach(self, run_dir: Path, metrics: dict[str, Any], classes: np.ndarray) -> None:
        """Loads the finished run folder's encoder and head the way `predict --model RUN` does."""
        from pipeline.base.devices import start_tensorflow

        start_tensorflow(verbose=False)
        with invalid_input_errors():
            self._model = QuietRunFolderModel(Path(run_dir))
        self.run_dir_ = Path(run_dir)
        self.metrics_ = metrics
        self.classes_ = classes

    def _forget_fit(self) -> None:
        remove = self.__dict__.pop("_remove_private_dir", None)
        if remove is not None:
            remove()
        for name in ("_model", "run_dir_", "metrics_", "classes_"):
            self.__dict__.pop(name, None)

    # ------------------------------------------------------------------ predicting

    def predict_proba(self, texts: Any) -> np.ndarray:
        """float32 [len(texts), len(classes_)]: column k is the probability of `classes_[k]` (several labels per
        text: of label `classes_[k]`, independently of the others)."""
        from pipeline.runs.predict import predict_texts

        model = self._fitted_model()
        with invalid_input_errors():
            rows = texts_from(texts, source="the input")
        return predict_texts(model, rows, show_progress=bool(self.progress)).probabilities

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

    def _fitted_model(self) -> Any:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "classes_")
        if "_model" not in self.__dict__:  # unpickled: the models are loaded on first use
            self._attach(self.run_dir_, self.metrics_, self.classes_)
        return self._model

    # ------------------------------------------------------------------ the run folder

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Copies the run folder to `path`, a new folder, whole or not at all; returns it. `export`, `predict`,
        TensorBoard and `load_run` take it like any run folder."""
        self._fitted_model()
        target = Path(path)
        if target.exists() and target.resolve() == self.run_dir_.resolve():
            return target  # fitted with output_dir=path: already there
        with invalid_input_errors():
            run_folder.choose_run_dir(str(target), runs_dir=target.parent, name=IN_MEMORY_DATA)
        staging = target.parent / f".{target.name}.saving-{os.getpid()}"
        try:
            shutil.copytree(self.run_dir_, staging)
            if target.exists():  # empty, or an interrupted run's folder, which a run would replace too
                shutil.rmtree(target)
            staging.rename(target)
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InvalidInput(f"no space left on the device while saving the run folder to {target}; "
                                   f"free some space or save it elsewhere") from None
            raise
        return target

    def summary(self) -> str:
        """The lines `python -m pipeline run` prints at its end, for this fit."""
        from pipeline.runs.run import RunResult
        from pipeline.runs.summary import summary_table

        self._fitted_model()
        return summary_table(RunResult(run_dir=self.run_dir_, metrics=self.metrics_))

    # ------------------------------------------------------------------ scikit-learn and pickling

    def __getstate__(self) -> dict[str, Any]:
        """Parameters, and when fitted the run folder's files as bytes: never a TensorFlow object."""
        state = dict(super().__getstate__())
        for name in ("_model", "_remove_private_dir"):
            state.pop(name, None)
        if "run_dir_" in state:
            folder = Path(state.pop("run_dir_"))
            state["_run_folder_files"] = {
                path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
                if path.is_file() and path.relative_to(folder).parts[0] not in NOT_PICKLED}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Writes a fitted classifier's run folder into a private temporary folder, removed with the object."""
        files = state.pop("_run_folder_files", None)
        self.__dict__.update(state)
        if files is None:
            return
        private_dir = Path(tempfile.mkdtemp(prefix="pipeline-text-classifier-"))
        self._remove_private_dir = weakref.finalize(self, shutil.rmtree, str(private_dir), True)
        run_dir = private_dir / IN_MEMORY_DATA
        for relative, payload in files.items():
            (run_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            (run_dir / relative).write_bytes(payload)
        self.run_dir_ = run_dir

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags


class QuietRunFolderModel(RunFolderModel):
    """`predict`'s model of a run folder, its calls dropping TensorFlow's known runtime noise from stderr as `run`
    does around training and evaluation (one line per Keras predict call otherwise); the progress bar stays live."""

    def predict(self, texts: list[str]) -> np.ndarray:
        from pipeline.base.devices import known_tensorflow_noise_dropped

        with known_tensorflow_noise_dropped():
            return super().predict(texts)


def load_run(run_dir: str | os.PathLike[str]) -> TextClassifier:
    """A fitted TextClassifier from a finished run folder (one the command line wrote, `fit(output_dir=...)` or
    `save`): its parameters are the run's settled options, `classes_` its label names (strings, as recorded),
    and `predict_proba` on its test texts gives the run's test predictions."""
    with invalid_input_errors():
        run = run_folder.read_run_folder(run_dir)
    classifier = TextClassifier(**options_of_record(run.config, CLASSIFIER_STAGES))
    classifier._attach(run.run_dir, run.metrics, np.array(run.label_names))
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

