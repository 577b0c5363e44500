"""Tables of texts and labels: reading, label mapping, stratified splits and class weights.

Every table goes through the same steps: read the file (format from its extension), keep the
text and label columns as strings, drop rows without a label or text, apply the preset's
cleaning, map labels to class ids 0..K-1. Preset specifics live in `presets.py`.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from pipeline.base.errors import UserError
from pipeline.data import targets
from pipeline.data.presets import (
    DEFAULT_PRESET,
    LABEL,
    PRESETS,
    TEXT,
    Preset,
    embedded_demo_path,
    keep_under_words,
    log_dropped,
    sample_rows,
    unknown_labels,
)

__all__ = [
    "LabeledTexts",
    "PRESETS",
    "Preset",
    "Splits",
    "align_labels",
    "compute_class_weights",
    "embedded_demo_path",
    "labeled_texts_from_values",
    "load_labeled_texts",
    "read_table",
    "split_labeled_texts",
]

logger = logging.getLogger(__name__)

DEFAULT_TEXT_COLUMN = "text"
DEFAULT_LABEL_COLUMN = "label"
IN_MEMORY_DATA = "in-memory"  # a run's `data` when its texts came from memory (pipeline.api), not from a file


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays field by field is ambiguous
class LabeledTexts:
    """Texts with their target: class ids (class i is `label_names[i]`), with several labels per text an indicator
    matrix (column j, 1 when the text has label `label_names[j]`), or numbers (`label_names`: their column)."""

    texts: list[str]
    labels: np.ndarray  # single-label: int64 [N], values 0..K-1; multi-label: int8 [N, L] of 0/1; regression: float32 [N]
    label_names: list[str]
    dropped_rows: int = 0  # rows dropped while loading (missing labels, preset filters)
    class_weighting: str | None = None  # "balanced" when the preset asks for it
    kind: str = targets.SINGLE_LABEL

    def __post_init__(self) -> None:
        # These are programming errors, not user input: the loaders always build valid objects.
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")
        if self.kind == targets.REGRESSION:
            if self.labels.dtype != np.float32 or self.labels.ndim != 1:
                raise ValueError(f"targets must be a 1-D float32 array, got {self.labels.dtype} {self.labels.shape}")
            return
        if self.kind == targets.MULTI_LABEL:
            if self.labels.dtype != np.int8 or self.labels.shape[1:] != (len(self.label_names),):
                raise ValueError(f"labels must be an int8 [N, {len(self.label_names)}] matrix, got "
                                 f"{self.labels.dtype} {self.labels.shape}")
            return
        if self.labels.dtype != np.int64 or self.labels.ndim != 1:
            raise ValueError(f"labels must be a 1-D int64 array, got {self.labels.dtype}")
        if len(self.labels) and not 0 <= self.labels.min() <= self.labels.max() < len(self.label_names):
            raise ValueError(f"labels must lie in 0..{len(self.label_names) - 1}")

    @property
    def target(self) -> targets.Target:
        return targets.Target(kind=self.kind, names=tuple(self.label_names))

    def with_rows(self, indices: np.ndarray, *, dropped_rows: int) -> LabeledTexts:
        """The rows at `indices`, in that order, with the same classes or labels."""
        return replace(self, texts=[self.texts[index] for index in indices], labels=self.labels[indices],
                       label_names=list(self.label_names), dropped_rows=dropped_rows)


@dataclass(frozen=True)
class Splits:
    train: LabeledTexts
    validation: LabeledTexts
    test: LabeledTexts


# ============================================================================ reading tables

COMPRESSION_BY_SUFFIX = {".gz": "gzip", ".bz2": "bz2"}
FORMAT_BY_SUFFIX = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",  # JSON lines, or one JSON array of records (detected from the first character)
    ".parquet": "parquet",
    "": "csv",  # a bare `reviews.gz` is taken to be a compressed CSV
}
SUPPORTED_FORMATS = (
    ".csv, .tsv, .txt (tab-separated), .jsonl, .json, .parquet; CSV, TSV and JSON may end in .gz or .bz2"
)
T = TypeVar("T")


def table_format(path: Path) -> tuple[str, str | None]:
    """(format, compression) from the file name: `reviews.csv.bz2` -> ("csv", "bz2")."""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    compression = COMPRESSION_BY_SUFFIX.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes = suffixes[:-1]
    inner_suffix = suffixes[-1] if suffixes else ""
    table_kind = FORMAT_BY_SUFFIX.get(inner_suffix)
    if table_kind is None or (table_kind == "parquet" and compression):
        raise UserError(
            f"cannot tell the format of {path} from its extension; use one of: {SUPPORTED_FORMATS}"
        )
    return table_kind, compression


def one_line(error: Exception) -> str:
    """Library messages may span lines; the CLI prints exactly one."""
    return " ".join(str(error).split())


def with_encoding_fallback(read: Callable[[str], T], path: Path) -> T:
    """UTF-8 (a byte-order mark is skipped); latin-1 otherwise, which decodes any bytes."""
    try:
        return read("utf-8-sig")
    except UnicodeDecodeError:
        logger.warning("%s is not valid UTF-8; reading it as latin-1, check accented characters", path)
        return read("latin-1")


def check_readable_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"data file not found: {path}; check the path given with --data or --test-data")
    if not path.is_file():
        raise UserError(f"{path} is a directory, not a data file; pass the table file itself")
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty; it needs a header row and at least one row of data")


def read_first_row(path: Path, options: dict) -> list[str]:
    first = pd.read_csv(path, header=None, nrows=1, **options)
    return ["" if pd.isna(field) else str(field).strip() for field in first.iloc[0]]


def read_delimited(
    path: Path, *, separator: str, compression: str | None, encoding: str,
    headerless_columns: Sequence[str] | None,
) -> pd.DataFrame:
    """CSV with standard quoting (fields may hold commas and newlines); TSV without quoting.

    TSV is read as GLUE writes it: a quote character is an ordinary character, so a sentence
    that starts with `"` is not swallowed into one huge field. Every cell is read as a string
    and only empty cells count as missing (a review saying "NA" is text, not a gap).
    """
    options: dict = {
        "sep": separator, "dtype": str, "keep_default_na": False,
        "encoding": encoding, "compression": compression,
    }
    if separator == "\t":
        options["quoting"] = csv.QUOTE_NONE
    if headerless_columns:
        first_row = read_first_row(path, options)
        if not set(first_row) & set(headerless_columns):
            if len(first_row) != len(headerless_columns):
                raise UserError(
                    f"{path} has no header and {len(first_row)} fields per row; expected "
                    f"{len(headerless_columns)} ({', '.join(headerless_columns)})"
                )
            options.update(header=None, names=list(headerless_columns))
    return pd.read_csv(path, **options)


def read_text_file(path: Path, *, compression: str | None, encoding: str) -> str:
    if compression == "gzip":
        with gzip.open(path, "rb") as handle:
            return handle.read().decode(encoding)
    if compression == "bz2":
        with bz2.open(path, "rb") as handle:
            return handle.read().decode(encoding)
    return path.read_bytes().decode(encoding)


def read_json_table(path: Path, *, compression: str | None, encoding: str) -> pd.DataFrame:
    """JSON lines (one object per line), or one JSON array of objects, read by pandas as they are."""
    text = read_text_file(path, compression=compression, encoding=encoding)
    if not text.strip():
        raise pd.errors.EmptyDataError("no records")
    is_array = text.lstrip().startswith("[")
    try:
        return pd.read_json(io.StringIO(text), lines=not is_array, orient="records", dtype=False,
                            convert_dates=False, keep_default_dates=False)
    except (ValueError, TypeError) as error:
        raise UserError(json_problem(text, path, is_array=is_array, error=error)) from None


def json_problem(text: str, path: Path, *, is_array: bool, error: Exception) -> str:
    """pandas says what is wrong but not where; for JSON lines, name the first line that is no object."""
    if not is_array:
        for line_number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as line_error:
                return f"line {line_number} of {path} is not valid JSON ({line_error}); write one object per line"
            if not isinstance(record, dict):
                return (f"line {line_number} of {path} is not a JSON object; "
                        f'write one {{"column": value}} object per line')
    return f"{path} is not valid JSON ({one_line(error)}); write one object per line (JSON lines)"


def read_parquet_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise UserError(
            f"could not read {path} as Parquet ({one_line(error)}); check the file is a Parquet table"
        ) from None


def read_table(path: Path, *, headerless_columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a table by extension; UserError for a missing, empty, unparsable or row-less file.

    `headerless_columns` names the columns of a delimited file whose first row is data, which
    is detected by none of its fields being one of those names.
    """
    check_readable_file(path)
    table_kind, compression = table_format(path)
    try:
        if table_kind == "parquet":
            frame = read_parquet_table(path)
        elif table_kind in ("csv", "tsv"):
            separator = "," if table_kind == "csv" else "\t"
            frame = with_encoding_fallback(
                lambda encoding: read_delimited(
                    path, separator=separator, compression=compression, encoding=encoding,
                    headerless_columns=headerless_columns,
                ),
                path,
            )
        else:
            frame = with_encoding_fallback(
                lambda encoding: read_json_table(path, compression=compression, encoding=encoding), path
            )
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty; it needs a header row and at least one row of data") from None
    except pd.errors.ParserError as error:
        raise UserError(
            f"could not parse {path} as {table_kind.upper()} ({one_line(error)}); "
            f"check that every row has as many fields as the header"
        ) from None
    except (OSError, EOFError) as error:  # a damaged .gz or .bz2
        raise UserError(f"could not read {path} ({one_line(error)}); check the file is complete") from None
    if len(frame) == 0:
        header = f" (only a header: {describe_columns(frame)})" if len(frame.columns) else ""
        raise UserError(f"{path} has no data rows{header}; add at least one row of text and label")
    return frame


