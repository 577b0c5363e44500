"""What is predicted: the target's description (`Target`); for numbers, the targets read from a column and their
quantile bins; for several labels per text, label indicator matrices read from 0/1 columns or from one column of
joined label names, and the iterative stratification that keeps every label's share in each split (Sechidis,
Tsoumakas and Vlahavas, "On the Stratification of Multi-label Data", 2011).

A text may have any number of labels, none included; labels are kept in the order of their columns, or sorted
by name when read from a joined column. No TensorFlow here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from pipeline.base.errors import UserError

SINGLE_LABEL = "single-label"
MULTI_LABEL = "multi-label"
REGRESSION = "regression"
TRUE_WORDS = ("1", "true", "yes")
FALSE_WORDS = ("0", "false", "no", "")


@dataclass(frozen=True)
class Target:
    """What a run predicts: its kind, the names of its classes or labels in output order (a number: its column),
    (multi-label) each label's decision threshold once chosen on the validation split, and (regression) the
    training targets' mean and standard deviation (`scale`), the range predictions are kept in (`bounds`; None
    lets them leave the training range) and their whole values when they are few (`levels`, 1..5 for stars)."""

    kind: str
    names: tuple[str, ...]
    thresholds: tuple[float, ...] | None = field(default=None)
    scale: tuple[float, float] | None = field(default=None)
    bounds: tuple[float, float] | None = field(default=None)
    levels: tuple[float, ...] | None = field(default=None)

    def record(self) -> dict[str, Any]:
        """As the run folder records it (a number's scale, bounds and levels only for regression)."""
        record: dict[str, Any] = {"kind": self.kind, "names": list(self.names),
                                  "thresholds": None if self.thresholds is None else list(self.thresholds)}
        if self.kind == REGRESSION:
            record.update(scale=_listed(self.scale), bounds=_listed(self.bounds), levels=_listed(self.levels))
        return record

    @property
    def multi_label(self) -> bool:
        return self.kind == MULTI_LABEL

    @property
    def regression(self) -> bool:
        return self.kind == REGRESSION

    def with_thresholds(self, thresholds: Sequence[float] | np.ndarray) -> Target:
        return replace(self, thresholds=tuple(float(value) for value in thresholds))

    def predicted_names(self, probabilities: np.ndarray) -> list[list[str]]:
        """Each row's labels: those whose probability reaches the label's threshold (0.5 before one is chosen)."""
        thresholds = np.asarray(self.thresholds if self.thresholds is not None else [0.5] * len(self.names))
        return [[name for name, chosen in zip(self.names, row) if chosen] for row in probabilities >= thresholds]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Target:
        def numbers(key: str) -> tuple[float, ...] | None:
            values = record.get(key)
            return None if values is None else tuple(float(value) for value in values)

        return cls(kind=record["kind"], names=tuple(record["names"]), thresholds=numbers("thresholds"),
                   scale=numbers("scale"), bounds=numbers("bounds"), levels=numbers("levels"))  # type: ignore[arg-type]


def _listed(values: tuple[float, ...] | None) -> list[float] | None:
    return None if values is None else [float(value) for value in values]


MAX_WHOLE_VALUE_LEVELS = 10  # a number with at most this many distinct whole values (stars, grades) is also scored
# rounded to them


def whole_value_levels(targets: np.ndarray) -> np.ndarray | None:
    """The sorted distinct values of `targets` (float64) when there are 2 to MAX_WHOLE_VALUE_LEVELS of them and each
    is a whole number (4.0 counts, 3.5 does not); None otherwise. Called on the training split's targets."""
    values = np.asarray(targets, dtype=np.float64).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        return None
    levels = np.unique(values)
    if not 2 <= len(levels) <= MAX_WHOLE_VALUE_LEVELS or not np.array_equal(levels, np.round(levels)):
        return None
    return levels


def regression_target(name: str, training_values: np.ndarray, *, extrapolate: bool = False) -> Target:
    """The Target of a number, from the training split's values: their mean and standard deviation, their range
    (unless `extrapolate`), and their whole values when they are few (whole_value_levels)."""
    values = np.asarray(training_values, np.float64)
    levels = whole_value_levels(values)
    return Target(kind=REGRESSION, names=(name,), scale=(float(values.mean()), float(values.std()) or 1.0),
                  bounds=None if extrapolate else (float(values.min()), float(values.max())),
                  levels=None if levels is None else tuple(float(value) for value in levels))


def numbers_from_column(values: Sequence[Any], *, column: str, source: str,
                        row_numbers: Sequence[int] | None = None) -> np.ndarray:
    """float32 targets from a label column's cells (already without blanks); UserError naming the first row that
    is not a number (its number in `row_numbers`, else counted from 1), or a column with one value only."""
    numbers = np.empty(len(values), np.float32)
    for position, value in enumerate(values):
        row = row_numbers[position] if row_numbers is not None else position + 1
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not math.isfinite(number):
            raise UserError(f"label column {column!r} of {source} holds {value!r} in row {row}, not a number; "
                            f"--regression reads the label as a number: fix that cell, or drop --regression to "
                            f"read labels as classes")
        numbers[position] = number
    if len(numbers) and numbers.min() == numbers.max():
        raise UserError(f"label column {column!r} of {source} holds {numbers[0]:g} on every row; a regression needs "
                        f"targets that vary: check --label-column")
    return numbers


def quantile_bins(values: np.ndarray, bins: int, *, smallest: int = 2) -> np.ndarray:
    """Each value's bin (0, 1, ...) among at most `bins` equally filled ranges of the values, for a split stratified
    on a number: tied values share a bin, and a bin of fewer than `smallest` rows joins its smaller neighbour (a
    stratified split needs two rows of each)."""
    edges = list(np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])))
    while True:
        assignment = np.searchsorted(np.asarray(edges), values, side="right")
        counts = np.bincount(assignment, minlength=len(edges) + 1)
        if not edges or counts.min() >= smallest:
            return assignment
        small = int(np.argmin(counts))  # drop the edge between it and its smaller neighbour
        neighbours = [side for side in (small - 1, small + 1) if 0 <= side < len(counts)]
        joined = min(neighbours, key=lambda side: counts[side])
        del edges[min(small, joined)]


