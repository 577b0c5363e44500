"""The `run` and `extract` commands as plain functions: data -> features -> head -> evaluation -> run folder."""

from __future__ import annotations

import errno
import logging
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.base.config import (
    AUTO,
    DEFAULT_LAYERS,
    DEFAULT_MAX_SEQ_LENGTH,
    HeadSettings,
    RunConfig,
    artifacts_dir,
    layers_text,
    long_text_strategy,
    resolve_layers,
    validate,
    validate_against_encoder,
)
from pipeline.base.errors import UserError
from pipeline.base.files import check_creatable, write_bytes_atomic, write_json_atomic
from pipeline.data import tables as data_module
from pipeline.features import long_texts as long_texts_module
from pipeline.features.long_texts import LongTexts
from pipeline.runs import run_folder

if TYPE_CHECKING:  # both start TensorFlow, which `run` imports only once the data is known to be good
    from pipeline.encoders.encoder import Encoder
    from pipeline.features.extraction import FeatureResult

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """What both `extract` and `run` need before any model work: data, splits, encoder, settings."""

    config: RunConfig  # with pooling and max_seq_length filled in (and recorded as such)
    pooling: str
    layers: tuple[int, ...]  # negative indices into the encoder's layer outputs: -1 is the last
    combine: str
    head: HeadSettings
    max_seq_length: int
    long_texts: LongTexts  # what is read of a text longer than max_seq_length
    max_seq_length_reason: str  # "asked for", "the preset's", "the default", or auto's choice
    splits: data_module.Splits
    encoder: Encoder  # computing in `precision`
    precision: str  # settled: float32, bfloat16, float16 or int8
    precision_reason: str
    label_names: list[str]
    class_weighting: str | None
    name: str


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


def prepare(config: RunConfig, data: tuple[data_module.LabeledTexts, data_module.Splits] | None = None) -> Prepared:
    """Reads and splits the data, loads the encoder, and settles pooling, layers and max_seq_length.

    `data` is the labelled texts and their splits when they come from memory (the Python API, pipeline.api),
    already checked and split by the same functions; without it `config.data` and `config.test_data` are read."""
    validate(config)
    check_creatable(cache_dir_for(config), "--cache-dir")  # before TensorFlow starts, so it fails in a second
    dataset, splits = read_and_split(config) if data is None else data
    # TensorFlow starts only once the data is known to be good, so bad input fails in a second.
    features = settle_features(config, training_texts=splits.train.texts)
    class_weighting = config.class_weights or dataset.class_weighting
    head = config.head_settings()
    return Prepared(
        config=config.replace(pooling=features.pooling, max_seq_length=features.max_seq_length,
                              layers=layers_text(features.layers), precision=features.precision, mixed_precision=False,
                              **head.as_options(), **settled_long_text_options(features.long_texts)),
        head=head,
        pooling=features.pooling,
        layers=features.layers,
        combine=features.combine,
        max_seq_length=features.max_seq_length,
        long_texts=features.long_texts,
        max_seq_length_reason=features.max_seq_length_reason,
        splits=splits,
        encoder=features.encoder,
        precision=features.precision,
        precision_reason=features.precision_reason,
        label_names=list(dataset.label_names),
        class_weighting=None if class_weighting == "none" else class_weighting,
        name=run_name(config),
    )


def read_and_split(config: RunConfig) -> tuple[data_module.LabeledTexts, data_module.Splits]:
    """The table `config.data` (or the preset's), the test table if any, and the seeded splits."""
    dataset = data_module.load_labeled_texts(
        config.data, text_column=config.text_column, label_column=config.label_column,
        preset=config.preset, seed=config.seed, max_words=config.max_words,
    )
    test_data = None
    if config.test_data is not None:
        test_data = data_module.load_labeled_texts(
            config.test_data, text_column=config.text_column, label_column=config.label_column,
            preset=config.preset, seed=config.seed, label_names=dataset.label_names, max_words=config.max_words,
        )
    return dataset, data_module.split_labeled_texts(dataset, seed=config.seed, test_data=test_data)


@dataclass
class FeatureSettings:
    """The encoder and every setting its features depend on, settled: what the cache key is made of."""

    encoder: Encoder  # computing in `precision`
    pooling: str
    layers: tuple[int, ...]  # negative indices into the encoder's layer outputs: -1 is the last
    combine: str
    max_seq_length: int
    max_seq_length_reason: str  # "asked for", "the preset's", "the default", or auto's choice
    long_texts: LongTexts  # what is read of a text longer than max_seq_length
    precision: str  # settled: float32, bfloat16, float16 or int8
    precision_reason: str


