"""What TextClassifier and TextRegressor share: `fit` hands texts and targets held in memory to the shared core's
`run` (pipeline.runs.run), as the command line does: the same split, cached features, head or fine-tuning,
evaluation and run folder. The run folder is where the fitted model lives: `output_dir` names it, else it is a
private temporary folder that `save(path)` copies out. Prediction goes through `predict`'s own code on that folder,
so a fitted estimator, `load_run` of its folder and `python -m pipeline predict --model` give the same outputs.

A fitted estimator pickles (and `joblib.dump`s) without its TensorFlow models: its parameters, fitted attributes
and metrics, and the run folder's files as bytes (TensorBoard logs and checkpoints left out, since predicting never
reads them). Unpickling writes them to a private temporary folder and loads the models on the first prediction.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from pipeline.api.inputs import InvalidInput, invalid_input_errors, settings_from, texts_from
from pipeline.base.config import RunConfig
from pipeline.data.tables import IN_MEMORY_DATA, LabeledTexts, split_labeled_texts
from pipeline.runs import run_folder
from pipeline.runs.predict import RunFolderModel

NOT_PICKLED = (run_folder.LOGS_DIR, "checkpoints")  # a run folder's parts that predicting never reads
PRIVATE_FOLDER_PREFIX = "pipeline-text-classifier-"


class RunEstimator(BaseEstimator):
    """`run` as a scikit-learn estimator. A subclass says which options it takes (`STAGES`, and `FIXED` options it
    sets itself), how it reads its targets (`_labeled`), and what it learns of them (`_fitted_attributes`)."""

    STAGES: ClassVar[tuple[str, ...]]
    FIXED: ClassVar[dict[str, Any]] = {}

    def _labeled(self, texts: Any, targets: Any, *, source: str, training: LabeledTexts | None = None) -> LabeledTexts:
        """Checked texts with their targets (`training`: the training data, whose classes or labels others take)."""
        raise NotImplementedError

    def _fitted_attributes(self, targets: Any, training: LabeledTexts) -> dict[str, Any]:
        """The attributes `fit` sets beside run_dir_ and metrics_ (a classifier's `classes_`)."""
        return {}

    # ------------------------------------------------------------------ fitting

    def _fit(self, texts: Any, targets: Any, validation_data: Any, test_data: Any) -> None:
        config = self._config()
        training = self._labeled(texts, targets, source="the training data")
        validation = None if validation_data is None else self._labeled_pair(
            validation_data, name="validation_data", source="the validation data", training=training)
        test = None if test_data is None else self._labeled_pair(
            test_data, name="test_data", source="the test data", training=training)
        with invalid_input_errors():
            splits = split_labeled_texts(training, seed=config.seed, test_data=test, validation_data=validation)
        fitted = self._fitted_attributes(targets, training)
        self._forget_fit()
        private_dir = None if config.output_dir else Path(tempfile.mkdtemp(prefix=PRIVATE_FOLDER_PREFIX))
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
        self._attach(result.run_dir, result.metrics)
        self.__dict__.update(fitted)

    def _labeled_pair(self, pair: Any, *, name: str, source: str, training: LabeledTexts) -> LabeledTexts:
        """`validation_data` or `test_data`: a (texts, targets) pair, read as the training data's."""
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise InvalidInput(f"{name} must be a pair (texts, labels), got a {type(pair).__name__}")
        return self._labeled(pair[0], pair[1], source=source, training=training)

    def _config(self) -> RunConfig:
        """The settings object `run` would get for these parameters; InvalidInput with the command line's message."""
        return settings_from(self, self.STAGES, data=IN_MEMORY_DATA, **self.FIXED)

    def _attach(self, run_dir: Path, metrics: dict[str, Any]) -> None:
        """Loads the finished run folder's encoder and head the way `predict --model RUN` does."""
        from pipeline.base.devices import start_tensorflow

        start_tensorflow(verbose=False)
        with invalid_input_errors():
            self._model = QuietRunFolderModel(Path(run_dir))
        self.run_dir_ = Path(run_dir)
        self.metrics_ = metrics

    def _forget_fit(self) -> None:
        remove = self.__dict__.pop("_remove_private_dir", None)
        if remove is not None:
            remove()
        for name in ("_model", "run_dir_", "metrics_", "classes_"):
            self.__dict__.pop(name, None)

    # ------------------------------------------------------------------ predicting

    def _outputs(self, texts: Any) -> np.ndarray:
        """What the run's head gives for each text, through `predict`'s own code: [N, K] probabilities, or [N, 1]."""
        from pipeline.runs.predict import predict_texts

        model = self._fitted_model()
        with invalid_input_errors():
            rows = texts_from(texts, source="the input")
        return predict_texts(model, rows, show_progress=bool(self.progress)).probabilities

    def _fitted_model(self) -> Any:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "metrics_")
        if "_model" not in self.__dict__:  # unpickled: the models are loaded on first use
            self._attach(self.run_dir_, self.metrics_)
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
        """Writes a fitted estimator's run folder into a private temporary folder, removed with the object."""
        files = state.pop("_run_folder_files", None)
        self.__dict__.update(state)
        if files is None:
            return
        private_dir = Path(tempfile.mkdtemp(prefix=PRIVATE_FOLDER_PREFIX))
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
