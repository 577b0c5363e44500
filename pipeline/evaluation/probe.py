"""The logistic-regression probe: the simple baseline the head must beat, on the very same features.

Its fit (L-BFGS on a few thousand standardised 2,304-wide vectors) costs about as many CPU seconds as the
heads' training, and gives the same numbers every time for the same arrays and options, so its test
metrics are kept in the feature cache entry the arrays came from (`cached_baseline`), under a digest of the
very arrays and options: a second run on the same split reads them in milliseconds; another split or seed
fits anew, and removing the entry removes them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.base.files import write_bytes_atomic, write_json_atomic
from pipeline.evaluation.metrics import classification_metrics
from pipeline.evaluation.multi_label import best_thresholds, multi_label_metrics

log = logging.getLogger(__name__)

PROBE_DESCRIPTION = "standardised features + logistic regression"
PROBE_C = 1.0
MAX_ITERATIONS = 2000
PROBES_DIR = "probes"  # inside a feature cache entry; the entry's own files are those its manifest lists


def logistic_regression_baseline(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    *,
    num_classes: int,
    seed: int,
    class_weight: dict[int, float] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Test metrics and probabilities of standardised features -> logistic regression fitted on train."""
    probe = make_pipeline(
        StandardScaler(),
        LogisticRegression(max_iter=MAX_ITERATIONS, C=PROBE_C, random_state=seed, class_weight=class_weight),
    )
    probe.fit(train_features, train_labels)
    probabilities = probe.predict_proba(test_features)
    return classification_metrics(test_labels, probabilities, num_classes), probabilities


def one_vs_rest_baseline(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    val_features: np.ndarray,
    val_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    *,
    label_names: list[str],
    seed: int,
    label_weights: dict[int, Any] | None = None,
) -> dict[str, Any]:
    """The probe with several labels per text: one logistic regression per label on the standardised features
    (one-vs-rest), each label's threshold chosen for F1 on the validation split as the head's are; its test
    metrics. `label_weights`: {label: (negative weight, positive weight)}. A label with one value in the training
    split is predicted at its training frequency."""
    scaler = StandardScaler().fit(train_features)
    coefficients, intercepts = one_vs_rest_parameters(scaler.transform(train_features), train_labels, C=PROBE_C,
                                                      seed=seed, label_weights=label_weights)

    def probabilities(features: np.ndarray) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-(scaler.transform(features) @ coefficients.T + intercepts)))).astype(np.float32)

    thresholds = best_thresholds(val_labels, probabilities(val_features))
    return multi_label_metrics(test_labels, probabilities(test_features), thresholds, label_names)


