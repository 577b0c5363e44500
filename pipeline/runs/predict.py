"""The `predict` command: label new texts with an exported model or straight from a run folder.

Texts come from the command line or from a table (any format `pipeline.data.tables` reads); results are
printed as aligned lines, or written as a CSV/TSV/JSONL table with one probability column per class (several labels
per text: per label, and a column of the labels predicted).
Everything the user can get wrong is checked before TensorFlow starts.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.base.errors import UserError
from pipeline.base.files import check_creatable, require_folder, write_bytes_atomic
from pipeline.base.progress_bars import redraw_interval
from pipeline.data.targets import Target
from pipeline.runs.exported_model import EXPORT_INFO_FILE, ExportedModel, looks_like_exported_model
from pipeline.runs.run_folder import looks_like_run_folder, read_run_folder

log = logging.getLogger(__name__)

MODEL_HINT = "pass a folder made by `python -m pipeline export --run RUN --output DIR`, or a run folder"
OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
PRINTED_TEXT_WIDTH = 70
LABELS_JOINED_BY = ","  # a text's predicted labels in one table cell (JSONL keeps them a list)
NO_LABEL = "(none)"  # printed for a text that has none of the labels


@dataclass
class Predictions:
    """Class probabilities for texts, in the order given; column k is `label_names[k]`. With several labels per text
    (`target.multi_label`), column k is label k's own probability, and a text has the labels whose probability
    reaches their threshold (`predicted_labels`)."""

    texts: list[str]
    probabilities: np.ndarray  # float32 [N, K]
    target: Target

    @property
    def label_names(self) -> list[str]:
        return list(self.target.names)

    @property
    def predicted_labels(self) -> list[list[str]]:
        return self.target.predicted_names(self.probabilities)

    @property
    def label_ids(self) -> np.ndarray:
        return np.argmax(self.probabilities, axis=1) if len(self.texts) else np.zeros(0, np.int64)

    @property
    def labels(self) -> list[str]:
        return [self.label_names[index] for index in self.label_ids]

    @property
    def best_probabilities(self) -> np.ndarray:
        return self.probabilities[np.arange(len(self.texts)), self.label_ids]


# ============================================================================ models


def model_kind(model_dir: str | os.PathLike[str]) -> str:
    """"exported" or "run", from the folder's files alone (no TensorFlow); UserError for anything else."""
    model_dir = Path(model_dir)
    require_folder(model_dir, "--model", MODEL_HINT)
    if looks_like_exported_model(model_dir):
        return "exported"
    if looks_like_run_folder(model_dir):
        read_run_folder(model_dir)  # says what a run folder lacks
        return "run"
    raise UserError(f"{model_dir} is neither an exported model (no saved_model.pb with {EXPORT_INFO_FILE}) "
                    f"nor a run folder; {MODEL_HINT}")


class RunFolderModel:
    """A run folder's encoder and head, through the pipeline's own code (FullTokenizer, encode_texts)."""

    chunk_size = 128  # texts per encode_texts call (one progress step); its graph is traced once per model

    def __init__(self, run_dir: Path):
        from pipeline.runs.run_model import load_run_model

        self._run_model = load_run_model(read_run_folder(run_dir))
        self.label_names = self._run_model.label_names
        self.target = self._run_model.run.target

    def predict(self, texts: list[str]) -> np.ndarray:
        return self._run_model.predict(texts)


Model = ExportedModel | RunFolderModel


def load_model(model_dir: str | os.PathLike[str], *, verbose: bool = False) -> Model:
    """An ExportedModel or a RunFolderModel; starts TensorFlow (quietly) if it has not started."""
    kind = model_kind(model_dir)
    from pipeline.base.devices import start_tensorflow

    start_tensorflow(verbose=verbose)
    return ExportedModel(Path(model_dir)) if kind == "exported" else RunFolderModel(Path(model_dir))


def predict_texts(model: Model, texts: list[str], *, show_progress: bool = True) -> Predictions:
    """Probabilities for every text, batched by similar length (less padding), in the order given."""
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    probabilities = np.zeros((len(texts), len(model.label_names)), np.float32)
    with tqdm(total=len(texts), unit="text", desc="predict", disable=not show_progress,
              mininterval=redraw_interval()) as progress:
        for start in range(0, len(order), model.chunk_size):
            rows = order[start : start + model.chunk_size]
            probabilities[rows] = model.predict([texts[row] for row in rows])
            progress.update(len(rows))
    return Predictions(texts=list(texts), probabilities=probabilities, target=model.target)


# ============================================================================ input and output


def read_input_texts(path: str | os.PathLike[str], text_column: str = "text") -> list[str]:
    """The text column of a table, one text per row (a blank cell is an empty text, so rows stay aligned)."""
    from pipeline.data.tables import column_to_text, describe_columns, read_table

    path = Path(path)
    if not path.exists():
        raise UserError(f"input file not found: {path}; check the path given with --input")
    if path.is_dir():
        raise UserError(f"--input {path} is a folder; pass a table file (CSV, TSV, JSONL or Parquet)")
    frame = read_table(path)
    if text_column not in frame.columns:
        raise UserError(f"text column {text_column!r} not found in {path}; columns found: "
                        f"{describe_columns(frame)}; pass --text-column NAME")
    return [text or "" for text in column_to_text(frame[text_column])]


