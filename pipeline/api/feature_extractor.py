"""FeatureExtractor: the frozen encoder's pooled features as a scikit-learn transformer, through the feature cache.

Its options are `run`'s feature options and mean the same; `transform` runs the shared core's extraction code
and reads and writes the same cache (pipeline.api.cached_features has the rule for subsets), so features are
computed once per text, whether a notebook, a cross-validation fold or `python -m pipeline run` asked first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from pipeline.api.cached_features import features_for
from pipeline.api.inputs import invalid_input_errors, settings_from, store_parameters, texts_from
from pipeline.base.config import EMBEDDED_ENCODER, FEATURES_STAGE, RunConfig
from pipeline.base.files import check_creatable
from pipeline.features.long_texts import length_report
from pipeline.runs.prepare import FeatureSettings, cache_dir_for, settle_features


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
        store_parameters(self, locals())

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
            config, settings = self._settled()
            result = features_for(rows, settings, cache_dir=cache_dir_for(config), batch_size=config.extraction_batch_size,
                                  show_progress=bool(self.progress))
        self.cache_info_ = result.summary()
        self.long_texts_ = length_report([len(settings.encoder.tokenizer.encode(text)) for text in dict.fromkeys(rows)],
                                         settings.max_seq_length, settings.long_texts)
        return result.features

    def count_tokens(self, texts: Any) -> np.ndarray:
        """WordPiece tokens per text with [CLS] and [SEP], before truncation: to choose max_seq_length."""
        from pipeline.runs.explore import token_lengths

        with invalid_input_errors():
            rows = texts_from(texts, source="the input")
            return token_lengths(rows, self._settled()[1].encoder.tokenizer)

    # ------------------------------------------------------------------ state

    def _settings(self) -> RunConfig:
        """The settings object `run` would get for these parameters; InvalidInput with the command line's message."""
        return settings_from(self, (FEATURES_STAGE,))

    def _settled(self) -> tuple[RunConfig, FeatureSettings]:
        """The settings of the current parameters, and the encoder and options settled from them: loaded once, again
        only after set_params changed them (the loaded encoders themselves are shared within the process)."""
        config = self._settings()
        if getattr(self, "_settled_for", None) != config or not hasattr(self, "settings_"):
            with invalid_input_errors():
                check_creatable(cache_dir_for(config), "--cache-dir")  # before TensorFlow starts, as `run` checks it
                self.settings_ = settle_features(config)
            self._settled_for = config
        return config, self.settings_

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