def one_vs_rest_parameters(standardised: np.ndarray, indicators: np.ndarray, *, C: float, seed: int,
                           label_weights: dict[int, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients [L, D], intercepts [L]) of one logistic regression per label on standardised features. A label
    with one value in these rows gets zero coefficients and the intercept of its constant probability (clipped)."""
    coefficients = np.zeros((indicators.shape[1], standardised.shape[1]))
    intercepts = np.zeros(indicators.shape[1])
    for label in range(indicators.shape[1]):
        column = indicators[:, label]
        if column.min() == column.max():
            probability = float(np.clip(column[0], 1e-6, 1 - 1e-6))
            intercepts[label] = np.log(probability / (1 - probability))
            continue
        weights = None if label_weights is None else dict(enumerate(label_weights[label]))
        model = LogisticRegression(max_iter=MAX_ITERATIONS, C=C, random_state=seed, class_weight=weights)
        model.fit(standardised, column)
        coefficients[label], intercepts[label] = model.coef_[0], model.intercept_[0]
    return coefficients, intercepts


def cached_baseline(
    entry_dir: Path | None,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    *,
    num_classes: int,
    seed: int,
    class_weight: dict[int, Any] | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    label_names: list[str] | None = None,
) -> tuple[dict[str, Any], bool]:
    """(the probe's test metrics, whether they were read from `entry_dir`): fitted and kept there when new.

    `entry_dir` is the feature cache entry the arrays were read from; without one the probe is always fitted.
    A record that cannot be read is fitted again and replaced; one that cannot be written only costs the next
    run the fit. Several labels per text (an indicator matrix `train_labels`): `validation` (features, labels)
    chooses the thresholds and `label_names` names the labels (one_vs_rest_baseline)."""
    arguments = (train_features, train_labels, test_features, test_labels)
    options: dict[str, Any] = {"num_classes": num_classes, "seed": seed, "C": PROBE_C,
                               "class_weight": _weights_record(class_weight)}
    digested: tuple[np.ndarray, ...] = arguments
    if train_labels.ndim == 2:  # several labels per text
        if validation is None or label_names is None:
            raise ValueError("several labels per text need the validation split and the label names")
        digested = (*arguments, *validation)
        options["labels"] = list(label_names)
    path = None if entry_dir is None else Path(entry_dir) / PROBES_DIR / f"{probe_digest(*digested, options=options)}.json"
    if path is not None and path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))["test"], True
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("the probe's cached result %s could not be read (%s); fitting the probe again", path, error)
    if validation is not None and label_names is not None and train_labels.ndim == 2:
        metrics = one_vs_rest_baseline(train_features, train_labels, validation[0], validation[1], test_features,
                                       test_labels, label_names=list(label_names), seed=seed, label_weights=class_weight)
    else:
        metrics, _ = logistic_regression_baseline(*arguments, num_classes=num_classes, seed=seed,
                                                  class_weight=class_weight)
    if path is not None:
        try:
            write_json_atomic(path, {"test": metrics, "model": PROBE_DESCRIPTION, "C": PROBE_C,
                                     "scikit_learn": sklearn.__version__})
        except Exception as error:  # a read-only or full cache: the run's result does not depend on this file
            log.warning("the probe's result could not be kept in %s (%s)", path.parent, error)
    return metrics, False


def fitted_probe(
    entry_dir: Path | None,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    *,
    C: float,
    seed: int,
    class_weight: dict[int, float] | None = None,
) -> tuple[tuple[np.ndarray, ...], bool]:
    """((mean, variance, coefficients, intercepts) of standardised features -> logistic regression at strength
    `C`, whether they were read from `entry_dir`): the sweep's probe trials, kept as cached_baseline keeps the
    run's probe (an .npz of plain arrays)."""
    options = {"seed": seed, "C": C, "class_weight": _weights_record(class_weight), "parameters": True}
    path = None if entry_dir is None else \
        Path(entry_dir) / PROBES_DIR / f"{probe_digest(train_features, train_labels, options=options)}.npz"
    names = ("mean", "variance", "coefficients", "intercepts")
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return tuple(stored[name] for name in names), True
        except (OSError, ValueError, KeyError) as error:
            log.warning("the probe's cached fit %s could not be read (%s); fitting the probe again", path, error)
    scaler = StandardScaler().fit(train_features)
    standardised = scaler.transform(train_features)
    if train_labels.ndim == 2:  # several labels per text: one regression per label, its rows of the parameters
        coefficients, intercepts = one_vs_rest_parameters(standardised, train_labels, C=C, seed=seed,
                                                          label_weights=class_weight)
    else:
        probe = LogisticRegression(max_iter=MAX_ITERATIONS, C=C, random_state=seed, class_weight=class_weight)
        probe.fit(standardised, train_labels)
        coefficients, intercepts = probe.coef_, probe.intercept_
    fitted = (scaler.mean_, scaler.var_, coefficients, intercepts)
    if path is not None:
        try:
            write_bytes_atomic(path, npz_bytes(dict(zip(names, fitted))))
        except Exception as error:  # a read-only or full cache: the sweep's result does not depend on this file
            log.warning("the probe's fit could not be kept in %s (%s)", path.parent, error)
    return fitted, False


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes np.savez writes (plain arrays, no pickle), to be written atomically in one go."""
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def probe_digest(*arrays: np.ndarray, options: dict[str, Any]) -> str:
    """A digest of everything a probe's result depends on: the arrays' bytes, shapes and types, the options
    and scikit-learn's version (another version may converge elsewhere)."""
    digest = hashlib.blake2b(digest_size=20)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.data.cast("B"))
    digest.update(json.dumps({**options, "max_iter": MAX_ITERATIONS, "scikit_learn": sklearn.__version__},
                             sort_keys=True).encode())
    return digest.hexdigest()


def _weights_record(class_weight: dict[int, Any] | None) -> list[tuple[int, Any]] | None:
    """Class weights (a number per class, or a pair per label) as JSON records them."""
    if class_weight is None:
        return None
    return sorted((int(label), [float(value) for value in weight] if isinstance(weight, tuple) else float(weight))
                  for label, weight in class_weight.items())