def settle_features(config: RunConfig, training_texts: Sequence[str] = ()) -> FeatureSettings:
    """Starts TensorFlow, loads the encoder and settles pooling, layers, max_seq_length and precision from the
    options, the preset and the encoder; `prepare` calls it once the data is known to be good, and the Python
    API's FeatureExtractor calls it alone. `--max-seq-length auto` chooses from `training_texts`' lengths."""
    from pipeline.base.devices import choose_precision, cpu_flags, precision_for_encoder, start_tensorflow

    started = start_tensorflow(verbose=log.isEnabledFor(logging.DEBUG))
    from pipeline.encoders.encoder import load_encoder, rebuildable

    encoder = load_encoder(config.encoder)  # in float32 until every option is known to be good
    if config.fine_tune:  # before any features are extracted
        from pipeline.training.fine_tune import require_trainable

        require_trainable(encoder)
    preset = data_module.PRESETS.get(config.preset) if config.preset else None
    if config.max_seq_length == AUTO:
        from pipeline.features.encoder_io import tokenize_whole

        if not training_texts:
            raise UserError("--max-seq-length auto chooses from the training texts' lengths, and there are none here; "
                            "pass a number such as 128")
        lengths = [len(ids) for ids in tokenize_whole(list(training_texts), encoder.tokenizer, show_progress=False)]
        max_seq_length, length_reason = long_texts_module.auto_max_seq_length(lengths, encoder.max_seq_length)
        log.info("max_seq_length: %d (%s)", max_seq_length, length_reason)
    else:
        max_seq_length = int(config.max_seq_length or (preset.max_seq_length if preset else None)
                             or DEFAULT_MAX_SEQ_LENGTH)
        length_reason = "asked for" if config.max_seq_length else "the preset's" if preset and preset.max_seq_length \
            else "the default"
    validate_against_encoder(max_seq_length, encoder.max_seq_length)
    long_texts = long_texts_module.settle(long_text_strategy(config), max_seq_length=max_seq_length,
                                          head_tokens=config.head_tokens, window_overlap=config.window_overlap,
                                          max_windows=config.max_windows)
    pooling = config.pooling or encoder.recommended_pooling or "pooled"
    # Fine-tuning trains through the last layer's output, as the usual recipe does; more layers stay one flag away.
    default_layers = DEFAULT_LAYERS if pooling != "pooled" and encoder.all_layers_given and not config.fine_tune else "last"
    layers = resolve_layers(config.layers or default_layers, pooling=pooling, available_layers=encoder.available_layers,
                            all_layers_given=encoder.all_layers_given, encoder=config.encoder)
    requested = requested_precision(config, gpus=started["gpus"])
    precision, precision_reason = choose_precision(requested, gpus=started["gpus"], flags=cpu_flags(),
                                                   fine_tune=config.fine_tune)
    ours, unobtainable = rebuildable(encoder), None
    if precision == "int8" and ours:  # converted once beside the encoder folder, which may be read-only
        from pipeline.encoders.int8 import int8_model_unobtainable

        unobtainable = int8_model_unobtainable(encoder.model_dir, encoder.fingerprint)
    precision, precision_reason = precision_for_encoder(requested, precision, precision_reason, rebuildable=ours,
                                                        handle=config.encoder, int8_unobtainable=unobtainable)
    encoder = load_encoder(config.encoder, precision=precision)
    log.info("precision: %s (%s)", precision, precision_reason)
    return FeatureSettings(encoder=encoder, pooling=pooling, layers=layers, combine=config.combine,
                           max_seq_length=max_seq_length, max_seq_length_reason=length_reason, long_texts=long_texts,
                           precision=precision, precision_reason=precision_reason)


def settled_long_text_options(long_texts: LongTexts) -> dict[str, Any]:
    """The long-text options as config.json records them: the strategy's own numbers settled, the others None."""
    return {"long_texts": long_texts.strategy,
            "head_tokens": long_texts.head_tokens if long_texts.strategy == "head-tail" else None,
            "window_overlap": long_texts.window_overlap if long_texts.strategy == "windows" else None,
            "max_windows": long_texts.max_windows if long_texts.strategy == "windows" else None}


