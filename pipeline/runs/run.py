"""What `run` does, as plain functions of one settings object: data -> features -> head -> evaluation -> run folder."""

from __future__ import annotations

import errno
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.base.config import HeadSettings, RunConfig, artifacts_dir, validate
from pipeline.base.errors import UserError
from pipeline.base.files import write_bytes_atomic, write_json_atomic
from pipeline.data import tables as data_module
from pipeline.data.targets import SINGLE_LABEL
from pipeline.runs import run_folder
from pipeline.runs.prepare import (
    Prepared,
    class_weights_for,
    extract,
    prepare,
    run_name,
    split_features,
)

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


def run(config: RunConfig, *, show_progress: bool = True,
        data: tuple[data_module.LabeledTexts, data_module.Splits] | None = None, run_dir: Path | None = None) -> RunResult:
    """The whole pipeline; the run folder is complete only when metrics.json exists and INCOMPLETE does not.

    `data` as `prepare` takes it; `run_dir`, a new folder to write the run into in place of the one
    `--output-dir` or the default names (the Python API's private folder before `save`)."""
    validate(config)
    if run_dir is None:
        run_dir = run_folder.choose_run_dir(config.output_dir, runs_dir=artifacts_dir() / "runs", name=run_name(config))
    prepared = prepare(config, data)
    # A fine-tuned run reports the probe on the frozen encoder's cached features beside it.
    feature_result = extract(prepared, show_progress=show_progress)
    parts = split_features(prepared, feature_result.features)
    if config.fine_tune:
        resume = run_folder.resumable(run_dir, config_record(prepared))
        # Said before training starts: stderr is held back while TensorFlow trains (its noise is filtered).
        log.info("fine-tuning into %s; if it is interrupted, the same command with --output-dir %s resumes after "
                 "the last finished epoch", run_dir, run_dir)
        metrics = write_run_folder(run_dir, lambda: _fine_tune_and_evaluate(
            prepared, run_dir, parts, feature_result.summary(), resume=resume, show_progress=show_progress),
            resume=resume)
        return RunResult(run_dir=run_dir, metrics=metrics)
    train_features, val_features, test_features = parts["train"], parts["validation"], parts["test"]
    metrics = write_run_folder(run_dir, lambda: _train_and_evaluate(
        prepared, run_dir, train_features, val_features, test_features, feature_result.summary(),
        show_progress=show_progress))
    return RunResult(run_dir=run_dir, metrics=metrics)


def write_run_folder(run_dir: Path, work: Callable[[], dict[str, Any]], *, resume: bool = False) -> dict[str, Any]:
    """Runs `work` (training and evaluation, returning metrics) in a fresh run folder (or an interrupted one
    when `resume`); a user error or a full disk removes the folder, so nothing half-written is left, unless
    it holds a fine-tuning backup to resume from. The cached features are kept."""
    from pipeline.base.devices import known_tensorflow_noise_dropped

    def remove_unless_resumable() -> None:
        if not (run_dir / run_folder.BACKUP_DIR / "checkpoint").is_file():
            shutil.rmtree(run_dir, ignore_errors=True)

    run_folder.start_run_dir(run_dir, resume=resume)
    try:
        with known_tensorflow_noise_dropped():  # predict and the evaluation summaries print it too, not only fit
            return work()
    except UserError:
        remove_unless_resumable()
        raise
    except OSError as error:  # Keras, h5py and NumPy write the run folder directly, not through files.py
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        remove_unless_resumable()
        raise UserError(f"no space left on the device while writing the run folder {run_dir}; "
                        f"free some space or pass another --output-dir (the cached features are kept)") from None


