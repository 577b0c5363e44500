"""The logistic-regression probe: the simple baseline the head must beat, on the very same features.

Its fit (L-BFGS on a few thousand standardised 2,304-wide vectors) costs about as many CPU seconds as the
heads' training, and gives the same numbers every time for the same arrays and options, so its test
metrics are kept beside the feature cache (`cached_baseline`), under a digest of the very arrays and options:
a second run on the same split reads them in milliseconds; another split or seed fits anew.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.base.files import write_json_atomic
from pipeline.evaluation.metrics import classification_metrics

log = logging.getLogger(__name__)

PROBE_DESCRIPTION = "standardised features + logistic regression"
PROBE_C = 1.0
PROBES_DIR = "probes"  # inside the feature cache folder; feature entries are the folders holding a manifest


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
        LogisticRegression(max_iter=2000, C=PROBE_C, random_state=seed, class_weight=class_weight),
    )
    probe.fit(train_features, train_labels)
    probabilities = probe.predict_proba(test_features)
    return classification_metrics(test_labels, probabilities, num_classes), probabilities


def cached_baseline(
    cache_dir: Path | None,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    *,
    num_classes: int,
    seed: int,
    class_weight: dict[int, float] | None = None,
) -> tuple[dict[str, Any], bool]:
    """(the probe's test metrics, whether they were read from `cache_dir`): fitted and kept there when new.

    Without a `cache_dir` the probe is always fitted. A record that cannot be read is fitted again and
    replaced; one that cannot be written only costs the next run the fit."""
    arguments = (train_features, train_labels, test_features, test_labels)
    path = None if cache_dir is None else Path(cache_dir) / PROBES_DIR / \
        f"{probe_digest(*arguments, num_classes=num_classes, seed=seed, class_weight=class_weight)}.json"
    if path is not None and path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))["test"], True
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("the probe's cached result %s could not be read (%s); fitting the probe again", path, error)
    metrics, _ = logistic_regression_baseline(*arguments, num_classes=num_classes, seed=seed, class_weight=class_weight)
    if path is not None:
        try:
            write_json_atomic(path, {"test": metrics, "model": PROBE_DESCRIPTION, "C": PROBE_C,
                                     "scikit_learn": sklearn.__version__})
        except Exception as error:  # a read-only or full cache: the run's result does not depend on this file
            log.warning("the probe's result could not be kept in %s (%s)", path.parent, error)
    return metrics, False


def probe_digest(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                 test_labels: np.ndarray, *, num_classes: int, seed: int,
                 class_weight: dict[int, float] | None) -> str:
    """A digest of everything the probe's test metrics depend on: the arrays' bytes, shapes and types, the
    options, the probe's settings and scikit-learn's version (another version may converge elsewhere)."""
    digest = hashlib.blake2b(digest_size=20)
    for array in (train_features, train_labels, test_features, test_labels):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.data.cast("B"))
    settings = {"num_classes": num_classes, "seed": seed, "C": PROBE_C, "max_iter": 2000, "scikit_learn": sklearn.__version__,
                "class_weight": None if class_weight is None else sorted((int(k), float(v)) for k, v in class_weight.items())}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()
