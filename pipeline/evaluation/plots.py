"""Curves and pictures of a classifier's or a regressor's results, for TensorBoard's images and for the notebooks
alike.

The `*_points`, `confusion_table` and `prediction_errors` functions compute; the `draw_*` functions take a
matplotlib `Axes` and draw on it, never creating figures or touching pyplot's global state, so the same code
serves a notebook cell and a PNG rendered during a run (`render_png`). No TensorFlow here.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

IMAGE_DPI = 80
MAX_RESIDUAL_BINS = 60
Curves = dict[str, tuple[np.ndarray, np.ndarray]]


# ============================================================================ what the pictures show

def _one_vs_rest(labels: np.ndarray, probabilities: np.ndarray,
                 label_names: Sequence[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, is_class, score) per curve. Class ids (1-D `labels`): the positive (last) class for two classes, every
    class otherwise; a 0/1 indicator matrix (2-D, several labels per text): every label, its column against its own."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    if labels.ndim == 2:
        return [(name, labels[:, k].astype(bool), probabilities[:, k]) for k, name in enumerate(label_names)]
    classes = [len(label_names) - 1] if len(label_names) == 2 else range(len(label_names))
    return [(label_names[k], labels == k, probabilities[:, k]) for k in classes]


def roc_points(labels: np.ndarray, probabilities: np.ndarray, label_names: Sequence[str]) -> Curves:
    """{class or label: (false positive rate, true positive rate)}; `labels` holds class ids or a 0/1 indicator
    matrix (several labels per text). Classes absent from `labels` are left out."""
    curves = {}
    for name, is_class, score in _one_vs_rest(labels, probabilities, label_names):
        if 0 < is_class.sum() < len(is_class):
            false_positive_rate, true_positive_rate, _ = roc_curve(is_class, score)
            curves[name] = (false_positive_rate, true_positive_rate)
    return curves


def pr_points(labels: np.ndarray, probabilities: np.ndarray, label_names: Sequence[str]) -> Curves:
    """{class or label: (recall, precision)}; `labels` as for `roc_points`. Classes absent from `labels` are left
    out."""
    curves = {}
    for name, is_class, score in _one_vs_rest(labels, probabilities, label_names):
        if is_class.any():
            precision, recall, _ = precision_recall_curve(is_class, score)
            curves[name] = (recall, precision)
    return curves


def confusion_table(labels: np.ndarray, probabilities: np.ndarray, label_names: Sequence[str]) -> pd.DataFrame:
    """Counts with true classes as rows and predicted classes as columns."""
    matrix = confusion_matrix(labels, np.asarray(probabilities).argmax(axis=1), labels=list(range(len(label_names))))
    return pd.DataFrame(matrix, index=pd.Index(label_names, name="true"), columns=pd.Index(label_names, name="predicted"))


def prediction_errors(targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """A regression's residuals, prediction - target per row (a [rows, 1] column of predictions is read as [rows])."""
    return np.asarray(predictions, dtype=np.float64).reshape(-1) - np.asarray(targets, dtype=np.float64).reshape(-1)