def _train_and_evaluate(prepared: Prepared, run_dir: Path, train_features: np.ndarray, val_features: np.ndarray,
                        test_features: np.ndarray, feature_summary: dict[str, Any], show_progress: bool) -> dict[str, Any]:
    """Trains the head (a progress bar per head; Keras's per-epoch lines instead with --verbose) while the probe
    is fitted beside it: each keeps about one core busy, so the probe costs no wall time on two cores."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.base.devices import known_tensorflow_noise_dropped
    from pipeline.training.head import compile_head, in_target_units, standardisation_statistics
    from pipeline.training.train import monitored, train_ensemble

    config = prepared.config
    num_classes = len(prepared.label_names)
    write_config(prepared, run_dir)
    head = prepared.head

    statistics = standardisation_statistics(train_features) if head.head == "mlp" else None  # one count for all

    target, class_weight = prepared.target, class_weights_for(prepared)
    train_labels, val_labels, target_scale = training_targets(prepared)

    def build_member(seed: int, name: str) -> Any:
        model = _build_head(head, train_features, num_classes, seed=seed, name=name, statistics=statistics,
                            kind=target.kind)
        return compile_head(model, num_classes, learning_rate=head.learning_rate, weight_decay=head.weight_decay,
                            kind=target.kind, label_weights=class_weight if target.multi_label else None,
                            loss_name=config.loss or "mse")

    keras_lines = show_progress and log.isEnabledFor(logging.DEBUG)  # --verbose
    started = time.perf_counter()
    with known_tensorflow_noise_dropped(), ThreadPoolExecutor(max_workers=1) as probe_thread:
        baseline = probe_thread.submit(fit_baseline, prepared, {"train": train_features, "validation": val_features,
                                                                "test": test_features}, _entry_dir(feature_summary))
        model, histories = train_ensemble(
            build_member, members=head.ensemble, seed=config.seed, train_features=train_features,
            train_labels=train_labels, val_features=val_features, val_labels=val_labels,
            num_classes=num_classes, best_weights_path=run_dir / run_folder.BEST_WEIGHTS_FILE,
            tensorboard_dir=run_dir / run_folder.LOGS_DIR, csv_log_path=run_dir / run_folder.TRAINING_LOG_FILE,
            epochs=head.epochs, batch_size=head.batch_size, class_weight=class_weight,
            verbose=2 if keras_lines else 0, show_progress=show_progress and not keras_lines, target_scale=target_scale,
        )
        seconds = time.perf_counter() - started  # the heads' time, not the wait for the probe at the block's end
    training: dict[str, Any] = {"epochs_run": sum(len(history.epoch) for history in histories),
                                "seconds": round(seconds, 3)}
    if head.ensemble > 1:
        monitor, mode = monitored(target_scale)
        best = max if mode == "max" else min
        training["members"] = [{"epochs_run": len(history.epoch),
                                f"best_{monitor}": round(float(best(history.history[monitor])), 6)}
                               for history in histories]
    if target.regression:
        model = in_target_units(model, target.scale or (0.0, 1.0), target.bounds)
    return evaluate_and_finish(prepared, run_dir, model, {"train": train_features, "validation": val_features,
                                                          "test": test_features}, feature_summary, training,
                               baseline=baseline.result())


def training_scale(prepared: Prepared) -> float | None:
    """The standard deviation a number's head trains in (its targets standardised), None for classes and labels."""
    target = prepared.target
    return target.scale[1] if target.regression and target.scale is not None else None


