"""Run configuration: one frozen dataclass whose fields declare every option (type, default, help, check, the stage
it belongs to), and validation that names the option and the fix."""

from __future__ import annotations

import dataclasses
import functools
import os
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.base.errors import UserError
from pipeline.base.precision import AUTO, PRECISIONS, check_request

REPO_ROOT = Path(__file__).resolve().parents[2]  # pipeline/base/config.py -> the checkout
POOLINGS = ("pooled", "cls", "mean")
LAYER_CHOICES = ("last", "all", "last4")  # or a comma list of indices, negative ones counting from the end
COMBINES = ("concat", "mean")
# What the encoder reads of a text longer than --max-seq-length (pipeline.features.long_texts).
LONG_TEXT_STRATEGIES = ("truncate", "head-tail", "windows")
# The defaults were chosen on validation AUROC over split seeds 0-4 of the demo (docs/quality.md).
DEFAULT_LAYERS = "all"  # for encoders that give every layer and a pooling other than `pooled`
HEADS = ("paperspace", "mlp")
DEFAULT_HEAD = "mlp"
FINE_TUNE = "fine-tune"  # recorded as the head of a --fine-tune run: dropout and a dense output on the tuned encoder
# Each head's training settings, used for the options left unset. `paperspace` is the tutorial's recipe;
# `mlp` was chosen on validation AUROC over split seeds 0-4 of the demo (docs/quality.md).
HEAD_DEFAULTS: dict[str, dict[str, Any]] = {
    "paperspace": {"epochs": 10, "batch_size": 300, "learning_rate": 1e-3, "dropout_rate": 0.0,
                   "hidden_units": (50, 30, 30), "weight_decay": 0.0, "ensemble": 1},
    "mlp": {"epochs": 40, "batch_size": 64, "learning_rate": 1e-3, "dropout_rate": 0.5,
            "hidden_units": (256,), "weight_decay": 0.1, "ensemble": 3},
    # --fine-tune: encoder and head trained together (pipeline.training.fine_tune); measured in docs/quality.md.
    FINE_TUNE: {"epochs": 2, "batch_size": 32, "learning_rate": 5e-5, "dropout_rate": 0.1,
                "hidden_units": (), "weight_decay": 0.01, "ensemble": 1},
}
MAX_ENSEMBLE = 20  # heads train one after the other: 20 of the default head is about 10 minutes on the demo
DEFAULT_MAX_SEQ_LENGTH = 128
EMBEDDED_ENCODER = "all-MiniLM-L6-v2"


def artifacts_dir() -> Path:
    """Where everything the pipeline writes goes; PIPELINE_ARTIFACTS moves it (tests use that)."""
    return Path(os.environ.get("PIPELINE_ARTIFACTS", REPO_ROOT / "artifacts"))


def models_dir() -> Path:
    """Converted encoders; PIPELINE_MODELS moves them alone (the tests share one converted copy)."""
    return Path(os.environ.get("PIPELINE_MODELS", artifacts_dir() / "models"))


@dataclass(frozen=True)
class Rule:
    """A check of one option's value: `holds(value)`, else "--flag must be <must_be>, got <value>"."""

    holds: Callable[[Any], bool]
    must_be: str
    show: Callable[[Any], str] = str  # how the bad value is quoted

    def check(self, flag: str, value: Any) -> None:
        if not self.holds(value):
            raise UserError(f"{flag} must be {self.must_be}, got {self.show(value)}")


POSITIVE_WHOLE_NUMBER = Rule(lambda value: value > 0, "a positive whole number")
POSITIVE = Rule(lambda value: value > 0, "positive")
FRACTION = Rule(lambda value: 0 <= value < 1, "in [0, 1)")

# Which front ends take an option: every option is a command-line flag; the Python API's classes take the options
# of their stages as constructor parameters (pipeline.api), and the data it is given in place of the data options.
DATA_STAGE = "data"  # the table and its columns: the command line only (the API's fit takes texts and labels)
FEATURES_STAGE = "features"  # FeatureExtractor and TextClassifier
TRAINING_STAGE = "training"  # TextClassifier and TextRegressor
CLASSES_STAGE = "classes"  # TextClassifier: the options of classes and labels
REGRESSION_STAGE = "regression"  # TextRegressor: the options of a numeric target
COMMAND_LINE_ONLY = "command line"  # an old name kept for the command line
LOSSES = ("mse", "huber")


