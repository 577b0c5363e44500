"""What every command of the shared core starts with: the data read and split, the encoder loaded, and every
setting its features depend on settled from the options, the preset and the encoder (`prepare`, and
`settle_features` alone for the Python API's FeatureExtractor); then the features, from the cache or extracted."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.base import precision as precision_rules
from pipeline.base.config import (
    AUTO,
    DEFAULT_LAYERS,
    DEFAULT_MAX_SEQ_LENGTH,
    HeadSettings,
    RunConfig,
    artifacts_dir,
    label_column_names,
    layers_text,
    long_text_strategy,
    resolve_layers,
    validate,
    validate_against_encoder,
)
from pipeline.base.errors import UserError
from pipeline.base.files import check_creatable
from pipeline.data import tables as data_module
from pipeline.data.targets import Target, balanced_label_weights, regression_target
from pipeline.features import long_texts as long_texts_module
from pipeline.features.long_texts import LongTexts

if TYPE_CHECKING:  # both start TensorFlow, which is imported only once the data is known to be good
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
    target: Target  # what is predicted: a class, several labels or a number; thresholds come after training


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
        target=regression_target(dataset.label_names[0], splits.train.labels, extrapolate=config.extrapolate)
        if config.regression else dataset.target,
    )


def read_and_split(config: RunConfig) -> tuple[data_module.LabeledTexts, data_module.Splits]:
    """The table `config.data` (or the preset's), the test table if any, and the seeded splits."""
    label_columns = label_column_names(config.label_columns) if config.label_columns else None
    dataset = data_module.load_labeled_texts(
        config.data, text_column=config.text_column, label_column=config.label_column,
        preset=config.preset, seed=config.seed, max_words=config.max_words, label_columns=label_columns,
        label_separator=config.label_separator, regression=config.regression,
    )
    test_data = None
    if config.test_data is not None:
        test_data = data_module.load_labeled_texts(
            config.test_data, text_column=config.text_column, label_column=config.label_column,
            preset=config.preset, seed=config.seed, label_names=dataset.label_names, max_words=config.max_words,
            label_columns=label_columns, label_separator=config.label_separator, regression=config.regression,
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
    from pipeline.base.devices import start_tensorflow

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
    precision, precision_reason = precision_rules.decide_precision(
        config.precision, mixed_precision=config.mixed_precision, fine_tune=config.fine_tune, gpus=started["gpus"],
        flags=precision_rules.cpu_flags(), encoder_rebuildable=rebuildable(encoder), handle=config.encoder,
        int8_unobtainable=lambda: _int8_unobtainable(encoder))
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


def _int8_unobtainable(encoder: Encoder) -> str | None:
    """Why the int8 model of one of our encoders cannot be had (it is converted once beside the encoder's folder,
    which may be read-only), or None."""
    from pipeline.encoders.int8 import int8_model_unobtainable

    return int8_model_unobtainable(encoder.model_dir, encoder.fingerprint)


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


def split_features(prepared: Prepared, features: np.ndarray) -> dict[str, np.ndarray]:
    """{'train'|'validation'|'test': rows of `features`}, which `extract` returns in that order."""
    splits = prepared.splits
    n_train, n_val = len(splits.train.texts), len(splits.validation.texts)
    return {"train": features[:n_train], "validation": features[n_train : n_train + n_val],
            "test": features[n_train + n_val :]}


def class_weights_for(prepared: Prepared) -> dict[int, Any] | None:
    """None, or balanced weights of the training split: {class: weight}, or with several labels per text
    {label: (weight of its negatives, weight of its positives)} (pipeline.data.targets.balanced_label_weights)."""
    if prepared.class_weighting != "balanced":
        return None
    if prepared.target.multi_label:
        return balanced_label_weights(prepared.splits.train.labels)
    return data_module.compute_class_weights(prepared.splits.train.labels, len(prepared.label_names))


def run_name(config: RunConfig) -> str:
    """The preset, else the data file's stem: the tail of the default run folder's name."""
    if config.preset:
        return config.preset
    return Path(config.data).name.split(".")[0] if config.data else "rotten-tomatoes"

