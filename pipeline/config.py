"""Run configuration: one frozen dataclass, its defaults, and validation that names the option and the fix."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
POOLINGS = ("pooled", "cls", "mean")
DEFAULT_MAX_SEQ_LENGTH = 128
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
    preset: str | None = field(default=None, metadata={"help": "a known data set recipe (see README)"})
    encoder: str = field(default=EMBEDDED_ENCODER, metadata={
        "help": "TF-Hub handle: URL, Kaggle handle, local SavedModel folder, or the embedded model's name"})
    pooling: str | None = field(default=None, metadata={
        "help": "how a text becomes one vector (default: the encoder's recommendation, else pooled)", "choices": POOLINGS})
    max_seq_length: int | None = field(default=None, metadata={"help": "WordPiece tokens per text including [CLS] and [SEP] (default: the preset's, else 128)"})
    epochs: int = field(default=10, metadata={"help": "training epochs for the head"})
    batch_size: int = field(default=300, metadata={"help": "training batch size for the head"})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate for the head"})
    dropout_rate: float = field(default=0.0, metadata={"help": "dropout after each hidden layer of the head"})
    hidden_units: tuple[int, ...] = field(default=(50, 30, 30), metadata={"help": "widths of the head's hidden layers"})
    class_weights: str | None = field(default=None, metadata={"help": "'balanced' to weight classes by inverse frequency (default: the preset's)"})
    seed: int = field(default=42, metadata={"help": "seed for the split, the head's initial weights and the data order"})
    output_dir: str | None = field(default=None, metadata={"help": "the run folder itself (default: artifacts/runs/<time>-<name>)"})
    cache_dir: str | None = field(default=None, metadata={"help": "feature cache folder (default: artifacts/features)"})
    extraction_batch_size: int = field(default=64, metadata={"help": "texts per encoder call during feature extraction"})
    mixed_precision: bool = field(default=False, metadata={"help": "use float16 compute on a GPU during extraction"})

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready copy, for config.json and the cache manifest."""
        values = dataclasses.asdict(self)
        values["hidden_units"] = list(self.hidden_units)
        return values


def validate(config: RunConfig) -> None:
    """Checks that need no data and no model; raises UserError naming the option and the fix."""
    if config.pooling is not None and config.pooling not in POOLINGS:
        raise UserError(f"--pooling {config.pooling!r} is unknown; choose one of {', '.join(POOLINGS)}")
    if config.epochs <= 0:
        raise UserError(f"--epochs must be a positive whole number, got {config.epochs}")
    if config.batch_size <= 0:
        raise UserError(f"--batch-size must be a positive whole number, got {config.batch_size}")
    if config.extraction_batch_size <= 0:
        raise UserError(f"--extraction-batch-size must be a positive whole number, got {config.extraction_batch_size}")
    if config.max_seq_length is not None and config.max_seq_length < 3:
        raise UserError(
            f"--max-seq-length must be at least 3 ([CLS], one token, [SEP]), got {config.max_seq_length}"
        )
    if not config.learning_rate > 0:
        raise UserError(f"--learning-rate must be positive, got {config.learning_rate}")
    if not 0 <= config.dropout_rate < 1:
        raise UserError(f"--dropout-rate must be in [0, 1), got {config.dropout_rate}")
    if not config.hidden_units or any(units <= 0 for units in config.hidden_units):
        raise UserError(f"--hidden-units must be positive widths such as 50,30,30, got {config.hidden_units}")
    if config.class_weights not in (None, "balanced", "none"):
        raise UserError(f"--class-weights must be 'balanced' or 'none', got {config.class_weights!r}")


def validate_against_encoder(max_seq_length: int, encoder_limit: int) -> None:
    """The encoder's position table bounds the sequence length; say so before any work starts."""
    if max_seq_length > encoder_limit:
        raise UserError(
            f"--max-seq-length {max_seq_length} is more than this encoder accepts ({encoder_limit}); "
            f"pass --max-seq-length {encoder_limit} or less"
        )