def option(default: Any, help: str, *, stage: str, choices: tuple[str, ...] | None = None, rule: Rule | None = None,
           check: Callable[[str, Any], None] | None = None, auto: bool = False, path: bool = False,
           extractor_parameter: str | None = None) -> Any:
    """One option's declaration: its default, its help line, the stage it belongs to, and its check (`choices`, a
    `rule`, or a `check(flag, value)` of its own; none runs on None). `auto`: it also takes the word auto; `path`:
    a file or folder (the API takes a Path too); `extractor_parameter`: its name among the feature options alone
    (FeatureExtractor), where the head's names are free."""
    return field(default=default, metadata={"help": help, "stage": stage, "choices": choices, "rule": rule,
                                            "check": check, "auto": auto, "path": path,
                                            "extractor_parameter": extractor_parameter})


def flag_of(name: str) -> str:
    """The command-line flag of a RunConfig field: `window_overlap` -> `--window-overlap`."""
    return "--" + name.replace("_", "-")


@functools.cache
def option_types() -> dict[str, Any]:
    """Each option's type, from RunConfig's annotations (read once: the front ends ask at every call)."""
    return typing.get_type_hints(RunConfig)


def api_parameters(stages: tuple[str, ...]) -> dict[str, dataclasses.Field[Any]]:
    """The Python API's constructor parameters for the options of `stages`, by parameter name, in declaration order."""
    alias = TRAINING_STAGE not in stages
    return {(alias and declared.metadata["extractor_parameter"]) or declared.name: declared
            for declared in dataclasses.fields(RunConfig) if declared.metadata["stage"] in stages}


def options_of_record(record: Mapping[str, Any], stages: tuple[str, ...]) -> dict[str, Any]:
    """The options of `stages` a run's config.json records (RunConfig.to_json, settled), as a refit with the same
    settings takes them: by API parameter name, widths as a tuple, a fine-tuned run's recorded head as the option
    it came from (`fine_tune`), and without the folder the run was written to."""
    options = {}
    for parameter, declared in api_parameters(stages).items():
        if declared.name not in record or declared.name == "output_dir":
            continue
        value = record[declared.name]
        options[parameter] = tuple(value) if isinstance(value, list) else value
    if options.get("head") == FINE_TUNE:
        options["head"] = DEFAULT_HEAD
    return options


def _max_seq_length_check(flag: str, value: int | str) -> None:
    if isinstance(value, str) and value != AUTO:
        raise UserError(f"{flag} must be a whole number or auto, got {value!r}")
    if isinstance(value, int) and value < 3:
        raise UserError(f"{flag} must be at least 3 ([CLS], one token, [SEP]), got {value}")


def _label_columns_check(flag: str, value: str) -> None:
    names = label_column_names(value)
    if len(names) < 2:
        raise UserError(f"{flag} {value!r} names {len(names)} column; several labels per text need two or more "
                        f"columns (for one label column of classes, pass --label-column NAME)")


def label_column_names(value: str) -> list[str]:
    """The columns of --label-columns A,B,C, stripped, blanks left out."""
    return [name.strip() for name in value.split(",") if name.strip()]


def check_layers(flag: str, value: str) -> None:
    parse_layers(value)