def requested_precision(config: RunConfig, *, gpus: int) -> str:
    """--precision, with the old --mixed-precision read as float16 on a GPU and, as it always was, ignored
    (with a warning) without one."""
    if not config.mixed_precision:
        return config.precision
    if gpus:
        return "float16"
    log.warning("--mixed-precision (now --precision float16) asks for float16 on a GPU, and TensorFlow sees none; "
                "using --precision %s", config.precision)
    return config.precision


def cache_dir_for(config: RunConfig) -> Path:
    return Path(config.cache_dir) if config.cache_dir else artifacts_dir() / "features"


def extract(prepared: Prepared, *, show_progress: bool = True) -> FeatureResult:
    """Features for every text of every split, from the cache or computed into it."""
    from pipeline.features.extraction import extract_features

    config = prepared.config
    all_texts = prepared.splits.train.texts + prepared.splits.validation.texts + prepared.splits.test.texts
    return extract_features(
        all_texts, prepared.encoder, pooling=prepared.pooling, layers=prepared.layers, combine=prepared.combine,
        max_seq_length=prepared.max_seq_length, long_texts=prepared.long_texts,
        cache_dir=cache_dir_for(config), batch_size=config.extraction_batch_size, show_progress=show_progress,
    )


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


def split_features(prepared: Prepared, features: np.ndarray) -> dict[str, np.ndarray]:
    """{'train'|'validation'|'test': rows of `features`}, which `extract` returns in that order."""
    splits = prepared.splits
    n_train, n_val = len(splits.train.texts), len(splits.validation.texts)
    return {"train": features[:n_train], "validation": features[n_train : n_train + n_val],
            "test": features[n_train + n_val :]}


def class_weights_for(prepared: Prepared) -> dict[int, float] | None:
    if prepared.class_weighting != "balanced":
        return None
    return data_module.compute_class_weights(prepared.splits.train.labels, len(prepared.label_names))


def _train_and_evaluate(prepared: Prepared, run_dir: Path, train_features: np.ndarray, val_features: np.ndarray,
                        test_features: np.ndarray, feature_summary: dict[str, Any], show_progress: bool) -> dict[str, Any]:
    """Trains the head (a progress bar per head; Keras's per-epoch lines instead with --verbose) while the probe
    is fitted beside it: each keeps about one core busy, so the probe costs no wall time on two cores."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.base.devices import known_tensorflow_noise_dropped
    from pipeline.training.head import compile_head, standardisation_statistics
    from pipeline.training.train import train_ensemble

    config, splits = prepared.config, prepared.splits
    num_classes = len(prepared.label_names)
    write_config(prepared, run_dir)
    head = prepared.head

    statistics = standardisation_statistics(train_features) if head.head == "mlp" else None  # one count for all

    def build_member(seed: int, name: str) -> Any:
        model = _build_head(head, train_features, num_classes, seed=seed, name=name, statistics=statistics)
        return compile_head(model, num_classes, learning_rate=head.learning_rate, weight_decay=head.weight_decay)

    keras_lines = show_progress and log.isEnabledFor(logging.DEBUG)  # --verbose
    started = time.perf_counter()
    with known_tensorflow_noise_dropped(), ThreadPoolExecutor(max_workers=1) as probe_thread:
        baseline = probe_thread.submit(fit_baseline, prepared, train_features, test_features,
                                       _entry_dir(feature_summary))
        model, histories = train_ensemble(
            build_member, members=head.ensemble, seed=config.seed, train_features=train_features,
            train_labels=splits.train.labels, val_features=val_features, val_labels=splits.validation.labels,
            num_classes=num_classes, best_weights_path=run_dir / run_folder.BEST_WEIGHTS_FILE,
            tensorboard_dir=run_dir / run_folder.LOGS_DIR, csv_log_path=run_dir / run_folder.TRAINING_LOG_FILE,
            epochs=head.epochs, batch_size=head.batch_size, class_weight=class_weights_for(prepared),
            verbose=2 if keras_lines else 0, show_progress=show_progress and not keras_lines,
        )
        seconds = time.perf_counter() - started  # the heads' time, not the wait for the probe at the block's end
    training: dict[str, Any] = {"epochs_run": sum(len(history.epoch) for history in histories),
                                "seconds": round(seconds, 3)}
    if head.ensemble > 1:
        training["members"] = [{"epochs_run": len(history.epoch),
                                "best_val_auroc": round(float(max(history.history["val_auroc"])), 6)}
                               for history in histories]
    return evaluate_and_finish(prepared, run_dir, model, {"train": train_features, "validation": val_features,
                                                          "test": test_features}, feature_summary, training,
                               baseline=baseline.result())


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
    class_weight = class_weights_for(prepared)
    weights = None if class_weight is None else np.array([class_weight[int(label)] for label in splits.train.labels])
    train = tokenize_split(splits.train.texts, splits.train.labels, encoder, prepared.max_seq_length,
                           long_texts=prepared.long_texts, sample_weights=weights)
    validation = tokenize_split(splits.validation.texts, splits.validation.labels, encoder, prepared.max_seq_length,
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
                           show_progress=show_progress)
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
    return evaluate_and_finish(prepared, run_dir, result.head, tuned_features, feature_summary, training,
                               extra_metrics={"mode": "fine-tune", "fine_tune": details}, probe_features=probe_features)


def _entry_dir(feature_summary: dict[str, Any]) -> Path | None:
    """The feature cache entry the run's features were read from or written to (FeatureResult.summary)."""
    entry = feature_summary.get("cache_entry")
    return Path(entry) if entry else None