def training_targets(prepared: Prepared) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(training labels, validation labels, the target's standard deviation or None) as the heads train on them:
    the splits' own labels, or for a number its standardised values as a column (the head's output's shape)."""
    splits, target = prepared.splits, prepared.target
    deviation = training_scale(prepared)
    if deviation is None or target.scale is None:
        return splits.train.labels, splits.validation.labels, None
    mean = target.scale[0]

    def standardised(values: np.ndarray) -> np.ndarray:
        return ((values.astype(np.float64) - mean) / deviation).astype(np.float32)[:, None]

    return standardised(splits.train.labels), standardised(splits.validation.labels), deviation


def _fine_tune_and_evaluate(prepared: Prepared, run_dir: Path, probe_features: dict[str, np.ndarray],
                            feature_summary: dict[str, Any], *, resume: bool, show_progress: bool) -> dict[str, Any]:
    """Fine-tunes encoder and head (resuming an interrupted attempt), saves the tuned encoder in the run
    folder, then scores it exactly as a frozen run is scored: features from the tuned encoder, then the head."""
    from pipeline.base.devices import GRAPH_REWRITES, graph_rewrite
    from pipeline.encoders.encoder import load_encoder
    from pipeline.features.extraction import encode_texts
    from pipeline.training.fine_tune import FineTuneSettings, encoder_layer_of, fine_tune, save_tuned_encoder, tokenize_split
    from pipeline.training.train import make_deterministic

    config, splits, head, encoder = prepared.config, prepared.splits, prepared.head, prepared.encoder
    if not resume:
        write_config(prepared, run_dir)
    make_deterministic(config.seed)
    class_weight, multi_label = class_weights_for(prepared), prepared.target.multi_label
    # Several labels per text: the label weights are the loss's (compile_head), not the rows'.
    weights = None if class_weight is None or multi_label else \
        np.array([class_weight[int(label)] for label in splits.train.labels])
    train_labels, val_labels, target_scale = training_targets(prepared)
    train = tokenize_split(splits.train.texts, train_labels, encoder, prepared.max_seq_length,
                           long_texts=prepared.long_texts, sample_weights=weights)
    validation = tokenize_split(splits.validation.texts, val_labels, encoder, prepared.max_seq_length,
                                long_texts=prepared.long_texts)
    settings = FineTuneSettings(epochs=head.epochs, batch_size=head.batch_size, learning_rate=head.learning_rate,
                                dropout_rate=head.dropout_rate, weight_decay=head.weight_decay,
                                hidden_units=head.hidden_units, seed=config.seed)
    # float16 on a GPU: grappler's rewrite of the trainable encoder's graph, with loss scaling. On a CPU training
    # stays float32 (bfloat16, if chosen, is used for the features before and after).
    in_float16 = prepared.precision == "float16"
    with graph_rewrite(GRAPH_REWRITES["float16"] if in_float16 else None):
        result = fine_tune(encoder, train=train, validation=validation, num_classes=len(prepared.label_names),
                           pooling=prepared.pooling, layers=prepared.layers, combine=prepared.combine, settings=settings,
                           backup_dir=run_dir / run_folder.BACKUP_DIR, best_dir=run_dir / run_folder.BEST_CHECKPOINT_DIR,
                           tensorboard_dir=run_dir / run_folder.LOGS_DIR,
                           csv_log_path=run_dir / run_folder.TRAINING_LOG_FILE, loss_scaling=in_float16,
                           show_progress=show_progress, kind=prepared.target.kind,
                           label_weights=class_weight if multi_label else None, loss_name=config.loss or "mse",
                           target_scale=target_scale)
    save_tuned_encoder(encoder, encoder_layer_of(result.model), run_dir / run_folder.TUNED_ENCODER_DIR)
    tuned = load_encoder(str(run_dir / run_folder.TUNED_ENCODER_DIR), reload=True, precision=prepared.precision)
    tuned_features = {name: encode_texts(split.texts, tuned, pooling=prepared.pooling, layers=prepared.layers,
                                         combine=prepared.combine, max_seq_length=prepared.max_seq_length,
                                         long_texts=prepared.long_texts, batch_size=config.extraction_batch_size)
                      for name, split in (("train", splits.train), ("validation", splits.validation), ("test", splits.test))}
    training = {"epochs_run": result.epochs_run, "seconds": result.seconds, "texts_per_second": result.texts_per_second}
    details = {"best_epoch": result.best_epoch + 1, "resumed_after_epoch": result.initial_epoch,
               "padding_fraction": result.padding_fraction, "encoder_dir": run_folder.TUNED_ENCODER_DIR,
               "encoder_fingerprint": tuned.fingerprint, "fine_tuned_from": encoder.describe(),
               "training_precision": "float16" if in_float16 else "float32"}
    tuned_head = result.head
    if prepared.target.regression:
        from pipeline.training.head import in_target_units

        tuned_head = in_target_units(tuned_head, prepared.target.scale or (0.0, 1.0), prepared.target.bounds)
    return evaluate_and_finish(prepared, run_dir, tuned_head, tuned_features, feature_summary, training,
                               extra_metrics={"mode": "fine-tune", "fine_tune": details}, probe_features=probe_features)


def _entry_dir(feature_summary: dict[str, Any]) -> Path | None:
    """The feature cache entry the run's features were read from or written to (FeatureResult.summary)."""
    entry = feature_summary.get("cache_entry")
    return Path(entry) if entry else None


def write_config(prepared: Prepared, run_dir: Path) -> None:
    """config.json, written before training, so even an interrupted run says what it was."""
    write_json_atomic(run_dir / run_folder.CONFIG_FILE, config_record(prepared))


def fit_baseline(prepared: Prepared, features: dict[str, np.ndarray], entry_dir: Path | None) -> dict[str, Any]:
    """The probe's test metrics: logistic regression on the standardised features (one per label with several
    labels per text, thresholds chosen on the validation split), fitted on the training split, or read from the
    record of the same fit in the feature cache entry `entry_dir` the features came from
    (pipeline.evaluation.probe.cached_baseline). `features`: {'train'|'validation'|'test': rows}."""
    from pipeline.evaluation.probe import cached_baseline

    splits, multi_label, target = prepared.splits, prepared.target.multi_label, prepared.target
    if target.regression:
        from pipeline.evaluation.regression import ridge_baseline

        ridge_metrics, _ = ridge_baseline(features["train"], splits.train.labels, features["validation"],
                                          splits.validation.labels, features["test"], splits.test.labels,
                                          levels=None if target.levels is None else np.asarray(target.levels),
                                          bounds=target.bounds)
        return ridge_metrics
    metrics, cached = cached_baseline(
        entry_dir, features["train"], splits.train.labels, features["test"], splits.test.labels,
        num_classes=len(prepared.label_names), seed=prepared.config.seed, class_weight=class_weights_for(prepared),
        validation=(features["validation"], splits.validation.labels) if multi_label else None,
        label_names=prepared.label_names if multi_label else None,
    )
    log.debug("probe: %s", "the same fit's result, from the cache" if cached else "fitted")
    return metrics


def evaluate_and_finish(prepared: Prepared, run_dir: Path, model: Any, split_features: dict[str, np.ndarray],
                        feature_summary: dict[str, Any], training: dict[str, Any],
                        extra_metrics: dict[str, Any] | None = None,
                        probe_features: dict[str, np.ndarray] | None = None,
                        baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """Saves the trained head, scores it and the probe on the test split, writes the rest of the run folder.

    The probe is fitted on `probe_features` when given (a fine-tuned run's frozen features), else on
    `split_features`, the head's own inputs; `baseline` is its test metrics when already fitted."""
    from pipeline.evaluation.scoring import probe_description, scored_splits
    from pipeline.evaluation.tensorboard_logging import write_run_summaries
    from pipeline.training.head import predict_probabilities

    config, splits = prepared.config, prepared.splits
    model.save(str(run_dir / run_folder.HEAD_FILE))
    kind = prepared.target.kind
    val_probabilities = predict_probabilities(model, split_features["validation"], kind=kind)
    test_probabilities = predict_probabilities(model, split_features["test"], kind=kind)
    probe_features = probe_features or split_features
    baseline_metrics = baseline or fit_baseline(prepared, probe_features, _entry_dir(feature_summary))
    run_folder.write_test_predictions(run_dir, splits.test.labels, test_probabilities)
    target, test_metrics, val_metrics, report = scored_splits(
        prepared.target, (splits.validation.labels, val_probabilities), (splits.test.labels, test_probabilities))
    write_bytes_atomic(run_dir / run_folder.REPORT_FILE, _report(prepared, report).encode("utf-8"))
    metrics = {
        "mode": "frozen",
        "precision": {"used": prepared.precision, "why": prepared.precision_reason,
                      "method": prepared.encoder.precision_method},
        "target": target.record(),
        "test": test_metrics,
        "val": val_metrics,
        "baseline": {"test": baseline_metrics, "model": probe_description(target)},
        "features": feature_summary,
        "training": training,
        "labels": prepared.label_names,
        "config": config_record(prepared),
        **(extra_metrics or {}),
    }
    write_run_summaries(  # images, text, hparams and projector under logs/evaluation
        run_dir / run_folder.LOGS_DIR, run_name=run_dir.name, metrics=metrics, report=report, splits=splits,
        split_features=split_features, test_probabilities=test_probabilities,
        predict=lambda rows: predict_probabilities(model, rows, kind=kind), seed=config.seed,
    )
    run_folder.finish_run_dir(run_dir, metrics)
    return metrics


def _build_head(head: HeadSettings, train_features: np.ndarray, num_classes: int, *, seed: int, name: str,
                statistics: tuple[np.ndarray, np.ndarray] | None = None, kind: str = SINGLE_LABEL) -> Any:
    """An untrained Keras model of the chosen head (`statistics`: the mlp head's standardisation, if counted)."""
    from pipeline.training.head import build_head, build_mlp_head

    if head.head == "mlp":
        return build_mlp_head(train_features, num_classes, hidden_units=head.hidden_units,
                              dropout_rate=head.dropout_rate, seed=seed, name=name, statistics=statistics,
                              kind=kind)
    return build_head(train_features.shape[1], num_classes, hidden_units=head.hidden_units,
                      dropout_rate=head.dropout_rate, seed=seed, name=name, kind=kind)


def config_record(prepared: Prepared) -> dict[str, Any]:
    """config.json: the settled options, labels, class weights, split sizes and the encoder's identity."""
    class_weight = class_weights_for(prepared)
    record = prepared.config.to_json()
    splits = prepared.splits
    record.update({
        "labels": prepared.label_names,
        "class_weight": {str(k): list(v) if isinstance(v, tuple) else v for k, v in class_weight.items()}
        if class_weight else None,
        "split_sizes": {"train": len(splits.train.texts), "validation": len(splits.validation.texts),
                        "test": len(splits.test.texts)},
        "encoder_info": prepared.encoder.describe(),
        "max_seq_length_chosen": prepared.max_seq_length_reason,
    })
    return record


def _report(prepared: Prepared, classification_report: str) -> str:
    config = prepared.config
    return (
        f"data: {config.data or 'embedded Rotten Tomatoes demo'}  preset: {config.preset}\n"
        f"encoder: {config.encoder}  pooling: {config.pooling}  layers: {config.layers}  combine: {config.combine}  "
        f"max_seq_length: {config.max_seq_length}  long_texts: {config.long_texts}\n"
        f"labels: {', '.join(prepared.label_names)}\n\n"
        f"Test set, head:\n{classification_report}"
    )