@dataclass(frozen=True)
class RunConfig:
    """Everything one `run`, `extract` or `sweep` needs, each option declared once (`option`): the command line's
    flags, the Python API's parameters and `validate` come from these declarations. Fields left None are filled
    from the preset or the encoder."""

    data: str | None = option(None, "table of texts and labels (CSV, TSV, JSONL, Parquet); default: the embedded demo",
                              stage=DATA_STAGE, path=True)
    test_data: str | None = option(None, "a separate test table; the rest is split into train and validation",
                                   stage=DATA_STAGE, path=True)
    text_column: str | None = option(None, "column holding the text (default: the preset's, else 'text')", stage=DATA_STAGE)
    label_column: str | None = option(None, "column holding the label (default: the preset's, else 'label')",
                                      stage=DATA_STAGE)
    label_columns: str | None = option(
        None, "several labels per text, one 0/1 column each (1/0, true/false, yes/no; a blank is 0), named with commas: "
              "toxic,obscene,insult", stage=DATA_STAGE, check=_label_columns_check)
    label_separator: str | None = option(
        None, "several labels per text, in --label-column joined by this separator (an empty cell: no label)",
        stage=DATA_STAGE)
    regression: bool = option(False, "read --label-column as a number (stars, scores) and predict it: a linear "
                                     "output, RMSE, R^2 and Spearman (docs/regression.md)", stage=DATA_STAGE)
    preset: str | None = option(None, "a known data set recipe (see docs/usage.md)", stage=DATA_STAGE)
    max_words: int | None = option(
        None, "keep only texts of fewer than N words, before a preset's sample (the Amazon tutorial's filter is "
              "--max-words 50; default: all)", stage=DATA_STAGE, rule=POSITIVE_WHOLE_NUMBER)
    encoder: str = option(EMBEDDED_ENCODER, "TF-Hub handle: URL, Kaggle handle, local SavedModel folder, or the "
                                            "embedded model's name", stage=FEATURES_STAGE)
    pooling: str | None = option(None, "how a text becomes one vector (default: the encoder's recommendation, else "
                                       "pooled)", stage=FEATURES_STAGE, choices=POOLINGS)
    layers: str | None = option(
        None, "hidden layers pooled into the features: last, all, last4, or indices such as 0,2,-1 (default: all when "
              "the encoder gives every layer; pooled is the model's own output of the last layer)",
        stage=FEATURES_STAGE, check=check_layers)
    combine: str = option("concat", "how the chosen layers' vectors become one: concat (side by side) or mean",
                          stage=FEATURES_STAGE, choices=COMBINES)
    max_seq_length: int | str | None = option(
        None, "WordPiece tokens per text including [CLS] and [SEP], or auto: the smallest of 64, 128, 256, 512 that "
              "holds 95%% of the training texts whole (default: the preset's, else 128)",
        stage=FEATURES_STAGE, check=_max_seq_length_check, auto=True)
    long_texts: str | None = option(
        None, "texts longer than --max-seq-length: truncate (read the start), head-tail (the start and the end), or "
              "windows (all of it, in overlapping windows whose vectors are averaged) (default: windows; truncate "
              "with --fine-tune)", stage=FEATURES_STAGE, choices=LONG_TEXT_STRATEGIES)
    head_tokens: int | None = option(
        None, "--long-texts head-tail: tokens kept from the start, the rest from the end (default: a quarter)",
        stage=FEATURES_STAGE)
    window_overlap: int | None = option(
        None, "--long-texts windows: tokens shared by consecutive windows (default: a quarter of a window)",
        stage=FEATURES_STAGE)
    max_windows: int | None = option(
        None, "--long-texts windows: most windows per text; tokens past them are cut and counted (default: 8)",
        stage=FEATURES_STAGE)
    head: str = option(DEFAULT_HEAD, "the head: paperspace (the tutorial's dense/batch-norm stack) or mlp "
                                     "(standardised inputs, dropout, weight decay)", stage=TRAINING_STAGE, choices=HEADS)
    epochs: int | None = option(None, "most training epochs for the head (default: the head's)", stage=TRAINING_STAGE,
                                rule=POSITIVE_WHOLE_NUMBER)
    batch_size: int | None = option(None, "training batch size for the head (default: the head's)",
                                    stage=TRAINING_STAGE, rule=POSITIVE_WHOLE_NUMBER)
    learning_rate: float | None = option(None, "Adam learning rate for the head (default: the head's)",
                                         stage=TRAINING_STAGE, rule=POSITIVE)
    dropout_rate: float | None = option(None, "dropout after each hidden layer of the head (default: the head's)",
                                        stage=TRAINING_STAGE, rule=FRACTION)
    hidden_units: tuple[int, ...] | None = option(
        None, "widths of the head's hidden layers (default: the head's)", stage=TRAINING_STAGE,
        rule=Rule(lambda widths: bool(widths) and all(width > 0 for width in widths), "positive widths such as 50,30,30"))
    weight_decay: float | None = option(
        None, "decoupled weight decay (AdamW) for the head; 0 is plain Adam (default: the head's)",
        stage=TRAINING_STAGE, rule=FRACTION)
    ensemble: int | None = option(
        None, "heads trained from different initial weights, their probabilities averaged (default: the head's)",
        stage=TRAINING_STAGE, rule=Rule(lambda value: 1 <= value <= MAX_ENSEMBLE,
                                        f"a whole number of heads from 1 to {MAX_ENSEMBLE}"))
    class_weights: str | None = option(
        None, "'balanced' to weight classes by inverse frequency (default: the preset's)", stage=CLASSES_STAGE,
        rule=Rule(lambda value: value in ("balanced", "none"), "'balanced' or 'none'", show=repr))
    loss: str | None = option(None, "with --regression: mse, or huber (less pulled by outliers) on the standardised "
                                    "target (default: mse)", stage=REGRESSION_STAGE, choices=LOSSES)
    extrapolate: bool = option(False, "with --regression: let predictions leave the range of the training targets "
                                      "(default: kept within it)", stage=REGRESSION_STAGE)
    seed: int = option(42, "seed for the split, the head's initial weights and the data order", stage=TRAINING_STAGE)
    output_dir: str | None = option(None, "the run folder itself (default: artifacts/runs/<time>-<name>)",
                                    stage=TRAINING_STAGE, path=True)
    cache_dir: str | None = option(None, "feature cache folder (default: artifacts/features)", stage=FEATURES_STAGE,
                                   path=True)
    extraction_batch_size: int = option(64, "texts per encoder call during feature extraction", stage=FEATURES_STAGE,
                                        rule=POSITIVE_WHOLE_NUMBER, extractor_parameter="batch_size")
    precision: str = option(
        AUTO, "the encoder's compute precision: auto (float16 on a GPU, bfloat16 on a CPU with AMX or AVX512_BF16, "
              "int8 on one with AVX2 and neither, else float32), float32, bfloat16, float16, or int8 (int8 weights in "
              "the dense products, on the CPU; docs/precision.md)", stage=FEATURES_STAGE, choices=PRECISIONS)
    mixed_precision: bool = option(False, "the old name of --precision float16 (on a machine without a GPU it now "
                                          "means --precision auto)", stage=COMMAND_LINE_ONLY)
    fine_tune: bool = option(False, "train the encoder together with a dropout + dense head (minutes, not seconds; "
                                    "more accurate); pooling and layers as chosen (default layers: last)",
                             stage=TRAINING_STAGE)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready copy, for config.json and the cache manifest."""
        values = dataclasses.asdict(self)
        values["hidden_units"] = list(self.hidden_units) if self.hidden_units is not None else None
        return values

    def head_settings(self) -> HeadSettings:
        """The head and its training options, each one left unset taking the chosen head's default
        (the fine-tuning recipe's with --fine-tune)."""
        head = FINE_TUNE if self.fine_tune else self.head
        defaults = HEAD_DEFAULTS[head]

        def chosen(name: str) -> Any:
            value = getattr(self, name)
            return defaults[name] if value is None else value

        return HeadSettings(head=head, epochs=int(chosen("epochs")), batch_size=int(chosen("batch_size")),
                            learning_rate=float(chosen("learning_rate")), dropout_rate=float(chosen("dropout_rate")),
                            hidden_units=tuple(chosen("hidden_units")), weight_decay=float(chosen("weight_decay")),
                            ensemble=int(chosen("ensemble")))


@dataclass(frozen=True)
class HeadSettings:
    """Which head is trained, and how: every option settled (RunConfig.head_settings)."""

    head: str
    epochs: int
    batch_size: int
    learning_rate: float
    dropout_rate: float
    hidden_units: tuple[int, ...]
    weight_decay: float
    ensemble: int

    def as_options(self) -> dict[str, Any]:
        """The settled values under RunConfig's field names, to record them in the run's config."""
        return dataclasses.asdict(self)


def validate(config: RunConfig) -> None:
    """Checks that need no data and no model: each option's declared check, then the options that must agree with
    one another; raises UserError naming the option and the fix."""
    for declared in dataclasses.fields(RunConfig):
        value = getattr(config, declared.name)
        if value is None:
            continue
        flag, metadata = flag_of(declared.name), declared.metadata
        if metadata["choices"] is not None and value not in metadata["choices"]:
            raise UserError(f"{flag} {value!r} is unknown; choose one of {', '.join(metadata['choices'])}")
        if metadata["rule"] is not None:
            metadata["rule"].check(flag, value)
        if metadata["check"] is not None:
            metadata["check"](flag, value)
    if config.fine_tune and config.head != DEFAULT_HEAD:
        raise UserError(f"--head {config.head} trains on cached frozen features; --fine-tune trains its own head "
                        f"(dropout + dense output) with the encoder: drop one of the two")
    if config.fine_tune and config.ensemble not in (None, 1):
        raise UserError(f"--ensemble {config.ensemble} averages heads trained on cached frozen features; --fine-tune "
                        f"trains one encoder and head: drop --ensemble")
    check_request(config.precision, mixed_precision=config.mixed_precision, fine_tune=config.fine_tune)
    if config.regression and (config.label_columns is not None or config.label_separator is not None):
        other = "--label-columns" if config.label_columns is not None else "--label-separator"
        raise UserError(f"--regression predicts one number per text and {other} gives several labels per text; drop "
                        f"one of the two")
    if config.regression and config.class_weights == "balanced":
        raise UserError("--class-weights balanced weighs classes, and --regression predicts a number; drop "
                        "--class-weights")
    for name in ("loss", "extrapolate"):
        if getattr(config, name) and not config.regression:
            raise UserError(f"{flag_of(name)} is a setting of --regression; add --regression or drop {flag_of(name)}")
    if config.label_columns is not None and (config.label_separator is not None or config.label_column is not None):
        other = "--label-separator" if config.label_separator is not None else "--label-column"
        raise UserError(f"--label-columns and {other} are two ways to give several labels per text; use one: 0/1 "
                        f"columns with --label-columns A,B,C, or one column of joined labels with --label-column COL "
                        f"--label-separator SEP")
    reading = long_text_strategy(config)
    for name, strategy in (("head_tokens", "head-tail"), ("window_overlap", "windows"), ("max_windows", "windows")):
        if getattr(config, name) is not None and reading != strategy:
            flag = flag_of(name)
            raise UserError(f"{flag} is a setting of --long-texts {strategy}, and --long-texts is {reading}; "
                            f"add --long-texts {strategy} or drop {flag}")
    if config.fine_tune and config.long_texts == "windows":
        raise UserError("--long-texts windows pools several encoder calls per text, which fine-tuning does not train "
                        "through; use --long-texts head-tail or truncate with --fine-tune")
    if config.layers is not None and config.pooling is not None:
        _check_layers_with_pooling(config.layers, parse_layers(config.layers), config.pooling)


def _check_layers_with_pooling(text: str, choice: str | tuple[int, ...], pooling: str) -> None:
    if pooling == "pooled" and choice != "last":
        raise UserError(f"--layers {text} with --pooling pooled: pooled is the model's own output of its last layer; "
                        f"pass --layers last, or --pooling mean or cls to pool other layers")


def _check_distinct(text: str, indices: Sequence[int]) -> None:
    if len(set(indices)) != len(indices):
        raise UserError(f"--layers {text} names a layer twice; name each layer once")


def long_text_strategy(config: RunConfig) -> str:
    """--long-texts, or its default: windows, which beat truncation on long reviews' validation AUROC at every
    split seed (docs/quality.md, "Long texts"); truncate for fine-tuning, which trains one window per text."""
    if config.long_texts is not None:
        return config.long_texts
    return "truncate" if config.fine_tune else "windows"


def layers_text(layers: tuple[int, ...]) -> str:
    """Resolved layers as recorded in config.json and the HParams view, e.g. "-6,-5,-4,-3,-2,-1"."""
    return ",".join(str(index) for index in layers)


def parse_layers(text: str) -> str | tuple[int, ...]:
    """'last', 'all', 'last4', or the layer indices of a comma list; UserError naming the fix otherwise."""
    cleaned = text.strip().lower()
    if cleaned in LAYER_CHOICES:
        return cleaned
    parts = [part.strip() for part in cleaned.split(",")]
    if not cleaned or not all(part.lstrip("-").isdigit() for part in parts):
        raise UserError(f"--layers {text!r} is not a layer choice; pass last, all, last4, or indices such as 0,2,-1")
    indices = tuple(int(part) for part in parts)
    _check_distinct(repr(text), indices)
    return indices


def resolve_layers(text: str, *, pooling: str, available_layers: int, all_layers_given: bool,
                   encoder: str) -> tuple[int, ...]:
    """The chosen layers as negative indices (-1 is the last), checked against what the encoder gives.

    `available_layers` is how many layer outputs the encoder returns; `all_layers_given` is False for
    an old list-signature encoder, which returns only its last layer.
    """
    choice = parse_layers(text)
    if choice == "last":
        return (-1,)
    _check_layers_with_pooling(text, choice, pooling)
    if not all_layers_given:
        raise UserError(f"--layers {text}: encoder {encoder} has the old list signature and gives only its last "
                        f"layer; pass --layers last, or use a dict-signature encoder")
    if choice == "all":
        return tuple(range(-available_layers, 0))
    if choice == "last4":
        return tuple(range(-min(4, available_layers), 0))
    resolved = []
    for index in choice if isinstance(choice, tuple) else ():
        if not -available_layers <= index < available_layers:
            raise UserError(f"--layers {text}: encoder {encoder} has {available_layers} layers (0..{available_layers - 1}, "
                            f"or -{available_layers}..-1 from the end); choose among those")
        resolved.append(index - available_layers if index >= 0 else index)
    _check_distinct(text, resolved)
    return tuple(resolved)


def validate_against_encoder(max_seq_length: int, encoder_limit: int) -> None:
    """The encoder's position table bounds the sequence length; say so before any work starts."""
    if max_seq_length > encoder_limit:
        raise UserError(
            f"--max-seq-length {max_seq_length} is more than this encoder accepts ({encoder_limit}); "
            f"pass --max-seq-length {encoder_limit} or less"
        )
