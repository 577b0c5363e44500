"""What notebook users hold, checked once at the API's door: texts, labels and option values.

Texts and labels come as a list, a tuple, a pandas Series (a DataFrame column), a one-column DataFrame or a
one-dimensional NumPy array. Every text must be a string: the API keeps the caller's rows aligned with its
outputs, so unlike a table read from a file it drops nothing, and a missing, blank or non-string text is one
UserError naming its row. Texts are stripped of surrounding blanks as a table's cells are, so the same texts
give the same feature cache entry from Python and from the command line. Labels are read as a table's are
(`pipeline.data.tables.labeled_texts_from_values`), and errors carry the messages the command line prints.
No TensorFlow and no scikit-learn here.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from pipeline.base.config import AUTO, RunConfig, api_parameters, check_layers, flag_of, option_types, validate
from pipeline.base.errors import UserError
from pipeline.data.tables import LabeledTexts, describe_columns, labeled_texts_from_values
from pipeline.data.targets import (
    MULTI_LABEL,
    REGRESSION,
    indicators_from_columns,
    indicators_from_names,
    numbers_from_column,
    require_positives,
)

ACCEPTED = "a list of strings, a pandas Series (a DataFrame column) or a one-dimensional NumPy array"
SHOWN_CHARACTERS = 60


class InvalidInput(UserError, ValueError):
    """Bad input or options given to the Python API: a UserError (its message is the command line's `error:`
    line for the same mistake) and a ValueError (what scikit-learn and Python code expect to catch)."""


@contextmanager
def invalid_input_errors() -> Iterator[None]:
    """Re-raises the pipeline's UserErrors (bad data, options, folders) as InvalidInput, with the same message."""
    try:
        yield
    except InvalidInput:
        raise
    except UserError as error:
        raise InvalidInput(str(error)) from None


def rows_of(values: Any, *, source: str) -> list[Any]:
    """The values of a list, tuple, Series, one-column DataFrame or 1-D array, as Python objects in order."""
    if isinstance(values, (str, bytes)):
        raise InvalidInput(f"{source} is one {type(values).__name__} ({shortened(values)}), not a list of texts; "
                           f"pass {ACCEPTED}")
    if type(values).__module__.startswith("scipy.sparse"):
        raise InvalidInput(f"{source} is a sparse matrix ({type(values).__name__}), not texts; pass {ACCEPTED}")
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise InvalidInput(f"{source} is a DataFrame with {values.shape[1]} columns ({describe_columns(values)}); "
                               f"pass one column, such as frame['text']")
        values = values.iloc[:, 0]
    if isinstance(values, np.ndarray):
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise InvalidInput(f"{source} is an array of shape {values.shape}; pass {ACCEPTED}")
        return values.tolist()
    if isinstance(values, (pd.Series, pd.Index, pd.Categorical)):
        return list(values)
    if isinstance(values, Mapping) or not hasattr(values, "__iter__"):
        raise InvalidInput(f"{source} is a {type(values).__name__}; pass {ACCEPTED}")
    return list(values)


