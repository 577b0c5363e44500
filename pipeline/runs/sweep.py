"""The sweep command: many heads on the cached features; the best by validation AUROC becomes the run's head.

Trials are a small grid of `mlp` heads (hidden units x dropout x weight decay x learning rate) and the
logistic-regression probe at a few strengths C. Each trial is fitted on the training split and scored on
the validation split only; every trial is logged to one TensorBoard HParams view (`logs/sweep/`). The
best trial is then scored on the test split, alone, and written as an ordinary run folder, so `export`,
`predict` and the notebooks take it like any run. A winning probe is written as an equivalent Keras model
(standardisation + one dense layer with the probe's weights).
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.base.config import RunConfig, artifacts_dir, validate
from pipeline.base.errors import UserError
from pipeline.runs import run_folder
from pipeline.runs.prepare import Prepared, class_weights_for, extract, prepare, run_name, split_features
from pipeline.runs.run import (
    RunResult,
    evaluate_and_finish,
    training_scale,
    training_targets,
    write_config,
    write_run_folder,
)

log = logging.getLogger(__name__)

SWEEP_LOGS = "sweep"
# Trials train fast: bigger batches, fewer epochs, an early stop after 3 epochs without a better val AUROC.
MLP_GRID: dict[str, list[Any]] = {"hidden_units": [(256,), (64,)], "dropout_rate": [0.3, 0.5], "weight_decay": [1e-3, 1e-2],
            "learning_rate": [1e-3, 3e-3]}
MLP_TRIAL_SETTINGS = {"epochs": 10, "batch_size": 256, "patience": 3}
# The mlp trials are trained in step (pipeline/training/in_step.py: each step's rows gathered and their input
# dropout drawn once for all) in this many groups, a thread each, so that one group's metrics and callbacks
# between its epochs leave the cores to the other. Each trial's arithmetic is its own, so its result is what it
# gets trained alone.
MLP_GROUPS = 2
# Strong regularisation suits a few thousand rows of thousands of standardised features (C=1 overfits the
# demo's 2,304 features); weaker ones also converge more slowly.
PROBE_STRENGTHS = [0.001, 0.003, 0.01, 0.1]


@dataclass(frozen=True)
class Trial:
    name: str
    model: str  # "mlp" or "probe"
    options: dict[str, Any] = field(default_factory=dict)

    def hparams(self) -> dict[str, bool | int | float | str]:
        values: dict[str, bool | int | float | str] = {"model": self.model}
        for key, value in self.options.items():
            values[key] = ",".join(str(item) for item in value) if isinstance(value, tuple) else value
        return values


def default_trials(config: RunConfig | None = None) -> list[Trial]:
    """The grid, with every head option the user set pinned to that value, and the probe at each strength."""
    grid = dict(MLP_GRID)
    for name in grid:
        value = getattr(config, name) if config is not None else None
        if value is not None:
            grid[name] = [value]
    trials = []
    for hidden_units, dropout_rate, weight_decay, learning_rate in itertools.product(
            grid["hidden_units"], grid["dropout_rate"], grid["weight_decay"], grid["learning_rate"]):
        options = {"hidden_units": hidden_units, "dropout_rate": dropout_rate, "weight_decay": weight_decay,
                   "learning_rate": learning_rate}
        name = (f"mlp-{'x'.join(map(str, hidden_units))}-dropout{dropout_rate:g}-wd{weight_decay:g}"
                f"-lr{learning_rate:g}")
        trials.append(Trial(name, "mlp", options))
    trials += [Trial(f"probe-C{strength:g}", "probe", {"C": strength}) for strength in PROBE_STRENGTHS]
    return trials


@dataclass
class TrialResult:
    trial: Trial
    val_score: float  # higher is better: the validation AUROC, or minus the validation RMSE of a number
    seconds: float
    epochs_run: int | None
    model: Any  # the fitted Keras model, kept only while it is the best so far


def sweep(config: RunConfig, *, trials: list[Trial] | None = None, show_progress: bool = True) -> RunResult:
    """Fits every trial, keeps the best by validation AUROC (the labels' mean with several labels per text; the
    lowest validation RMSE for a number, whose trials are the mlp heads: its probe, ridge regression, is every
    run's baseline) as the run's head, scores only it on the test split."""
    validate(config)
    if config.fine_tune:
        raise UserError("--fine-tune cannot be swept: a sweep trains many heads on cached frozen features; "
                        "use `python -m pipeline run --fine-tune` (with --learning-rate or --epochs to try others)")
    if config.ensemble not in (None, 1):
        raise UserError(f"--ensemble {config.ensemble} cannot be swept: each trial is one head, so trials compare fairly "
                        f"and 20 fit in well under a minute; pass the sweep's pick to `python -m pipeline run --ensemble N`")
    if trials is None:
        trials = default_trials(config) if config.head == "mlp" else []
    if not trials:
        raise UserError(f"the sweep has no trials left: its grid holds mlp heads and the probe, and --head {config.head} "
                        f"leaves none; drop --head (or use `run --head {config.head}` for that head alone)")
    run_dir = run_folder.choose_run_dir(config.output_dir, runs_dir=artifacts_dir() / "runs",
                                        name=f"{run_name(config)}-sweep")
    prepared = prepare(config)
    if prepared.target.regression:
        trials = [trial for trial in trials if trial.model == "mlp"]
    feature_result = extract(prepared, show_progress=show_progress)
    parts = split_features(prepared, feature_result.features)
    metric, sign = scoring(prepared)

    def work() -> dict[str, Any]:
        results = _fit_trials(prepared, parts, trials, run_dir / run_folder.LOGS_DIR / SWEEP_LOGS, show_progress,
                              entry_dir=feature_result.entry_dir)
        best = max(results, key=lambda result: result.val_score)
        table = [{"trial": result.trial.name, "model": result.trial.model,
                  f"val_{metric}": round(sign * result.val_score, 6),
                  "seconds": round(result.seconds, 2), "epochs_run": result.epochs_run, **{key: list(value) if isinstance(value, tuple) else value
                                                          for key, value in result.trial.options.items()}}
                 for result in results]
        summary = {"trials": table, "best": best.trial.name,
                   "test_split": f"only the best trial ({best.trial.name}) was scored on the test split"}
        chosen = _as_trained(prepared, best.trial)
        write_config(chosen, run_dir)
        training = {"epochs_run": best.epochs_run, "seconds": round(best.seconds, 3), "trial": best.trial.name}
        model = best.model
        if prepared.target.regression:
            from pipeline.training.head import in_target_units

            model = in_target_units(model, prepared.target.scale or (0.0, 1.0), prepared.target.bounds)
        return evaluate_and_finish(chosen, run_dir, model, parts, feature_result.summary(), training,
                                   extra_metrics={"sweep": summary})

    metrics = write_run_folder(run_dir, work)
    return RunResult(run_dir=run_dir, metrics=metrics)


def _as_trained(prepared: Prepared, trial: Trial) -> Prepared:
    """The prepared run as the winning trial trained it, so config.json records what the head is."""
    from dataclasses import replace

    if trial.model == "probe":  # none of the mlp options apply; the strength C is in metrics.json's sweep record
        options = {name: None for name in ("epochs", "batch_size", "learning_rate", "dropout_rate", "hidden_units",
                                           "weight_decay", "ensemble")}
        return replace(prepared, config=prepared.config.replace(head="probe", **options))
    head = replace(prepared.head, head="mlp", epochs=MLP_TRIAL_SETTINGS["epochs"],
                   batch_size=MLP_TRIAL_SETTINGS["batch_size"], ensemble=1, **trial.options)
    return replace(prepared, head=head, config=prepared.config.replace(**head.as_options()))


def _fit_trials(prepared: Prepared, parts: dict[str, np.ndarray], trials: list[Trial], logs_dir: Path,
                show_progress: bool, entry_dir: Path | None = None) -> list[TrialResult]:
    """Every trial, reported in order. The mlp trials are trained in step in MLP_GROUPS groups (trial i in group
    i mod MLP_GROUPS, so each group holds wide and narrow heads alike), a thread each; each group builds its heads
    (each from the run's seed) and its epoch's graph in turn, while the groups before it train; the probes are
    fitted in a thread of their own from the start. A trial's seconds are its own fitting time; an mlp trial's,
    its group's time from its heads' building to the end of the trial's last epoch."""
    import functools
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import closing

    from pipeline.training.head import standardisation_statistics
    from pipeline.training.train import TrainingRows, trained_side_by_side

    train_labels, val_labels, _ = training_targets(prepared)
    labels = {"train": train_labels, "validation": val_labels}
    class_weight = class_weights_for(prepared)
    metric, sign = scoring(prepared)
    results: list[TrialResult] = []
    best: TrialResult | None = None
    mlp_trials = [trial for trial in trials if trial.model == "mlp"]
    statistics = standardisation_statistics(parts["train"])  # counted once for all the trials' heads
    rows = TrainingRows(parts["train"])  # standardised once, shared by every trial
    groups = [list(range(first, len(mlp_trials), MLP_GROUPS)) for first in range(min(MLP_GROUPS, len(mlp_trials)))]
    # Building heads and graphs is Python holding the interpreter's lock: each group in turn, the one before it
    # training on the cores meanwhile, rather than all at once with a core idle.
    turns = [threading.Event() for _ in range(len(groups) + 1)]
    turns[0].set()
    stoppers = [_Stoppable() for _ in groups]
    trainings = [functools.partial(_train_mlp_group, [mlp_trials[index] for index in group], parts, labels, prepared,
                                   class_weight, statistics, rows, logs_dir, (turns[number], turns[number + 1]),
                                   stoppers[number])
                 for number, group in enumerate(groups)]
    group_of = {index: (number, place) for number, group in enumerate(groups) for place, index in enumerate(group)}
    group_results: list[list[tuple[Any, int, float, float]]] = []
    with ThreadPoolExecutor(max_workers=1) as probe_thread, \
            closing(trained_side_by_side(trainings, stoppers, workers=len(groups))) as trained, \
            tqdm(trials, unit="trial", desc="sweep", disable=not show_progress or not _terminal()) as progress:
        probes = {trial.name: probe_thread.submit(_fit_probe, parts, labels, trial, prepared, class_weight, entry_dir)
                  for trial in trials if trial.model == "probe"}
        mlp_index = 0
        for trial in progress:
            if trial.model == "probe":
                fitted, seconds = probes[trial.name].result()
                model, epochs_run = probe_as_keras(*fitted, multi_label=prepared.target.multi_label), None
                val_score = _val_auroc(model, parts["validation"], labels["validation"], len(prepared.label_names))
            else:
                number, place = group_of[mlp_index]
                while len(group_results) <= number:  # the groups come back in order
                    group_results.append(next(trained))
                model, epochs_run, seconds, val_score = group_results[number][place]
                group_results[number][place] = (None, epochs_run, seconds, val_score)  # only the best model is kept
                mlp_index += 1
            result = TrialResult(trial, val_score, seconds, epochs_run, model)
            _log_trial(logs_dir / trial.name, trial, metric, sign * val_score)
            if best is None or val_score > best.val_score:
                if best is not None:
                    best.model = None
                best = result
            else:
                result.model = None
            results.append(result)
            progress.set_postfix(best=f"{sign * best.val_score:.4f}")
    return results


class _Stoppable:
    """A group of trials' heads as `trained_side_by_side` stops one: stop_training set on each, and on those
    built after it was set."""

    def __init__(self) -> None:
        self.models: list[Any] = []
        self.stop = False

    @property
    def stop_training(self) -> bool:
        return self.stop

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self.stop = value
        for model in self.models:
            model.stop_training = value

    def add(self, model: Any) -> Any:
        model.stop_training = self.stop
        self.models.append(model)
        return model


@contextmanager
def _turn(mine: threading.Event, following: threading.Event) -> Iterator[None]:
    """Waits for `mine`, runs the block, then lets the next one go (whether or not the block succeeded)."""
    mine.wait()
    try:
        yield
    finally:
        following.set()


def _terminal() -> bool:
    """The trials' bar redraws itself; off a terminal (a CI log, a file) the summary's table says it all."""
    return sys.stderr.isatty()


def _val_auroc(model: Any, features: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """One forward pass (not `predict`, whose function each new model traces anew, with TensorFlow's warning)."""
    from pipeline.evaluation.metrics import ranking_metrics

    outputs = model(features, training=False).numpy()
    value, _ = ranking_metrics(labels, outputs, num_classes)
    return value if np.isfinite(value) else float("-inf")


def _built_mlp(train_features: np.ndarray, statistics: tuple[np.ndarray, np.ndarray], trial: Trial,
               prepared: Prepared) -> Any:
    """The trial's compiled, untrained mlp head, built from the run's seed (as `run` builds a single head)."""
    from pipeline.training.head import build_mlp_head, compile_head
    from pipeline.training.train import make_deterministic

    num_classes = len(prepared.label_names)
    make_deterministic(prepared.config.seed)
    target = prepared.target
    model = build_mlp_head(train_features, num_classes, hidden_units=trial.options["hidden_units"],
                           dropout_rate=trial.options["dropout_rate"], seed=prepared.config.seed, statistics=statistics,
                           kind=target.kind)
    compile_head(model, num_classes, learning_rate=trial.options["learning_rate"],
                 weight_decay=trial.options["weight_decay"], kind=target.kind,
                 label_weights=class_weights_for(prepared) if target.multi_label else None)
    return model


def _train_mlp_group(trials: list[Trial], parts: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                     prepared: Prepared, class_weight: dict[int, float] | None,
                     statistics: tuple[np.ndarray, np.ndarray], rows: Any, logs_dir: Path,
                     turn: tuple[threading.Event, threading.Event],
                     stopper: _Stoppable) -> list[tuple[Any, int, float, float]]:
    """Builds a group of trials' heads and their epoch's graph (in `turn`), then trains them in step; each one's
    (model, holding its best validation epoch's weights; epochs run; seconds from the building to its last
    epoch; that best epoch's validation AUROC, as its training scored it: the model's, not counted again)."""
    from pipeline.training.in_step import HeadsInStep

    with _turn(*turn):
        models = [stopper.add(_built_mlp(parts["train"], statistics, trial, prepared)) for trial in trials]
        heads = HeadsInStep(models, train_features=parts["train"], train_labels=labels["train"],
                            val_features=parts["validation"], val_labels=labels["validation"],
                            num_classes=len(prepared.label_names),
                            tensorboard_dirs=[logs_dir / trial.name for trial in trials],
                            csv_log_paths=[logs_dir / trial.name / "training_log.csv" for trial in trials],
                            epochs=MLP_TRIAL_SETTINGS["epochs"], batch_size=MLP_TRIAL_SETTINGS["batch_size"],
                            class_weight=class_weight, early_stopping_patience=MLP_TRIAL_SETTINGS["patience"],
                            seed=prepared.config.seed, rows=rows, target_scale=training_scale(prepared))
        heads.build_graph()
    metric, sign = scoring(prepared)
    return [(model, len(history.epoch), seconds, _best_val_score(history, metric, sign))
            for model, (history, seconds) in zip(models, heads.train())]


def _best_val_score(history: Any, metric: str, sign: float) -> float:
    """The best finite validation score of a head's epochs (the epoch whose weights it keeps), as `scoring` signs it;
    -inf for none."""
    return max((sign * value for value in history.history.get(f"val_{metric}", []) if np.isfinite(value)),
               default=float("-inf"))


def _fit_probe(parts: dict[str, np.ndarray], labels: dict[str, np.ndarray], trial: Trial, prepared: Prepared,
               class_weight: dict[int, float] | None, entry_dir: Path | None) -> tuple[tuple[np.ndarray, ...], float]:
    """The fitted probe's (mean, variance, coefficients, intercepts) for `probe_as_keras`, and its seconds (the
    same fit's, read from the feature cache entry when it was made before); no Keras here, as this runs beside
    the mlp trials' training."""
    from pipeline.evaluation.probe import fitted_probe

    started = time.perf_counter()
    fitted, _ = fitted_probe(entry_dir, parts["train"], labels["train"], C=trial.options["C"],
                             seed=prepared.config.seed, class_weight=class_weight)
    return fitted, time.perf_counter() - started


def probe_as_keras(mean: np.ndarray, variance: np.ndarray, coefficients: np.ndarray, intercepts: np.ndarray, *,
                   multi_label: bool = False) -> Any:
    """The fitted probe as a Keras model giving the same probabilities: standardise, then one dense layer
    (sigmoid for two classes or for each of several labels per text, softmax for more classes), so a winning probe
    exports and predicts like any head."""
    import tf_keras as keras

    width, classes = coefficients.shape[1], coefficients.shape[0]
    inputs = keras.Input(shape=(width,), name="features")
    # StandardScaler leaves a constant feature's scale at 1 (variance 0); Normalization would divide by ~0.
    standardise = keras.layers.Normalization(mean=mean, variance=np.where(variance > 0, variance, 1.0),
                                             name="standardise")
    output = keras.layers.Dense(classes, activation="sigmoid" if classes == 1 or multi_label else "softmax",
                                name="probabilities")
    model = keras.Model(inputs, output(standardise(inputs)), name="head")
    output.set_weights([coefficients.T.astype(np.float32), intercepts.astype(np.float32)])
    return model


def scoring(prepared: Prepared) -> tuple[str, float]:
    """(the validation metric trials are compared by, its sign: +1 where higher is better): auroc, or rmse for a
    number."""
    return ("rmse", -1.0) if prepared.target.regression else ("auroc", 1.0)


def _log_trial(trial_dir: Path, trial: Trial, metric: str, value: float) -> None:
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    writer = tf.summary.create_file_writer(str(trial_dir))
    with writer.as_default():
        hparams_api.hparams(trial.hparams(), trial_id=trial.name)
        tf.summary.scalar(f"val/{metric}", value, step=0)
    writer.close()


def summary_lines(result: RunResult) -> str:
    """The trials by validation AUROC (RMSE for a number), and the one test score, for the end of the command's
    output."""
    sweep_record = result.metrics["sweep"]
    metric = "rmse" if "val_rmse" in sweep_record["trials"][0] else "auroc"
    rows = sorted(sweep_record["trials"], key=lambda row: row["val_rmse"] if metric == "rmse" else -row["val_auroc"])
    width = max(len(row["trial"]) for row in rows)
    lines = [f"Sweep: {len(rows)} trials, by validation {metric.upper()}:"]
    # An mlp trial's seconds are its group's (trained in step), so it shows its epochs; a probe, its own time.
    lines += [f"  {row['trial'].ljust(width)}  {row[f'val_{metric}']:.4f}  "
              + (f"({row['epochs_run']} epochs)" if row.get("epochs_run") is not None else f"({row['seconds']:.1f} s)")
              for row in rows]
    mlp_seconds = [row["seconds"] for row in rows if row["model"] == "mlp"]
    if mlp_seconds:
        lines.append(f"The mlp trials, trained in step: {max(mlp_seconds):.1f} s.")
    lines.append(f"Best: {sweep_record['best']}; {sweep_record['test_split']}.")
    return "\n".join(lines)
