"""BERT feature pipeline: frozen TF-Hub encoder -> cached pooled features -> small Keras head.

One folder per stage, in the order the data flows; each imports only the folders below it (its
`__init__` says which) and `tokenization/`:

    base/        errors, files, config, devices: what every stage may use
    data/        tables, presets, label mapping, splits
    encoders/    a TF-Hub BERT in one calling convention; the converter; reduced precision
    features/    texts -> pooled vectors: token ids, pooling, the local and Beam runners, the cache
    evaluation/  metrics, the probe, plots, TensorBoard logging
    training/    heads, fitting on cached features, fine-tuning
    runs/        the shared core: what run, extract, sweep, export and predict do; the run folder's format
    commands/    the command line only: arguments, printing, exit status
    api/         the Python API: FeatureExtractor, TextClassifier, TextRegressor, load_run (docs/python-api.md)

`from pipeline import FeatureExtractor, TextClassifier, TextRegressor, load_run` loads them on first use, so importing any
part of the package (the command line, the on-disk formats) loads neither scikit-learn nor TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.api.feature_extractor import FeatureExtractor
    from pipeline.api.text_classifier import TextClassifier, load_run
    from pipeline.api.text_regressor import TextRegressor

__all__ = ["FeatureExtractor", "TextClassifier", "TextRegressor", "load_run"]

_PUBLIC = {"FeatureExtractor": "pipeline.api.feature_extractor", "TextClassifier": "pipeline.api.text_classifier",
           "TextRegressor": "pipeline.api.text_regressor", "load_run": "pipeline.api.text_classifier"}


def __getattr__(name: str) -> Any:
    """The public names, imported when first asked for (PEP 562)."""
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
