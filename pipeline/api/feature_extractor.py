"""FeatureExtractor: the frozen encoder's pooled features as a scikit-learn transformer, through the feature cache.

Its options are `run`'s feature options and mean the same; `transform` runs the command line's extraction code
and reads and writes the same cache (pipeline.api.cached_features has the rule for subsets), so features are
computed once per text, whether a notebook, a cross-validation fold or `python -m pipeline run` asked first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from pipeline.api.cached_features import features_for
from pipeline.api.inputs import (
    checked_config,
    invalid_input_errors,
    layers_option,
    required_whole_number,
    text_option,
    texts_from,
    whole_number,
)
from pipeline.base.config import EMBEDDED_ENCODER
from pipeline.base.files import check_creatable
from pipeline.commands.run import FeatureSettings, cache_dir_for, settle_features
from pipeline.features.long_texts import length_report


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """Texts -> float32 features [n_texts, feature size], from the feature cache when it holds them.

    Parameters are `run`'s options of the same names (docs/usage.md): `encoder` (a SavedModel folder, a TF-Hub
    URL, a Kaggle handle or the embedded model's name), `pooling` (pooled, cls, mean; None: the encoder's
    recommendation), `layers` (last, all, last4, "0,2,-1" or [0, 2, -1]; None: all where the encoder gives
    every layer), `combine` (concat, mean), `max_seq_length` (None: 128), `long_texts` (truncate, head-tail,
    windows; None: windows) with `head_tokens`, `window_overlap` and `max_windows` (docs/long-texts.md), `precision` (auto,
    float32, bfloat16, float16, int8; auto as `run` chooses it, docs/precision.md), `cache_dir` (None: artifacts/features),
    `batch_size` (texts per encoder call, `run`'s --extraction-batch-size) and `progress` (progress bars).

    `fit` learns nothing: the features are the frozen encoder's. Attributes after `fit` or the first
    `transform`: `settings_` (the loaded encoder and the settled pooling, layers, max_seq_length and precision;
    the encoder is loaded once per instance and never pickled) and, after each `transform`, `cache_info_`
    (texts read from the cache and extracted, the entries used) and `long_texts_` (how many of the texts were
    cut and their token lengths, as the run summary reports them).
    """

    def __init__(self, encoder: str = EMBEDDED_ENCODER, *, pooling: str | None = None, layers: Any = None,
                 combine: str = "concat", max_seq_length: int | None = None, long_texts: str | None = None,
                 head_tokens: int | None = None, window_overlap: int | None = None, max_windows: int | None = None,
                 precision: str = "auto",
                 cache_dir: str | Path | None = None, batch_size: int = 64, progress: bool = True):
        self.encoder = encoder
        self.pooling = pooling
        self.layers = layers
        self.combine = combine
        self.max_seq_length = max_seq_length
        self.long_texts = long_texts
        self.head_tokens = head_tokens
        self.window_overlap = window_overlap
        self.max_windows = max_windows
        self.precision = precision
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.progress = progress

    def fit(self, texts: Any = None, labels: Any = None) -> FeatureExtractor:
        """Loads the encoder and settles the options; `texts`, if given, are checked, and nothing is learned from
        them. Returns self."""
        if texts is not None:
            with invalid_input_errors():
                texts_from(texts, source="the input")
        self._settled()
        return self

    def transform(self, texts: Any) -> np.ndarray:
        """float32 [len(texts), feature size], row i for text i; a list, Series, one-column DataFrame or 1-D array."""
        with invalid_input_errors():
            rows = texts_from(texts, source="the input")
            settings = self._settled()
            result = features_for(rows, settings, cache_dir=self._cache_dir(), batch_size=self._batch_size(),
                                  show_progress=bool(self.progress))
        self.cache_info_ = result.summary()
        self.long_texts_ = length_report([len(settings.encoder.tokenizer.encode(text)) for text in dict.fromkeys(rows)],
                                         settings.max_seq_length, settings.long_texts)
        return result.features

    def count_tokens(self, texts: Any) -> np.ndarray:
        """WordPiece tokens per text with [CLS] and [SEP], before truncation: to choose max_seq_length."""
        from pipeline.commands.explore import token_lengths

        with invalid_input_errors():
            rows = texts_from(texts, source="the input")
            return token_lengths(rows, self._settled().encoder.tokenizer)

    # ------------------------------------------------------------------ state

    def _config_options(self) -> dict[str, Any]:
        return {
            "encoder": text_option("--encoder", self.encoder) or EMBEDDED_ENCODER,
            "pooling": text_option("--pooling", self.pooling),
            "layers": layers_option(self.layers),
            "combine": text_option("--combine", self.combine),
            "max_seq_length": whole_number("--max-seq-length", self.max_seq_length),
            "long_texts": text_option("--long-texts", self.long_texts),
            "head_tokens": whole_number("--head-tokens", self.head_tokens),
            "window_overlap": whole_number("--window-overlap", self.window_overlap),
            "max_windows": whole_number("--max-windows", self.max_windows),
            "precision": text_option("--precision", self.precision),
            "cache_dir": None if self.cache_dir is None else str(self.cache_dir),
            "extraction_batch_size": self._batch_size(),
        }

    def _batch_size(self) -> int:
        return required_whole_number("--extraction-batch-size", self.batch_size)

    def _cache_dir(self) -> Path:
        return cache_dir_for(checked_config(**self._config_options()))

    def _settled(self) -> FeatureSettings:
        """The encoder and settled options for the current parameters: loaded once, again only after set_params
        changed them (the loaded encoders themselves are shared within the process)."""
        options = self._config_options()
        if getattr(self, "_settled_for", None) != options or not hasattr(self, "settings_"):
            config = checked_config(**options)
            with invalid_input_errors():
                check_creatable(cache_dir_for(config), "--cache-dir")  # before TensorFlow starts, as `run` checks it
                self.settings_ = settle_features(config)
            self._settled_for = options
        return self.settings_

    def __getstate__(self) -> dict[str, Any]:
        """Pickles the parameters only: the encoder is TensorFlow's, and is loaded again on the next call."""
        state = dict(super().__getstate__())
        for name in ("settings_", "_settled_for"):
            state.pop(name, None)
        return state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = False
        return tags