TABLE_FIX = "leave the column out of --label-columns"  # what a table's user does about a column that is not 0/1


def indicator(value: Any, *, column: str, row: int, source: str, fix: str = TABLE_FIX) -> int:
    """1 or 0 from a label column's cell: 1/0, true/false, yes/no (any case), a blank or missing cell is 0;
    otherwise a UserError naming the cell, and `fix` as the other way out."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 0
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer, float, np.floating)) and value in (0, 1):
        return int(value)
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return 1
    if text in FALSE_WORDS:
        return 0
    raise UserError(f"label column {column!r} of {source} holds {value!r} in row {row}; a label column holds 1 or 0 "
                    f"(true/false, yes/no; a blank is 0): fix that cell, or {fix}")


def indicators_from_columns(table: pd.DataFrame, columns: Sequence[str], *, source: str, first_row: int = 1,
                            fix: str = TABLE_FIX) -> np.ndarray:
    """int8 [rows, len(columns)] from 0/1 columns, in the columns' order; UserError naming a missing column or a bad
    cell (rows numbered from `first_row`; `fix`: the other way out than fixing the cell)."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise UserError(f"{source} has no column {', '.join(repr(column) for column in missing)} (its columns: "
                        f"{', '.join(map(str, table.columns))}); name label columns that exist in --label-columns")
    if len(set(columns)) != len(columns):
        raise UserError(f"--label-columns names a column twice ({', '.join(columns)}); name each label once")
    matrix = np.zeros((len(table), len(columns)), np.int8)
    for position, column in enumerate(columns):
        for row, value in enumerate(table[column].tolist()):
            matrix[row, position] = indicator(value, column=column, row=row + first_row, source=source, fix=fix)
    return matrix