def output_format(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise UserError(f"cannot tell the format of --output {path} from its extension; use .csv, .tsv or .jsonl")
    return OUTPUT_FORMATS[suffix]


def probability_column(label_name: str) -> str:
    return f"probability_{label_name}"


def prediction_rows(predictions: Predictions) -> list[dict[str, Any]]:
    """One record per text: text, label, probability (of that label), probability_<class> for each class; with
    several labels per text: text, labels (those predicted, a list), probability_<label> for each label; for a
    number: text, prediction."""
    if predictions.target.regression:
        return [{"text": text, "prediction": float(row[0])}
                for text, row in zip(predictions.texts, predictions.probabilities)]
    if predictions.target.multi_label:
        return [{"text": text, "labels": labels,
                 **{probability_column(name): float(value) for name, value in zip(predictions.label_names, row)}}
                for text, labels, row in zip(predictions.texts, predictions.predicted_labels, predictions.probabilities)]
    rows = []
    for text, label, best, row in zip(predictions.texts, predictions.labels,
                                      predictions.best_probabilities, predictions.probabilities):
        record: dict[str, str | float] = {"text": text, "label": label, "probability": float(best)}
        record.update({probability_column(name): float(value) for name, value in zip(predictions.label_names, row)})
        rows.append(record)
    return rows


def write_predictions(predictions: Predictions, path: str | os.PathLike[str]) -> Path:
    """CSV, TSV or JSONL by extension, written atomically (a reader never sees half a file)."""
    import pandas as pd

    path = Path(path)
    kind = output_format(path)
    if predictions.target.regression:
        columns = ["text", "prediction"]
    else:
        leading = ["text", "labels"] if predictions.target.multi_label else ["text", "label", "probability"]
        columns = leading + [probability_column(name) for name in predictions.label_names]
    if kind == "jsonl":
        payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in prediction_rows(predictions))
    else:
        rows = prediction_rows(predictions)
        for row in rows if predictions.target.multi_label else ():  # a table cell: the labels joined
            row["labels"] = LABELS_JOINED_BY.join(row["labels"])
        frame = pd.DataFrame(rows, columns=columns)
        payload = frame.to_csv(index=False, sep="," if kind == "csv" else "\t", lineterminator="\n")
    write_bytes_atomic(path, payload.encode("utf-8"))
    return path


def format_predictions(predictions: Predictions) -> str:
    """One aligned line per text: label, probability of that label, the text (shortened to fit a line); with several
    labels per text, the labels predicted (or "(none)") and the text."""
    if predictions.target.regression:
        shown_values = [f"{value:.4g}" for value in predictions.probabilities[:, 0]]
        width = max((len(value) for value in shown_values), default=0)
        return "\n".join(f"{value.rjust(width)}  {_shortened(text)}" for value, text in zip(shown_values, predictions.texts))
    if predictions.target.multi_label:
        shown_labels = [LABELS_JOINED_BY.join(labels) or NO_LABEL for labels in predictions.predicted_labels]
        width = max(len(labels) for labels in shown_labels) if shown_labels else 0
        return "\n".join(f"{labels.ljust(width)}  {_shortened(text)}"
                         for labels, text in zip(shown_labels, predictions.texts))
    width = max((len(label) for label in predictions.label_names), default=5)
    lines = []
    for text, label, probability in zip(predictions.texts, predictions.labels, predictions.best_probabilities):
        lines.append(f"{label.ljust(width)}  {probability:.4f}  {_shortened(text)}")
    return "\n".join(lines)


def _shortened(text: str) -> str:
    shown = " ".join(text.split())
    return shown if len(shown) <= PRINTED_TEXT_WIDTH else shown[: PRINTED_TEXT_WIDTH - 3] + "..."


# ============================================================================ the command


def predict_command(
    model_dir: str,
    texts: list[str],
    *,
    input_path: str | None = None,
    output_path: str | None = None,
    text_column: str = "text",
    show_progress: bool = True,
    verbose: bool = False,
) -> str:
    """What `python -m pipeline predict` does; returns what to print (the lines, or where the table went)."""
    if texts and input_path:
        raise UserError("give texts on the command line or --input FILE, not both")
    if output_path:
        output_format(output_path)
        check_creatable(Path(output_path).parent, "--output")
    model_kind(model_dir)
    if input_path:
        texts = read_input_texts(input_path, text_column)
    if not texts:
        raise UserError('no texts given; pass texts as arguments (predict --model DIR "some text") or --input FILE')
    model = load_model(model_dir, verbose=verbose)
    predictions = predict_texts(model, list(texts), show_progress=show_progress)
    if output_path:
        written = write_predictions(predictions, output_path)
        return f"Wrote {len(predictions.texts)} predictions to {written}"
    return format_predictions(predictions)