def write_config(prepared: Prepared, run_dir: Path) -> None:
    """config.json, written before training, so even an interrupted run says what it was."""
    write_json_atomic(run_dir / run_folder.CONFIG_FILE, config_record(prepared))


def fit_baseline(prepared: Prepared, train_features: np.ndarray, test_features: np.ndarray,
                 entry_dir: Path | None) -> dict[str, Any]:
    """The probe's test metrics: logistic regression on the standardised features, fitted on the training split,
    or read from the record of the same fit in the feature cache entry `entry_dir` the features came from
    (pipeline.evaluation.probe.cached_baseline)."""
    from pipeline.evaluation.probe import cached_baseline

    metrics, cached = cached_baseline(
        entry_dir, train_features, prepared.splits.train.labels, test_features,
        prepared.splits.test.labels, num_classes=len(prepared.label_names), seed=prepared.config.seed,
        class_weight=class_weights_for(prepared),
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
    from pipeline.evaluation.metrics import classification_metrics, report_text
    from pipeline.evaluation.probe import PROBE_DESCRIPTION
    from pipeline.evaluation.tensorboard_logging import write_run_summaries
    from pipeline.training.head import predict_probabilities

    config, splits = prepared.config, prepared.splits
    num_classes = len(prepared.label_names)
    model.save(str(run_dir / run_folder.HEAD_FILE))
    val_probabilities = predict_probabilities(model, split_features["validation"])
    test_probabilities = predict_probabilities(model, split_features["test"])
    probe_features = probe_features or split_features
    baseline_metrics = baseline or fit_baseline(prepared, probe_features["train"], probe_features["test"],
                                                _entry_dir(feature_summary))
    run_folder.write_test_predictions(run_dir, splits.test.labels, test_probabilities)
    report = report_text(splits.test.labels, test_probabilities, prepared.label_names)
    write_bytes_atomic(run_dir / run_folder.REPORT_FILE, _report(prepared, report).encode("utf-8"))
    metrics = {
        "mode": "frozen",
        "precision": {"used": prepared.precision, "why": prepared.precision_reason,
                      "method": prepared.encoder.precision_method},
        "test": classification_metrics(splits.test.labels, test_probabilities, num_classes),
        "val": classification_metrics(splits.validation.labels, val_probabilities, num_classes),
        "baseline": {"test": baseline_metrics, "model": PROBE_DESCRIPTION},
        "features": feature_summary,
        "training": training,
        "labels": prepared.label_names,
        "config": config_record(prepared),
        **(extra_metrics or {}),
    }
    write_run_summaries(  # images, text, hparams and projector under logs/evaluation
        run_dir / run_folder.LOGS_DIR, run_name=run_dir.name, metrics=metrics, report=report, splits=splits,
        split_features=split_features, test_probabilities=test_probabilities,
        predict=lambda rows: predict_probabilities(model, rows), seed=config.seed,
    )
    run_folder.finish_run_dir(run_dir, metrics)
    return metrics


def _build_head(head: HeadSettings, train_features: np.ndarray, num_classes: int, *, seed: int, name: str,
                statistics: tuple[np.ndarray, np.ndarray] | None = None) -> Any:
    """An untrained Keras model of the chosen head (`statistics`: the mlp head's standardisation, if counted)."""
    from pipeline.training.head import build_head, build_mlp_head

    if head.head == "mlp":
        return build_mlp_head(train_features, num_classes, hidden_units=head.hidden_units,
                              dropout_rate=head.dropout_rate, seed=seed, name=name, statistics=statistics)
    return build_head(train_features.shape[1], num_classes, hidden_units=head.hidden_units,
                      dropout_rate=head.dropout_rate, seed=seed, name=name)


def config_record(prepared: Prepared) -> dict[str, Any]:
    """config.json: the settled options, labels, class weights, split sizes and the encoder's identity."""
    class_weight = class_weights_for(prepared)
    record = prepared.config.to_json()
    splits = prepared.splits
    record.update({
        "labels": prepared.label_names,
        "class_weight": {str(k): v for k, v in class_weight.items()} if class_weight else None,
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


def run_name(config: RunConfig) -> str:
    """The preset, else the data file's stem: the tail of the default run folder's name."""
    if config.preset:
        return config.preset
    return Path(config.data).name.split(".")[0] if config.data else "rotten-tomatoes"


def summary_table(result: RunResult) -> str:
    """The lines a user reads at the end of a run."""
    metrics, run_dir = result.metrics, result.run_dir
    head, baseline, features = metrics["test"], metrics["baseline"]["test"], metrics["features"]

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    fine_tuned = metrics.get("mode") == "fine-tune"
    labels = (("fine-tuned encoder + head", "baseline (logistic regression, frozen features)") if fine_tuned
              else ("head", "baseline (logistic regression)"))
    rows: list[tuple[str, ...]] = [("", "accuracy", "auroc", "pr_auc", "f1")]
    for label, values in zip(labels, (head, baseline)):
        rows.append((label, *(number(values[key]) for key in ("accuracy", "auroc", "pr_auc", "f1"))))
    width = max(len(row[0]) for row in rows)
    lines = [f"Test set ({head['rows']} texts):"]
    lines += ["  " + row[0].ljust(width) + "".join(cell.rjust(10) for cell in row[1:]) for row in rows]
    precision = metrics.get("precision", {}).get("used", "float32")
    if "long_texts" in features:  # runs from before long texts were counted do not have it
        chosen = str(metrics["config"].get("max_seq_length_chosen") or "")
        lines.append(long_texts_module.summary_line(features["long_texts"])
                     + (f" (max_seq_length {metrics['config']['max_seq_length']}, {chosen})" if chosen.startswith(AUTO) else ""))
    lines.append(
        f"Features: {features['texts']} texts in {features['seconds']:.1f} s "
        f"({features['texts_per_second']:.0f} texts/s, {precision}), cache {'hit' if features['cache_hit'] else 'miss'}"
        + (f", reused {features['reused_shards']} verified shard(s) from an earlier attempt"
           if features.get("reused_shards") else "")
    )
    why = metrics.get("precision", {}).get("why")
    if why:  # runs from before --precision existed have no reason
        lines.append(f"Precision: {precision} ({why})")
    training = metrics.get("training", {})
    if not fine_tuned and training.get("epochs_run"):  # a probe picked by a sweep has no epochs
        ensemble = metrics["config"].get("ensemble") or 1
        lines.append(f"Head: {metrics['config']['head']}" + (f", {ensemble} heads averaged" if ensemble > 1 else "")
                     + f", {training['epochs_run']} epochs in {training['seconds']:.1f} s")
    if fine_tuned:
        training, details = metrics["training"], metrics["fine_tune"]
        lines.append(f"Fine-tuning: {training['epochs_run']} epoch(s), best {details['best_epoch']}, "
                     f"{training['texts_per_second']:.0f} texts/s, {training['seconds']:.0f} s"
                     + (f" (resumed after epoch {details['resumed_after_epoch']})" if details["resumed_after_epoch"] else ""))
    lines.append(f"Run folder: {run_dir}")
    lines.append(f"TensorBoard: {tensorboard_command(run_dir)}")
    return "\n".join(lines)


def tensorboard_command(run_dir: Path) -> str:
    beside_python = Path(sys.executable).parent / "tensorboard"
    program = str(beside_python) if beside_python.exists() else "tensorboard"
    return f"{program} --logdir {run_dir} --host 127.0.0.1"