def indicators_from_joined(values: Sequence[Any], separator: str, *, source: str,
                           names: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(label names, int8 indicator matrix) from one column of label names joined by `separator`; an empty cell is a
    text with no label. `names`: the training data's labels, for a test table (an unknown one is a UserError)."""
    if not separator:
        raise UserError("--label-separator is empty; pass the character that joins a text's labels, such as ','")
    rows: list[list[str]] = []
    for value in values:
        text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
        rows.append([part.strip() for part in text.split(separator) if part.strip()])
    if names is None and not any(separator in ("" if value is None else str(value)) for value in values):
        raise UserError(f"--label-separator {separator!r} occurs in no label cell of {source}; pass the character "
                        f"that joins a text's labels, or drop --label-separator for one label per text")
    return indicators_from_names(rows, names, source=source)


def indicators_from_names(rows: Sequence[Sequence[str]], names: Sequence[str] | None, *, source: str,
                          first_row: int = 1) -> tuple[list[str], np.ndarray]:
    """(label names, int8 indicator matrix) of each row's label names; the names sorted when not given (the
    training data's), else a name not among them is a UserError naming its row (numbered from `first_row`)."""
    names = list(names) if names is not None else sorted({name for row in rows for name in row})
    position = {name: index for index, name in enumerate(names)}
    matrix = np.zeros((len(rows), len(names)), np.int8)
    for row_number, row in enumerate(rows):
        for name in row:
            if name not in position:
                raise UserError(f"{source} has label {name!r} in row {row_number + first_row}, not among the training "
                                f"labels ({', '.join(names)}); use the same label names")
            matrix[row_number, position[name]] = 1
    return names, matrix


def require_positives(matrix: np.ndarray, names: Sequence[str], *, source: str) -> None:
    """Every label must be positive somewhere in the training data, or nothing can be learned of it."""
    never = [name for name, count in zip(names, matrix.sum(axis=0)) if count == 0]
    if never:
        raise UserError(f"label {', '.join(repr(name) for name in never)} is never positive in {source}; drop "
                        f"{'it' if len(never) == 1 else 'them'} from the labels, or add texts that have "
                        f"{'it' if len(never) == 1 else 'them'}")


def iterative_split(matrix: np.ndarray, fractions: Sequence[float], *, seed: int) -> np.ndarray:
    """The split (0 .. len(fractions)-1) of each row, every label's positives shared out as `fractions` are.

    Iterative stratification: the label with the fewest rows still to place goes first; each of its rows goes to
    the split that still wants the most of that label (ties: the most rows overall, then the seeded draw). Rows
    with no label are dealt last, to the splits that still want the most rows. Seeded and deterministic."""
    generator = np.random.default_rng(seed)
    rows, _ = matrix.shape
    wanted_rows = np.array([fraction * rows for fraction in fractions], dtype=np.float64)
    wanted_per_label = np.outer(np.asarray(fractions, np.float64), matrix.sum(axis=0).astype(np.float64))
    assignment = np.full(rows, -1, np.int64)
    remaining = matrix.astype(bool).copy()
    order = generator.permutation(rows)  # the seeded tie-break and row order
    remaining = remaining[order]
    while remaining.any():
        counts = remaining.sum(axis=0)
        label = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
        for position in np.flatnonzero(remaining[:, label]):
            row = order[position]
            candidates = np.flatnonzero(wanted_per_label[:, label] == wanted_per_label[:, label].max())
            if len(candidates) > 1:
                candidates = candidates[wanted_rows[candidates] == wanted_rows[candidates].max()]
            chosen = int(candidates[generator.integers(len(candidates))]) if len(candidates) > 1 else int(candidates[0])
            assignment[row] = chosen
            wanted_per_label[chosen] -= matrix[row]
            wanted_rows[chosen] -= 1
            remaining[position] = False
    for row in order:
        if assignment[row] < 0:
            chosen = int(np.argmax(wanted_rows))
            assignment[row] = chosen
            wanted_rows[chosen] -= 1
    return assignment


def labels_missing_from_splits(matrix: np.ndarray, assignment: np.ndarray, names: Sequence[str],
                               split_names: Sequence[str]) -> list[str]:
    """The labels with no positive in at least one split, each as 'name (absent from validation, test)'."""
    missing = []
    for index, name in enumerate(names):
        absent = [split_name for split, split_name in enumerate(split_names)
                  if not matrix[assignment == split, index].any()]
        if absent:
            missing.append(f"{name} (absent from {', '.join(absent)})")
    return missing


def balanced_label_weights(matrix: np.ndarray) -> dict[int, tuple[float, float]]:
    """{label: (weight of its negatives, weight of its positives)}: scikit-learn's balanced weights n / (2 * count)
    for each label's own two classes, so a rare label's few positives count as much as its many negatives."""
    rows = len(matrix)
    weights = {}
    for label, positives in enumerate(matrix.sum(axis=0).tolist()):
        negatives = rows - positives
        weights[label] = (rows / (2 * negatives) if negatives else 1.0, rows / (2 * positives) if positives else 1.0)
    return weights