def is_missing(value: Any) -> bool:
    """None, NaN, pandas' NA and NaT: what a table reader would call an empty cell."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def shortened(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= SHOWN_CHARACTERS else shown[: SHOWN_CHARACTERS - 3] + "..."


def texts_from(values: Any, *, source: str, labelled: bool = False) -> list[str]:
    """The texts as stripped strings, in order; InvalidInput naming the first row that is not a text."""
    rows = rows_of(values, source=source)
    if not rows:
        wanted = "row of text and label" if labelled else "text"
        raise InvalidInput(f"{source} has no data rows; add at least one {wanted}")
    texts = []
    for row, value in enumerate(rows):
        if is_missing(value):
            raise InvalidInput(f"text {row} of {source} is missing ({value!r}); give every row a text, "
                               f"or drop the rows without one")
        if not isinstance(value, str):
            raise InvalidInput(f"text {row} of {source} is a {type(value).__name__} ({shortened(value)}), not a string; "
                               f"pass the texts as strings (for example frame['column'].astype(str))")
        text = value.strip()
        if not text:
            raise InvalidInput(f"text {row} of {source} is blank; give every row a text, or drop the rows without one")
        texts.append(text)
    return texts


def label_order(values: Any) -> list[Any] | None:
    """The categories of categorical labels, in their order (it fixes the classes' order, as a preset's does)."""
    if isinstance(values, pd.Categorical):
        return list(values.categories)
    if isinstance(values, (pd.Series, pd.DataFrame)):
        column = values.iloc[:, 0] if isinstance(values, pd.DataFrame) and values.shape[1] == 1 else values
        if isinstance(column, pd.Series) and isinstance(column.dtype, pd.CategoricalDtype):
            return list(column.cat.categories)
    return None


LABEL_COLLECTIONS = (list, tuple, set, frozenset)  # one text's labels, when it may have several


def is_multi_label(labels: Any) -> bool:
    """Whether `labels` give several labels per text, as scikit-learn's multi-label estimators take them: a 2-D 0/1
    array or DataFrame with more than one column, or a sequence of label collections (lists, tuples or sets)."""
    if isinstance(labels, (np.ndarray, pd.DataFrame)):
        return labels.ndim == 2 and labels.shape[1] > 1
    if isinstance(labels, (str, bytes, Mapping)) or not isinstance(labels, (Sequence, pd.Series)):
        return False
    return any(isinstance(row, LABEL_COLLECTIONS) for row in labels)  # then each must be one (label_indicators)


def label_indicators(labels: Any, *, source: str, label_names: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(label names, int8 [N, L] indicator matrix) of several labels per text: a 2-D array's columns are named
    0..L-1, a DataFrame's by its columns, label collections' labels sorted (MultiLabelBinarizer's order).
    `label_names`: the training labels, which validation or test labels must be given in."""
    if isinstance(labels, (np.ndarray, pd.DataFrame)):
        frame = pd.DataFrame(labels)
        names = [str(name) for name in frame.columns]
        frame.columns = names
        if label_names is not None and names != list(label_names):
            raise InvalidInput(f"{source} has label columns {', '.join(names)}, the training data "
                               f"{', '.join(label_names)}; give the same labels in the same order")
        with invalid_input_errors():
            return names, indicators_from_columns(frame, names, source=source, first_row=0,
                                                  fix="drop that column from the labels")
    given = list(labels)
    rows = [sorted(str(name) for name in row) if isinstance(row, LABEL_COLLECTIONS) else None for row in given]
    if None in rows:
        row_number = rows.index(None)
        raise InvalidInput(f"label {row_number} of {source} is a {type(given[row_number]).__name__}, not a "
                           f"collection of labels; give every text a list, tuple or set of its labels")
    with invalid_input_errors():
        return indicators_from_names([row for row in rows if row is not None], label_names, source=source, first_row=0)


def multi_label_texts(texts: list[str], labels: Any, *, source: str,
                      label_names: Sequence[str] | None = None) -> LabeledTexts:
    """Checked texts with several labels each (see label_indicators); every training label positive somewhere."""
    names, matrix = label_indicators(labels, source=source, label_names=label_names)
    if len(matrix) != len(texts):
        raise InvalidInput(f"{source} has {len(texts)} texts but {len(matrix)} rows of labels; pass one row per text")
    if len(names) < 2:
        raise InvalidInput(f"{source} has {len(names)} label; several labels per text need two or more (for one "
                           f"label, pass a 1-D sequence of classes)")
    if label_names is None:
        with invalid_input_errors():
            require_positives(matrix, names, source=source)
    return LabeledTexts(texts=texts, labels=matrix, label_names=names, kind=MULTI_LABEL)


def labeled_texts(texts: Any, labels: Any, *, source: str, label_names: Sequence[str] | None = None,
                  multi_label: bool | None = None) -> LabeledTexts:
    """Checked texts with class ids, the classes ordered as a table's are (or as `label_names` fixes them); with
    several labels per text (`multi_label`, else told from `labels`), an indicator matrix (multi_label_texts)."""
    checked = texts_from(texts, source=source, labelled=True)
    if multi_label if multi_label is not None else is_multi_label(labels):
        return multi_label_texts(checked, labels, source=source, label_names=label_names)
    label_values = rows_of(labels, source=f"the labels of {source}")
    with invalid_input_errors():
        return labeled_texts_from_values(checked, label_values, source=source, label_names=label_names,
                                         label_order=label_order(labels))


def numeric_texts(texts: Any, targets: Any, *, source: str, name: str | None = None) -> LabeledTexts:
    """Checked texts with a number each (a regression's targets): InvalidInput naming the first target that is not
    a finite number, or targets that never vary. `name`: what the target is called (a Series' name, else
    "target")."""
    checked = texts_from(texts, source=source, labelled=True)
    values = rows_of(targets, source=f"the targets of {source}")
    if len(values) != len(checked):
        raise InvalidInput(f"{source} has {len(checked)} texts but {len(values)} targets; pass one number per text")
    column = name or (str(targets.name) if isinstance(targets, pd.Series) and targets.name is not None else "target")
    for row, value in enumerate(values):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise InvalidInput(f"target {row} of {source} is {shortened(value)}, not a number; pass numbers "
                               f"(for classes, use TextClassifier)")
    with invalid_input_errors():
        numbers_array = numbers_from_column(values, column=column, source=source,
                                            row_numbers=list(range(len(values))))
    return LabeledTexts(texts=checked, labels=numbers_array, label_names=[column], kind=REGRESSION)