# ============================================================================ columns and labels


def value_to_text(value: Any) -> str | None:  # a table cell, of whatever type the reader gave
    """A cell as stripped text; None when missing or blank. Whole floats lose their `.0`.

    Numbers are text too (a numeric text column is read as its digits), and a label 1.0 that
    JSON or Parquet upcast because of a missing value still reads as "1".
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def column_to_text(column: pd.Series) -> pd.Series:
    """A column as stripped Python strings (object dtype) with None for missing or blank cells."""
    if isinstance(column.dtype, pd.StringDtype):  # every CSV/TSV column: vectorised, no per-cell calls
        stripped = column.str.strip()
        usable = stripped.notna() & (stripped != "")
        return stripped.astype(object).where(usable, None)
    return column.map(value_to_text).astype(object)


def describe_columns(frame: pd.DataFrame, limit: int = 30) -> str:
    names = [str(name) for name in frame.columns]
    shown = ", ".join(names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def select_text_and_label(
    frame: pd.DataFrame, *, path: Path, text_column: str, label_column: str
) -> pd.DataFrame:
    """The two columns, renamed to `text`/`label`, as stripped strings with None for gaps."""
    wanted = (("text", text_column, "--text-column"), ("label", label_column, "--label-column"))
    for role, column, flag in wanted:
        if column not in frame.columns:
            raise UserError(
                f"{role} column {column!r} not found in {path}; columns found: {describe_columns(frame)}; "
                f"pass {flag} NAME"
            )
    rows = pd.DataFrame(
        {
            TEXT: column_to_text(frame[text_column]),
            LABEL: column_to_text(frame[label_column]),
        }
    )
    if rows[TEXT].isna().all():
        raise UserError(
            f"text column {text_column!r} in {path} has no text on any row; "
            f"pass --text-column with the column that holds the texts"
        )
    if rows[LABEL].isna().all():
        raise UserError(
            f"label column {label_column!r} in {path} is empty on every row; "
            f"fill in the labels or pass --label-column NAME"
        )
    return rows


def drop_incomplete_rows(rows: pd.DataFrame, *, path: Path, label_column: str) -> pd.DataFrame:
    """Rows without a label cannot be trained on, nor rows without text; both are reported."""
    missing_label = rows[LABEL].isna()
    missing_text = rows[TEXT].isna() & ~missing_label
    if missing_label.any():
        logger.warning(
            "dropped %d rows of %s with no value in label column %r", int(missing_label.sum()), path, label_column
        )
    if missing_text.any():
        logger.info("dropped %d rows of %s with empty text", int(missing_text.sum()), path)
    return rows.loc[~(missing_label | missing_text)]


NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def sorted_label_names(labels: Sequence[str]) -> list[str]:
    """Distinct labels in a stable order: by value when all are numbers (2 before 10), else by text."""
    distinct = set(labels)
    if all(NUMBER.fullmatch(label) for label in distinct):
        return sorted(distinct, key=lambda label: (float(label), label))
    return sorted(distinct)


def labels_to_ids(labels: Sequence[str], label_names: Sequence[str], *, source: str) -> np.ndarray:
    """Class ids for label strings; a label outside `label_names` is a UserError naming it."""
    id_by_name = {name: index for index, name in enumerate(label_names)}
    shown = unknown_labels(labels, id_by_name)
    if shown:
        raise UserError(
            f"{source} has label {shown} not among the training labels ({', '.join(label_names)}); "
            f"use the same label values in both files"
        )
    return np.array([id_by_name[label] for label in labels], dtype=np.int64)


def classes_present(class_names: list[str], label_values: Sequence[str], *, preset_name: str, path: Path) -> list[str]:
    """A preset's fixed classes, less those with no row in this file (with a warning naming them).

    A user may well hold a copy with a class filtered out; training on the classes present is what
    they can use, where refusing would leave them nothing to do but add rows they do not have.
    """
    present = set(label_values)
    missing = [name for name in class_names if name not in present]
    if missing:
        kept = [name for name in class_names if name in present]
        logger.warning("%s: class %s has no rows in %s; training on the %d classes present (%s)", preset_name,
                       ", ".join(repr(name) for name in missing), path, len(kept), ", ".join(kept))
        return kept
    return class_names


def require_two_classes(labels: np.ndarray, label_names: Sequence[str], *, path: str | Path) -> None:
    present = np.unique(labels)
    if len(present) < 2:
        only = label_names[present[0]] if len(present) else "none"
        raise UserError(
            f"{path} has only one class ({only!r}, {len(labels)} rows) after cleaning; a classifier needs at "
            f"least two, check --label-column"
        )


def align_labels(
    data: LabeledTexts, label_names: Sequence[str], *, source: str = "the test data"
) -> LabeledTexts:
    """Re-express `data` in another class order, e.g. a test file in the training file's classes (with several
    labels per text: the same labels, columns in that order)."""
    if data.kind == targets.MULTI_LABEL:
        unknown = [name for name in data.label_names if name not in label_names]
        if unknown or len(data.label_names) != len(label_names):
            raise UserError(f"{source} has labels {', '.join(data.label_names)}, the training data "
                            f"{', '.join(label_names)}; use the same labels in both")
        columns = [data.label_names.index(name) for name in label_names]
        return replace(data, labels=np.ascontiguousarray(data.labels[:, columns]), label_names=list(label_names))
    original_names = [data.label_names[class_id] for class_id in data.labels]
    return LabeledTexts(
        texts=list(data.texts),
        labels=labels_to_ids(original_names, label_names, source=source),
        label_names=list(label_names),
        dropped_rows=data.dropped_rows,
        class_weighting=data.class_weighting,
    )


# ============================================================================ loading


def resolve_preset(name: str | None, presets: Mapping[str, Preset]) -> Preset | None:
    if name is None:
        return None
    if name not in presets:
        raise UserError(f"unknown preset {name!r}; known presets: {', '.join(sorted(presets))}")
    return presets[name]


def resolve_data_path(path: str | Path | None, preset: Preset | None) -> Path:
    if path is not None:
        return Path(path).expanduser()
    if preset is None or preset.bundled_path is None:
        name = preset.name if preset else "(none)"
        source = f" (get it from: {preset.source})" if preset else ""
        raise UserError(f"preset {name} needs a data file; pass --data PATH{source}")
    return preset.bundled_path()


def load_labeled_texts(
    path: str | Path | None,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    preset: str | None = None,
    seed: int = 42,
    label_names: Sequence[str] | None = None,
    presets: Mapping[str, Preset] = PRESETS,
    max_words: int | None = None,
    label_columns: Sequence[str] | None = None,
    label_separator: str | None = None,
    regression: bool = False,
) -> LabeledTexts:
    """Read a table into texts and class ids, or with several labels per text into an indicator matrix.

    With no path and no preset this is the embedded demo (the rotten-tomatoes preset).
    `text_column`/`label_column` override the preset's columns; without a preset they default
    to `text` and `label`. Class order: `label_names` when given (a test file read in the
    training file's classes; another label is a UserError), else the preset's, else sorted
    labels (numerically if all are numbers). `seed` drives presets that sample rows. `max_words` keeps only
    texts of fewer words (the preset's own limit when None), before the preset's sample is drawn.
    Several labels per text: `label_columns` (0/1 columns, the labels in their order; a multi-label preset's by
    default) or `label_separator` (the label column holds label names joined by it), see `multi_label_texts`.
    `regression`: the label column read as numbers (float32), without a preset (they all have classes).
    """
    if path is None and preset is None:
        preset = DEFAULT_PRESET
    chosen = resolve_preset(preset, presets)
    data_path = resolve_data_path(path, chosen)
    text_column = text_column or (chosen.text_column if chosen else DEFAULT_TEXT_COLUMN)
    label_column = label_column or (chosen.label_column if chosen else DEFAULT_LABEL_COLUMN)
    if chosen is not None and regression:
        raise UserError(f"preset {chosen.name} has classes, not numbers; drop --regression, or drop --preset and "
                        f"name your table's columns (--text-column, --label-column)")
    if chosen is not None and chosen.label_columns is None and (label_columns or label_separator is not None):
        option = "--label-columns" if label_columns else "--label-separator"
        raise UserError(f"preset {chosen.name} has one label per text; {option} is for tables with several: drop "
                        f"{option}, or drop --preset and name your table's columns")
    if chosen is not None and chosen.label_columns is not None and label_separator is not None:
        raise UserError(f"preset {chosen.name} reads 0/1 label columns ({', '.join(chosen.label_columns)}); "
                        f"--label-separator is for one column of joined labels: drop it (--label-columns picks some)")
    label_columns = label_columns or (chosen.label_columns if chosen else None)

    frame = read_table(data_path, headerless_columns=chosen.headerless_columns if chosen else None)
    if label_columns or label_separator is not None:
        return multi_label_texts(frame, data_path, chosen=chosen, text_column=text_column, label_column=label_column,
                                 label_columns=label_columns, label_separator=label_separator, label_names=label_names,
                                 seed=seed, max_words=max_words)
    rows = select_text_and_label(frame, path=data_path, text_column=text_column, label_column=label_column)
    rows = drop_incomplete_rows(rows, path=data_path, label_column=label_column)
    if len(rows) == 0:
        raise UserError(
            f"no row of {data_path} has both a text and a label; check --text-column and --label-column"
        )
    rows = filtered_rows(rows, data_path, chosen=chosen, seed=seed, max_words=max_words)
    if regression:
        numbers = targets.numbers_from_column(rows[LABEL].tolist(), column=label_column, source=str(data_path),
                                              row_numbers=[int(index) + 1 for index in rows.index])
        return LabeledTexts(texts=[str(text) for text in rows[TEXT]], labels=numbers, label_names=[label_column],
                            dropped_rows=len(frame) - len(rows), kind=targets.REGRESSION)

    label_values = rows[LABEL].tolist()
    fixed_order = label_names or (chosen.label_names if chosen else None)
    class_names = list(fixed_order) if fixed_order else sorted_label_names(label_values)
    if not label_names and chosen is not None:
        class_names = classes_present(class_names, label_values, preset_name=chosen.name, path=data_path)
    labels = labels_to_ids(label_values, class_names, source=str(data_path))
    require_two_classes(labels, class_names, path=data_path)
    return LabeledTexts(
        texts=[str(text) for text in rows[TEXT]],
        labels=labels,
        label_names=class_names,
        dropped_rows=len(frame) - len(rows),
        class_weighting=chosen.class_weighting if chosen else None,
    )


def filtered_rows(rows: pd.DataFrame, data_path: Path, *, chosen: Preset | None, seed: int,
                  max_words: int | None) -> pd.DataFrame:
    """The preset's cleaning, then the word limit, then the preset's seeded sample; UserError when none is left."""
    if chosen is not None:
        rows = chosen.prepare(rows, seed)
    word_limit = max_words or (chosen.max_words if chosen else None)
    if word_limit:
        rows = keep_under_words(rows, word_limit, source_name=chosen.name if chosen else str(data_path))
    if chosen is not None and chosen.sample_size:
        sampled = sample_rows(rows, sample_size=chosen.sample_size, seed=seed)
        log_dropped(chosen.name, f"not in the seeded sample of {chosen.sample_size}", len(rows) - len(sampled))
        rows = sampled
    if len(rows) == 0:
        filters = [f"the {chosen.name} preset's filters" if chosen else "", f"--max-words {max_words}" if max_words else ""]
        raise UserError(f"no rows of {data_path} are left after {' and '.join(part for part in filters if part)}; "
                        f"check the file, {' and '.join(option for option, used in (('--preset', chosen), ('--max-words', max_words)) if used)}")
    return rows


def multi_label_texts(
    frame: pd.DataFrame, data_path: Path, *, chosen: Preset | None, text_column: str, label_column: str,
    label_columns: Sequence[str] | None, label_separator: str | None, label_names: Sequence[str] | None, seed: int,
    max_words: int | None,
) -> LabeledTexts:
    """Texts with several labels each: from 0/1 `label_columns`, or from `label_column` holding label names joined
    by `label_separator`. A text may have no label; rows without text are dropped. `label_names`: the training
    data's labels (a test table); without them, every label must be positive somewhere."""
    source = str(data_path)
    if text_column not in frame.columns:
        raise UserError(f"text column {text_column!r} not found in {data_path}; columns found: "
                        f"{describe_columns(frame)}; pass --text-column NAME")
    if label_columns:
        names = list(label_columns)
        matrix = targets.indicators_from_columns(frame, names, source=source)
    else:
        if label_column not in frame.columns:
            raise UserError(f"label column {label_column!r} not found in {data_path}; columns found: "
                            f"{describe_columns(frame)}; pass --label-column NAME")
        names, matrix = targets.indicators_from_joined(frame[label_column].tolist(), str(label_separator),
                                                       source=source, names=label_names)
    if label_names is not None and list(label_names) != names:
        raise UserError(f"{data_path} has labels {', '.join(names)}, the training data {', '.join(label_names)}; "
                        f"give both tables the same label columns")
    rows = pd.DataFrame({TEXT: column_to_text(frame[text_column])})
    has_text = rows[TEXT].notna()
    if not has_text.any():
        raise UserError(f"text column {text_column!r} in {data_path} has no text on any row; "
                        f"pass --text-column with the column that holds the texts")
    if not has_text.all():
        logger.info("dropped %d rows of %s with empty text", int((~has_text).sum()), data_path)
    rows = filtered_rows(rows.loc[has_text], data_path, chosen=chosen, seed=seed, max_words=max_words)
    matrix = matrix[rows.index.to_numpy()]
    if label_names is None:
        targets.require_positives(matrix, names, source=source)
    return LabeledTexts(texts=[str(text) for text in rows[TEXT]], labels=matrix, label_names=names,
                        dropped_rows=len(frame) - len(rows), class_weighting=chosen.class_weighting if chosen else None,
                        kind=targets.MULTI_LABEL)


def labeled_texts_from_values(
    texts: Sequence[str],
    labels: Sequence[Any],
    *,
    source: str,
    label_names: Sequence[str] | None = None,
    label_order: Sequence[Any] | None = None,
) -> LabeledTexts:
    """Texts and labels held in memory (the Python API's tables), mapped to class ids as a file's are.

    Each label is read as a table cell is (`value_to_text`: 1.0 is "1", blanks are missing), classes are
    sorted as `load_labeled_texts` sorts a file's, and one class alone is refused with the same message.
    `label_names` fixes the classes (validation or test data in the training data's classes);
    `label_order` gives their order instead of sorting (a pandas Categorical's categories), as a preset
    does. Nothing is dropped: a missing label is a UserError naming its row, since the caller's rows must
    stay aligned. `texts` are strings already checked by the caller; `source` names them in messages.
    """
    if len(texts) != len(labels):
        raise UserError(f"{source} has {len(texts)} texts but {len(labels)} labels; pass one label per text")
    if not texts:
        raise UserError(f"{source} has no data rows; add at least one row of text and label")
    label_values = []
    for row, value in enumerate(labels):
        text = value_to_text(value)
        if text is None:
            raise UserError(f"label {row} of {source} is missing ({value!r}); give every text a label, "
                            f"or drop the rows without one")
        label_values.append(text)
    if label_names is not None:
        class_names = list(label_names)
    elif label_order is not None:
        present = set(label_values)
        ordered = [name for name in dict.fromkeys(value_to_text(value) for value in label_order) if name is not None]
        class_names = [name for name in ordered if name in present]
        if len(class_names) < len(ordered):
            logger.warning("%s: categories %s have no rows; training on the %d classes present", source,
                           ", ".join(repr(name) for name in ordered if name not in present), len(class_names))
    else:
        class_names = sorted_label_names(label_values)
    ids = labels_to_ids(label_values, class_names, source=source)
    require_two_classes(ids, class_names, path=source)
    return LabeledTexts(texts=list(texts), labels=ids, label_names=class_names)


# ============================================================================ splits and weights


def subset(data: LabeledTexts, indices: np.ndarray, *, dropped_rows: int) -> LabeledTexts:
    return data.with_rows(indices, dropped_rows=dropped_rows)


def smallest_class_needed(fraction: float) -> int:
    """Rows a class needs so that a stratified `fraction` of it is at least one row."""
    return max(2, math.ceil(1.0 / fraction - 1e-9))


def require_stratifiable(data: LabeledTexts, *, minimum_rows: int, reason: str) -> None:
    counts = np.bincount(data.labels, minlength=len(data.label_names))
    for class_id, count in enumerate(counts):
        if count < minimum_rows:
            raise UserError(
                f"class {data.label_names[class_id]!r} has {count} row{'' if count == 1 else 's'}, too few for a stratified split: "
                f"each class needs at least {minimum_rows} so {reason}; add rows or remove that class"
            )


def check_fractions(validation_fraction: float, test_fraction: float) -> None:
    each_in_range = 0 < validation_fraction < 1 and 0 < test_fraction < 1
    if not (each_in_range and validation_fraction + test_fraction < 1):
        raise UserError(
            f"validation fraction {validation_fraction} and test fraction {test_fraction} must each be "
            f"between 0 and 1 and sum to less than 1"
        )


def stratified_split(
    labels: np.ndarray, indices: np.ndarray, *, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, split_off) positions; sklearn's own refusals become UserErrors."""
    from sklearn.model_selection import train_test_split  # imported here: bad input fails before it loads

    try:
        kept, split_off = train_test_split(
            indices, test_size=fraction, random_state=seed, shuffle=True, stratify=labels[indices]
        )
    except ValueError as error:
        raise UserError(
            f"cannot make a stratified split ({one_line(error)}); add rows or remove small classes"
        ) from None
    return kept, split_off


def split_labeled_texts(
    data: LabeledTexts,
    *,
    seed: int,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    test_data: LabeledTexts | None = None,
    validation_data: LabeledTexts | None = None,
) -> Splits:
    """Stratified, seeded train/validation/test splits.

    Without `test_data`: test gets `test_fraction` of `data`, validation `validation_fraction`,
    train the rest. With `test_data`: it is the test set (re-mapped to `data`'s classes; an
    unknown label is a UserError) and `data` is split train/validation in the same ratio as
    without it, i.e. validation gets validation_fraction / (1 - test_fraction) of `data`
    (1/9 for 0.1/0.1, keeping 8:1). `dropped_rows` rides on the split the file mostly went to:
    train for `data`, test for `test_data`. With `validation_data` (the Python API's) it is the
    validation set and nothing of `data` is split off for it: see `splits_with_validation`.
    """
    check_fractions(validation_fraction, test_fraction)
    if data.kind == targets.REGRESSION:
        return regression_splits(data, seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction,
                                 test_data=test_data, validation_data=validation_data)
    if data.kind == targets.MULTI_LABEL:
        return multi_label_splits(data, seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction,
                                  test_data=test_data, validation_data=validation_data)
    if validation_data is not None:
        return splits_with_validation(data, validation_data, seed=seed, test_fraction=test_fraction,
                                      test_data=test_data)
    relative_validation = validation_fraction / (1 - test_fraction)
    all_indices = np.arange(len(data.labels))
    if test_data is None:
        require_stratifiable(
            data,
            minimum_rows=smallest_class_needed(min(validation_fraction, test_fraction)),
            reason=f"the {validation_fraction:.0%} validation and {test_fraction:.0%} test sets each get one",
        )
        rest, test_indices = stratified_split(data.labels, all_indices, fraction=test_fraction, seed=seed)
        test = subset(data, test_indices, dropped_rows=0)
    else:
        require_stratifiable(
            data,
            minimum_rows=smallest_class_needed(relative_validation),
            reason=f"the {relative_validation:.0%} validation set gets one",
        )
        rest = all_indices
        test = align_labels(test_data, data.label_names)
    train_indices, validation_indices = stratified_split(
        data.labels, rest, fraction=relative_validation, seed=seed
    )
    return Splits(
        train=subset(data, train_indices, dropped_rows=data.dropped_rows),
        validation=subset(data, validation_indices, dropped_rows=0),
        test=test,
    )


def splits_with_validation(
    data: LabeledTexts,
    validation_data: LabeledTexts,
    *,
    seed: int,
    test_fraction: float = 0.1,
    test_data: LabeledTexts | None = None,
) -> Splits:
    """Splits when the validation set is given: `validation_data` (re-mapped to `data`'s classes) is the
    validation set; the test set is `test_data`, else the same seeded `test_fraction` of `data` that
    `split_labeled_texts` would take; train is the rest of `data`."""
    validation = align_labels(validation_data, data.label_names, source="the validation data")
    if test_data is not None:
        return Splits(train=data, validation=validation, test=align_labels(test_data, data.label_names))
    require_stratifiable(data, minimum_rows=smallest_class_needed(test_fraction),
                         reason=f"the {test_fraction:.0%} test set gets one")
    train_indices, test_indices = stratified_split(data.labels, np.arange(len(data.labels)), fraction=test_fraction,
                                                   seed=seed)
    return Splits(
        train=subset(data, train_indices, dropped_rows=data.dropped_rows),
        validation=validation,
        test=subset(data, test_indices, dropped_rows=0),
    )


REGRESSION_BINS = 10  # a numeric target's split is stratified on (at most) this many quantile bins


def regression_splits(
    data: LabeledTexts, *, seed: int, validation_fraction: float, test_fraction: float,
    test_data: LabeledTexts | None, validation_data: LabeledTexts | None,
) -> Splits:
    """split_labeled_texts for a number: the same fractions, stratified on the target's quantile bins (as many
    as the smallest split can hold one row of each, at most REGRESSION_BINS), seeded. Given validation or test
    data are used as they are."""
    if validation_data is not None and test_data is not None:
        return Splits(train=data, validation=validation_data, test=test_data)
    relative_validation = validation_fraction / (1 - test_fraction)
    # Validation keeps its ratio to train whether or not the test set is given, as in split_labeled_texts.
    fractions = [test_fraction] if test_data is None else []
    fractions += [relative_validation * (1 - test_fraction if test_data is None else 1)] if validation_data is None \
        else []
    smallest = min(fractions)
    needed = smallest_class_needed(smallest)
    if len(data.texts) < needed:
        raise UserError(f"{len(data.texts)} rows are too few for a {smallest:.0%} split that gets at least one row; "
                        f"add rows (at least {needed})")
    bins = targets.quantile_bins(data.labels, max(1, min(REGRESSION_BINS, int(len(data.texts) * smallest))))
    everything = np.arange(len(data.texts))
    train_indices, validation_indices, test_indices = everything, None, None
    if test_data is None:
        train_indices, test_indices = stratified_split(bins, everything, fraction=test_fraction, seed=seed)
    if validation_data is None:
        train_indices, validation_indices = stratified_split(bins, train_indices, fraction=relative_validation, seed=seed)
    return Splits(
        train=data.with_rows(train_indices, dropped_rows=data.dropped_rows),
        validation=validation_data or data.with_rows(validation_indices, dropped_rows=0),  # type: ignore[arg-type]
        test=test_data or data.with_rows(test_indices, dropped_rows=0),  # type: ignore[arg-type]
    )


def multi_label_splits(
    data: LabeledTexts, *, seed: int, validation_fraction: float, test_fraction: float,
    test_data: LabeledTexts | None, validation_data: LabeledTexts | None,
) -> Splits:
    """split_labeled_texts for several labels per text: the same fractions, each label's positives shared out as
    the rows are (iterative stratification, seeded); a label with too few positives to reach every split is named
    in one warning. Given validation or test data are used as they are, as for one label per text."""
    validation = None if validation_data is None else align_labels(validation_data, data.label_names,
                                                                    source="the validation data")
    test = None if test_data is None else align_labels(test_data, data.label_names)
    split_names = ["train"] + (["validation"] if validation is None else []) + (["test"] if test is None else [])
    if len(split_names) == 1:
        return Splits(train=data, validation=validation, test=test)  # type: ignore[arg-type]
    wanted = {"validation": validation_fraction, "test": test_fraction}
    if test is not None:  # the validation set keeps its ratio to the training set, as split_labeled_texts keeps it
        wanted["validation"] = validation_fraction / (1 - test_fraction)
    fractions = [1 - sum(wanted[name] for name in split_names[1:])] + [wanted[name] for name in split_names[1:]]
    if len(data.texts) < len(split_names):
        raise UserError(f"{len(data.texts)} rows are too few to split into {', '.join(split_names)}; add rows")
    assignment = targets.iterative_split(data.labels, fractions, seed=seed)
    if any(not (assignment == index).any() for index in range(len(split_names))):
        raise UserError(f"{len(data.texts)} rows are too few for a {', '.join(f'{fraction:.0%}' for fraction in fractions)} "
                        f"split into {', '.join(split_names)}: one would be empty; add rows")
    missing = targets.labels_missing_from_splits(data.labels, assignment, data.label_names, split_names)
    if missing:
        logger.warning("label %s: too few positives to appear in every split; scores that need them leave %s out "
                       "there (add texts with %s)", "; ".join(missing), "it" if len(missing) == 1 else "them",
                       "it" if len(missing) == 1 else "them")
    parts = {name: data.with_rows(np.flatnonzero(assignment == index), dropped_rows=0)
             for index, name in enumerate(split_names)}
    parts["train"] = replace(parts["train"], dropped_rows=data.dropped_rows)
    return Splits(train=parts["train"], validation=validation or parts["validation"], test=test or parts["test"])


def compute_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """scikit-learn's balanced weights n / (K * count_k), so each class contributes equally to the loss."""
    from sklearn.utils.class_weight import compute_class_weight  # imported here: bad input fails before it loads

    absent = sorted(set(range(num_classes)) - set(np.unique(labels).tolist()))
    if absent:
        raise ValueError(f"class {absent[0]} has no rows; weights are only defined for present classes")
    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=labels)
    return {class_id: float(weight) for class_id, weight in enumerate(weights)}
