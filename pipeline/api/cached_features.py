"""Features for any list of texts, served from the feature cache wherever it already holds them.

A cache entry is keyed by its whole set of unique texts (pipeline.features.cache), so a subset of cached texts,
or a cross-validation fold, has no entry of its own. The rule, for one encoder and one choice of settings:

1. The entry of exactly these unique texts (the one `run` and `extract` make for them) is read as they read it,
   through `extract_features`, the code `run` reads it with.
2. Otherwise every complete entry of the same encoder and settings in the cache folder may serve the texts it
   holds: entries are taken largest contribution first, and each is read whole with its checks (SHA-256 of every
   file, the manifest against these settings), exactly as a command reads an entry; a damaged one serves nothing.
3. The texts no entry holds are extracted by `extract_features` into a new entry keyed by exactly those texts.
   When no text was cached, that is the entry `run` and `extract` make for the same texts.

So each text is encoded once per encoder and settings, whichever calls asked for it. This module knows nothing of
the on-disk format: the cache answers which entries hold these texts under these settings and reads them
(`cache.entries_holding`, `cache.read_held_entry`), and the extraction runner fills new entries.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.features import cache
from pipeline.features.encoder_io import feature_size
from pipeline.runs.prepare import FeatureSettings

log = logging.getLogger(__name__)


@dataclass
class CachedFeatures:
    """Features aligned with the texts asked for, and where they came from."""

    features: np.ndarray  # float32 [len(texts), feature size]
    texts: int  # unique texts behind them
    from_cache: int  # unique texts read from existing entries
    extracted: int  # unique texts run through the encoder by this call
    entries: list[Path] = field(default_factory=list)  # the entries read or written
    seconds: float = 0.0

    @property
    def cache_hit(self) -> bool:
        return self.extracted == 0

    def summary(self) -> dict[str, Any]:
        return {"texts": self.texts, "from_cache": self.from_cache, "extracted": self.extracted,
                "cache_hit": self.cache_hit, "entries": [str(entry) for entry in self.entries],
                "seconds": round(self.seconds, 3)}


def features_for(texts: list[str], settings: FeatureSettings, *, cache_dir: Path, batch_size: int,
                 show_progress: bool) -> CachedFeatures:
    """float32 features of `texts` (duplicates allowed) in their order, by the rule in the module docstring."""
    from pipeline.features.extraction import extract_features

    started = time.perf_counter()
    unique_texts = list(dict.fromkeys(texts))
    digests = [cache.text_digest(text) for text in unique_texts]
    description = settings.encoder.describe()
    width = feature_size(settings.encoder.hidden_size, settings.layers, settings.combine)
    options: dict[str, Any] = {"pooling": settings.pooling, "layers": settings.layers, "combine": settings.combine,
                               "max_seq_length": settings.max_seq_length}
    entry_settings: dict[str, Any] = {**options, "feature_size": width, "long_texts": settings.long_texts.record()}
    key = cache.cache_key(description, sorted_digests=sorted(digests), long_texts=entry_settings["long_texts"], **options)

    def extract(some_texts: list[str]) -> Any:
        return extract_features(some_texts, settings.encoder, cache_dir=cache_dir, batch_size=batch_size,
                                show_progress=show_progress, long_texts=settings.long_texts, **options)

    if cache.has_entry(cache_dir, key):
        result = extract(texts)  # the command line's read of the exact entry (it recomputes a damaged one)
        held = len(unique_texts) if result.cache_hit else 0
        return CachedFeatures(features=result.features, texts=len(unique_texts), from_cache=held,
                              extracted=len(unique_texts) - held, entries=[result.entry_dir],
                              seconds=time.perf_counter() - started)

    row_of_digest = {digest: row for row, digest in enumerate(digests)}
    features = np.zeros((len(unique_texts), width), np.float32)
    found = np.zeros(len(unique_texts), bool)
    entries = []
    candidates = cache.entries_holding(cache_dir, set(row_of_digest), description, **entry_settings)
    while candidates and not found.all():
        wanted = [sum(not found[row_of_digest[digest]] for digest in candidate.digests) for candidate in candidates]
        best = int(np.argmax(wanted))
        candidate = candidates.pop(best)
        if wanted[best] == 0:
            break
        stored = cache.read_held_entry(candidate, description, **entry_settings)
        if stored is None:
            continue
        stored_digests, stored_features = stored
        pairs = [(row_of_digest[digest], stored_row) for stored_row, digest in enumerate(cache.digests_from_array(stored_digests))
                 if digest in row_of_digest and not found[row_of_digest[digest]]]
        if not pairs:
            continue
        rows, stored_rows = (np.array(column, dtype=np.int64) for column in zip(*pairs))
        features[rows] = stored_features[stored_rows]
        found[rows] = True
        entries.append(candidate.directory)

    missing = np.flatnonzero(~found)
    if len(missing):
        result = extract([unique_texts[row] for row in missing])
        features[missing] = result.features
        entries.append(result.entry_dir)
    order = np.fromiter((row_of_digest[digest] for digest in (cache.text_digest(text) for text in texts)),
                        dtype=np.int64, count=len(texts))
    return CachedFeatures(features=features[order], texts=len(unique_texts), from_cache=len(unique_texts) - len(missing),
                          extracted=len(missing), entries=entries, seconds=time.perf_counter() - started)