def label_texts(values: Any, *, source: str) -> list[str]:
    """Labels read as a table's label cells are (1.0 is "1"), for comparing them with the classes' names."""
    from pipeline.data.tables import value_to_text

    texts = []
    for row, value in enumerate(rows_of(values, source=source)):
        text = value_to_text(value)
        if text is None:
            raise InvalidInput(f"label {row} of {source} is missing ({value!r}); give every text a label")
        texts.append(text)
    return texts


# ============================================================================ options


def store_parameters(estimator: Any, parameters: Mapping[str, Any]) -> None:
    """What an estimator's constructor does with its arguments (`locals()`), as scikit-learn asks: each stored
    unchanged under its own name; `settings_from` reads and checks them when they are used."""
    for name, value in parameters.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


def settings_from(estimator: Any, stages: tuple[str, ...], **fixed: Any) -> RunConfig:
    """The settings object for an estimator's parameters: each option of `stages` (pipeline.base.config.RunConfig
    declares them, and which parameter names them) read from the estimator's attribute of that name, converted from
    what Python code holds (NumPy integers, Paths, lists of layer indices) as the option's type asks, then checked by
    the command line's own checks and messages. `fixed`: options the API sets itself (the data)."""
    values = dict(fixed)
    for parameter, declared in api_parameters(stages).items():
        values[declared.name] = _option_value(declared, getattr(estimator, parameter))
    config = RunConfig(**values)
    with invalid_input_errors():
        validate(config)
    return config


def _option_value(declared: dataclasses.Field[Any], value: Any) -> Any:
    """One parameter's value as the option's declared type: InvalidInput naming the flag when it is not one."""
    flag, metadata = flag_of(declared.name), declared.metadata
    annotation = option_types()[declared.name]
    optional = type(None) in typing.get_args(annotation)
    if value is None and not optional and metadata["choices"] is not None:
        raise InvalidInput(f"{flag} None is unknown; choose one of {', '.join(metadata['choices'])}")
    if not value and annotation is str and metadata["choices"] is None:  # the encoder: None or "" is its default
        return declared.default
    if annotation is bool:
        return bool(value)
    if value is None:
        if annotation is int:
            raise InvalidInput(f"{flag} must be {_whole_number_kind(declared)}, got None")
        return None
    if metadata["path"]:
        return str(value)
    if metadata["check"] is check_layers:
        return _layers_value(value)
    if metadata["auto"] and value == AUTO:
        return AUTO
    kinds = set(typing.get_args(annotation)) or {annotation}
    if int in kinds:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InvalidInput(f"{flag} must be {_whole_number_kind(declared)}, got {value!r}")
        return int(value)
    if float in kinds:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidInput(f"{flag} must be a number, got {value!r}")
        return float(value)
    if str in kinds:
        if not isinstance(value, str):
            raise InvalidInput(f"{flag} must be a string, got {value!r}")
        return value
    return _widths_value(flag, value)  # tuple[int, ...]


def _whole_number_kind(declared: dataclasses.Field[Any]) -> str:
    return "a positive whole number" if declared.metadata["rule"] is not None or declared.default is None \
        else "a whole number"


def _layers_value(value: Any) -> str:
    """Layers as the command line takes them: last, all, last4, "0,2,-1", or a sequence of layer indices."""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (list, tuple)) and value and all(isinstance(index, numbers.Integral) and not isinstance(index, bool)
                                                         for index in value):
        return ",".join(str(int(index)) for index in value)
    raise InvalidInput(f"--layers {value!r} is not a layer choice; pass last, all, last4, or indices such as 0,2,-1")


def _widths_value(flag: str, value: Any) -> tuple[int, ...]:
    """Widths of hidden layers: one number or a sequence of them."""
    widths = (value,) if isinstance(value, numbers.Integral) else value
    if isinstance(widths, (list, tuple)) and all(isinstance(width, numbers.Integral) and not isinstance(width, bool)
                                                 for width in widths):
        return tuple(int(width) for width in widths)
    raise InvalidInput(f"{flag} must be positive widths such as 50,30,30, got {value!r}")
