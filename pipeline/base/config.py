"""Run configuration: one frozen dataclass, its defaults, and validation that names the option and the fix."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.base.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]  # pipeline/base/config.py -> the checkout
POOLINGS = ("pooled", "cls", "mean")
LAYER_CHOICES = ("last", "all", "last4")  # or a comma list of indices, negative ones counting from the end
COMBINES = ("concat", "mean")
# What the encoder reads of a text longer than --max-seq-length (pipeline.features.long_texts).
LONG_TEXT_STRATEGIES = ("truncate", "head-tail", "windows")
PRECISIONS = ("auto", "float32", "bfloat16", "float16", "int8")  # of the encoder's matrix products (pipeline.base.devices)
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
AUTO = "auto"  # --max-seq-length auto: chosen from the training texts' lengths (pipeline.features.long_texts)
EMBEDDED_ENCODER = "all-MiniLM-L6-v2"


def artifacts_dir() -> Path:
    """Where everything the pipeline writes goes; PIPELINE_ARTIFACTS moves it (tests use that)."""
    return Path(os.environ.get("PIPELINE_ARTIFACTS", REPO_ROOT / "artifacts"))


def models_dir() -> Path:
    """Converted encoders; PIPELINE_MODELS moves them alone (the tests share one converted copy)."""
    return Path(os.environ.get("PIPELINE_MODELS", artifacts_dir() / "models"))


@dataclass(frozen=True)
class RunConfig:
    """Everything one `run` or `extract` needs. Fields left None are filled from the preset or the encoder."""

    data: str | None = field(default=None, metadata={"help": "table of texts and labels (CSV, TSV, JSONL, Parquet); default: the embedded demo"})
    test_data: str | None = field(default=None, metadata={"help": "a separate test table; the rest is split into train and validation"})
    text_column: str | None = field(default=None, metadata={"help": "column holding the text (default: the preset's, else 'text')"})
    label_column: str | None = field(default=None, metadata={"help": "column holding the label (default: the preset's, else 'label')"})
    preset: str | None = field(default=None, metadata={"help": "a known data set recipe (see docs/usage.md)"})
    max_words: int | None = field(default=None, metadata={
        "help": "keep only texts of fewer than N words, before a preset's sample (the Amazon tutorial's filter is "
                "--max-words 50; default: all)"})
    encoder: str = field(default=EMBEDDED_ENCODER, metadata={
        "help": "TF-Hub handle: URL, Kaggle handle, local SavedModel folder, or the embedded model's name"})
    pooling: str | None = field(default=None, metadata={
        "help": "how a text becomes one vector (default: the encoder's recommendation, else pooled)", "choices": POOLINGS})
    layers: str | None = field(default=None, metadata={
        "help": "hidden layers pooled into the features: last, all, last4, or indices such as 0,2,-1 "
                "(default: all when the encoder gives every layer; pooled is the model's own output of the last layer)"})
    combine: str = field(default="concat", metadata={
        "help": "how the chosen layers' vectors become one: concat (side by side) or mean", "choices": COMBINES})
    max_seq_length: int | str | None = field(default=None, metadata={
        "help": "WordPiece tokens per text including [CLS] and [SEP], or auto: the smallest of 64, 128, 256, 512 "
                "that holds 95%% of the training texts whole (default: the preset's, else 128)", "auto": True})
    long_texts: str | None = field(default=None, metadata={
        "help": "texts longer than --max-seq-length: truncate (read the start), head-tail (the start and the end), "
                "or windows (all of it, in overlapping windows whose vectors are averaged) (default: windows; "
                "truncate with --fine-tune)",
        "choices": LONG_TEXT_STRATEGIES})
    head_tokens: int | None = field(default=None, metadata={
        "help": "--long-texts head-tail: tokens kept from the start, the rest from the end (default: a quarter)"})
    window_overlap: int | None = field(default=None, metadata={
        "help": "--long-texts windows: tokens shared by consecutive windows (default: a quarter of a window)"})
    max_windows: int | None = field(default=None, metadata={
        "help": "--long-texts windows: most windows per text; tokens past them are cut and counted (default: 8)"})
    head: str = field(default=DEFAULT_HEAD, metadata={
        "help": "the head: paperspace (the tutorial's dense/batch-norm stack) or mlp (standardised inputs, dropout, "
                "weight decay)", "choices": HEADS})
    epochs: int | None = field(default=None, metadata={"help": "most training epochs for the head (default: the head's)"})
    batch_size: int | None = field(default=None, metadata={"help": "training batch size for the head (default: the head's)"})
    learning_rate: float | None = field(default=None, metadata={"help": "Adam learning rate for the head (default: the head's)"})
    dropout_rate: float | None = field(default=None, metadata={
        "help": "dropout after each hidden layer of the head (default: the head's)"})
    hidden_units: tuple[int, ...] | None = field(default=None, metadata={
        "help": "widths of the head's hidden layers (default: the head's)"})
    weight_decay: float | None = field(default=None, metadata={
        "help": "decoupled weight decay (AdamW) for the head; 0 is plain Adam (default: the head's)"})
    ensemble: int | None = field(default=None, metadata={
        "help": "heads trained from different initial weights, their probabilities averaged (default: the head's)"})
    class_weights: str | None = field(default=None, metadata={"help": "'balanced' to weight classes by inverse frequency (default: the preset's)"})
    seed: int = field(default=42, metadata={"help": "seed for the split, the head's initial weights and the data order"})
    output_dir: str | None = field(default=None, metadata={"help": "the run folder itself (default: artifacts/runs/<time>-<name>)"})
    cache_dir: str | None = field(default=None, metadata={"help": "feature cache folder (default: artifacts/features)"})
    extraction_batch_size: int = field(default=64, metadata={"help": "texts per encoder call during feature extraction"})
    precision: str = field(default="auto", metadata={
        "help": "the encoder's compute precision: auto (float16 on a GPU, bfloat16 on a CPU with AMX or AVX512_BF16, int8 on "
                "one with AVX2 and neither, else float32), "
                "float32, bfloat16, float16, or int8 (int8 weights in the dense products, on the CPU; docs/precision.md)",
        "choices": PRECISIONS})
    mixed_precision: bool = field(default=False, metadata={
        "help": "the old name of --precision float16 (on a machine without a GPU it now means --precision auto)"})
    fine_tune: bool = field(default=False, metadata={
        "help": "train the encoder together with a dropout + dense head (minutes, not seconds; more accurate); "
                "pooling and layers as chosen (default layers: last)"})

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
    """Checks that need no data and no model; raises UserError naming the option and the fix."""
    if config.pooling is not None and config.pooling not in POOLINGS:
        raise UserError(f"--pooling {config.pooling!r} is unknown; choose one of {', '.join(POOLINGS)}")
    if config.head not in HEADS:
        raise UserError(f"--head {config.head!r} is unknown; choose one of {', '.join(HEADS)}")
    if config.fine_tune and config.head != DEFAULT_HEAD:
        raise UserError(f"--head {config.head} trains on cached frozen features; --fine-tune trains its own head "
                        f"(dropout + dense output) with the encoder: drop one of the two")
    if config.ensemble is not None and not 1 <= config.ensemble <= MAX_ENSEMBLE:
        raise UserError(f"--ensemble must be a whole number of heads from 1 to {MAX_ENSEMBLE}, got {config.ensemble}")
    if config.fine_tune and config.ensemble not in (None, 1):
        raise UserError(f"--ensemble {config.ensemble} averages heads trained on cached frozen features; --fine-tune "
                        f"trains one encoder and head: drop --ensemble")
    if config.precision not in PRECISIONS:
        raise UserError(f"--precision {config.precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
    if config.fine_tune and config.precision == "int8":
        raise UserError("--precision int8 is for frozen features (TFLite, inference only) and --fine-tune trains the "
                        "encoder; drop one of the two")
    if config.mixed_precision and config.precision not in ("auto", "float16"):
        raise UserError(f"--mixed-precision is the old name of --precision float16, and --precision {config.precision} "
                        f"asks for another; drop --mixed-precision")
    if config.epochs is not None and config.epochs <= 0:
        raise UserError(f"--epochs must be a positive whole number, got {config.epochs}")
    if config.batch_size is not None and config.batch_size <= 0:
        raise UserError(f"--batch-size must be a positive whole number, got {config.batch_size}")
    if config.extraction_batch_size <= 0:
        raise UserError(f"--extraction-batch-size must be a positive whole number, got {config.extraction_batch_size}")
    if isinstance(config.max_seq_length, str) and config.max_seq_length != AUTO:
        raise UserError(f"--max-seq-length must be a whole number or auto, got {config.max_seq_length!r}")
    if isinstance(config.max_seq_length, int) and config.max_seq_length < 3:
        raise UserError(
            f"--max-seq-length must be at least 3 ([CLS], one token, [SEP]), got {config.max_seq_length}"
        )
    if config.learning_rate is not None and not config.learning_rate > 0:
        raise UserError(f"--learning-rate must be positive, got {config.learning_rate}")
    if config.dropout_rate is not None and not 0 <= config.dropout_rate < 1:
        raise UserError(f"--dropout-rate must be in [0, 1), got {config.dropout_rate}")
    if config.weight_decay is not None and not 0 <= config.weight_decay < 1:
        raise UserError(f"--weight-decay must be in [0, 1), got {config.weight_decay}")
    if config.hidden_units is not None and (not config.hidden_units or any(units <= 0 for units in config.hidden_units)):
        raise UserError(f"--hidden-units must be positive widths such as 50,30,30, got {config.hidden_units}")
    if config.class_weights not in (None, "balanced", "none"):
        raise UserError(f"--class-weights must be 'balanced' or 'none', got {config.class_weights!r}")
    if config.max_words is not None and config.max_words < 1:
        raise UserError(f"--max-words must be a positive whole number, got {config.max_words}")
    if config.long_texts is not None and config.long_texts not in LONG_TEXT_STRATEGIES:
        raise UserError(f"--long-texts {config.long_texts!r} is unknown; choose one of {', '.join(LONG_TEXT_STRATEGIES)}")
    reading = long_text_strategy(config)
    for name, strategy in (("head_tokens", "head-tail"), ("window_overlap", "windows"), ("max_windows", "windows")):
        if getattr(config, name) is not None and reading != strategy:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} is a setting of --long-texts {strategy}, and --long-texts is {reading}; "
                            f"add --long-texts {strategy} or drop {flag}")
    if config.fine_tune and config.long_texts == "windows":
        raise UserError("--long-texts windows pools several encoder calls per text, which fine-tuning does not train "
                        "through; use --long-texts head-tail or truncate with --fine-tune")
    if config.combine not in COMBINES:
        raise UserError(f"--combine {config.combine!r} is unknown; choose one of {', '.join(COMBINES)}")
    if config.layers is not None:
        layers = parse_layers(config.layers)
        if config.pooling == "pooled" and layers != "last":
            raise UserError(f"--layers {config.layers} with --pooling pooled: pooled is the model's own output of its "
                            f"last layer; pass --layers last, or --pooling mean or cls to pool other layers")


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
    if len(set(indices)) != len(indices):
        raise UserError(f"--layers {text!r} names a layer twice; name each layer once")
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
    if pooling == "pooled":
        raise UserError(f"--layers {text} with --pooling pooled: pooled is the model's own output of its last layer; "
                        f"pass --layers last, or --pooling mean or cls to pool other layers")
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
    if len(set(resolved)) != len(resolved):
        raise UserError(f"--layers {text} names a layer twice; name each layer once")
    return tuple(resolved)


def validate_against_encoder(max_seq_length: int, encoder_limit: int) -> None:
    """The encoder's position table bounds the sequence length; say so before any work starts."""
    if max_seq_length > encoder_limit:
        raise UserError(
            f"--max-seq-length {max_seq_length} is more than this encoder accepts ({encoder_limit}); "
            f"pass --max-seq-length {encoder_limit} or less"
        )