def sample_rows(total: int, max_rows: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded random sample of at most `max_rows` of `total` rows."""
    if total <= max_rows:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=max_rows, replace=False))


# ============================================================================ drawing (on a given Axes)

def draw_roc(ax: Any, curves: Curves, *, title: str = "ROC curve (test)") -> None:
    for name, (false_positive_rate, true_positive_rate) in curves.items():
        ax.plot(false_positive_rate, true_positive_rate, label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")


def draw_pr(ax: Any, curves: Curves, *, title: str = "Precision-recall curve (test)") -> None:
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=name)
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left")


def draw_confusion(ax: Any, table: pd.DataFrame, *, title: str = "Confusion matrix (test)") -> None:
    values = table.to_numpy()
    ax.imshow(values, cmap="Blues")
    ticks = range(len(table.index))
    ax.set_xticks(ticks, labels=list(table.columns))
    ax.set_yticks(ticks, labels=list(table.index))
    ax.set(xlabel="predicted", ylabel="true", title=title)
    threshold = values.max() / 2 if values.size else 0
    for row in ticks:
        for column in ticks:
            ax.text(column, row, str(values[row, column]), ha="center", va="center",
                    color="white" if values[row, column] > threshold else "black")


def draw_predicted_vs_true(ax: Any, targets: np.ndarray, predictions: np.ndarray, *, name: str = "target",
                           title: str = "Predicted against true (test)") -> None:
    """A regression's predictions (y) against the true values (x), on equal ranges, with the line y = x that a
    perfect model's points would sit on."""
    targets = np.asarray(targets, dtype=np.float64).reshape(-1)
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    low, high = min(targets.min(), predictions.min()), max(targets.max(), predictions.max())
    margin = 0.05 * (high - low) or 0.5
    limits = (low - margin, high + margin)
    ax.scatter(targets, predictions, s=8, alpha=0.4, color="tab:blue", label="texts")
    ax.plot(limits, limits, linestyle=":", color="grey", label="y = x")
    ax.set(xlabel=f"true {name}", ylabel=f"predicted {name}", title=title, xlim=limits, ylim=limits)
    ax.set_aspect("equal")
    ax.legend(loc="upper left")


def draw_residuals(ax: Any, errors: np.ndarray, *, title: str = "Residuals (test)") -> None:
    """The histogram of a regression's residuals (prediction_errors), with zero and their mean marked."""
    errors = np.asarray(errors, dtype=np.float64)
    bins = min(len(np.histogram_bin_edges(errors, bins="auto")) - 1, MAX_RESIDUAL_BINS)  # long tails: not thousands
    ax.hist(errors, bins=bins, color="tab:blue")
    ax.axvline(0.0, color="grey", linestyle=":", label="no error")
    ax.axvline(float(errors.mean()), color="tab:red", linestyle="--", label=f"mean {errors.mean():.3g}")
    ax.set(xlabel="prediction - target", ylabel="texts", title=title)
    ax.legend()


def draw_training_curve(ax: Any, curves: pd.DataFrame, metric: str) -> None:
    """Train and validation values of one metric per epoch."""
    for column, label in ((metric, "train"), (f"val_{metric}", "validation")):
        if column in curves:
            ax.plot(curves.index, curves[column], marker="o", label=label)
    ax.set(xlabel="epoch", ylabel=metric, title=metric)
    ax.legend()


def draw_length_histogram(ax: Any, lengths: np.ndarray, max_seq_length: int) -> None:
    low, high = int(np.min(lengths)), int(np.max(lengths))
    # One bin per token count while that stays readable; uneven integer bins would draw a false comb.
    bins = np.arange(low, high + 2) - 0.5 if high - low <= 200 else 60
    ax.hist(lengths, bins=bins, color="tab:blue")
    ax.axvline(max_seq_length, color="tab:red", linestyle="--", label=f"max_seq_length = {max_seq_length}")
    ax.set(xlabel="WordPiece tokens per text (with [CLS] and [SEP])", ylabel="texts", title="Text length")
    ax.legend()


def draw_projection(ax: Any, points: np.ndarray, labels: np.ndarray, label_names: Sequence[str], *, title: str) -> None:
    labels = np.asarray(labels)
    for class_id, name in enumerate(label_names):
        chosen = labels == class_id
        ax.scatter(points[chosen, 0], points[chosen, 1], s=4, alpha=0.6, label=name)
    ax.set(title=title, xticks=[], yticks=[])
    ax.legend(markerscale=3)


# ============================================================================ rendering

def render_png(draw: Callable[..., None], *arguments: Any, size: tuple[float, float] = (5, 4.2)) -> bytes:
    """Draws on a fresh Figure (no pyplot, so no global state or GUI backend) and returns it as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=IMAGE_DPI)
    FigureCanvasAgg(figure)
    draw(figure.add_subplot(), *arguments)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
