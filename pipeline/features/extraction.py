"""Texts -> pooled encoder vectors on this machine: tokenize, sort by length, encode in batches.

The results go into the feature cache (`pipeline.features.cache`, which owns the on-disk format); this module
is the single-machine extraction runner, and encodes each shard for the Beam runner too. Token ids and
pooling come from `pipeline.features.encoder_io`, which fine-tuning and the exported model share.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from pipeline.base.devices import graph_rewrite
from pipeline.base.progress_bars import redraw_interval
from pipeline.features import cache
from pipeline.features.encoder_io import feature_size, pool, tokenize_whole
from pipeline.features.long_texts import (
    TRUNCATE,
    LongTexts,
    cut_warning,
    length_report,
    restated,
    segments,
    stored_reading,
    tokens_read,
)
from tokenization.packing import pack_inputs

if TYPE_CHECKING:
    from pipeline.encoders.encoder import Encoder

log = logging.getLogger(__name__)

# Padded tokens per encoder call (rows are also capped by the batch size): a token budget pads less than a fixed
# number of rows per call at no more CPU per token, and bigger calls cost more
# (measured: docs/benchmarks-history.md#what-was-tried-and-what-it-gave).
TOKEN_BUDGET = 1024
FeatureFunction = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]


@dataclass
class FeatureResult:
    """Features aligned with the texts asked for, and how they were obtained."""

    features: np.ndarray  # float32 [len(texts), hidden]
    cache_hit: bool
    seconds: float
    texts: int  # unique texts behind the features
    texts_per_second: float
    entry_dir: Path
    long_texts: dict[str, Any]  # long_texts.length_report of the unique texts: settings, texts cut, token lengths
    reused_shards: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "cache_hit": self.cache_hit,
            "seconds": round(self.seconds, 3),
            "texts": self.texts,
            "texts_per_second": round(self.texts_per_second, 1),
            "cache_entry": str(self.entry_dir),
            "reused_shards": self.reused_shards,
            "long_texts": self.long_texts,
        }


def extract_features(
    texts: list[str],
    encoder: Encoder,
    *,
    pooling: str,
    layers: tuple[int, ...] = (-1,),
    combine: str = "concat",
    max_seq_length: int,
    long_texts: LongTexts = TRUNCATE,
    cache_dir: Path,
    batch_size: int = 64,
    show_progress: bool = True,
) -> FeatureResult:
    """Features for `texts` (duplicates allowed), from the cache when it holds them, else computed and cached.
    Texts longer than `max_seq_length` are read as `long_texts` says; how many were cut is counted and, past a
    tenth of them, said in one warning line.

    When no text is longer than the room, every strategy reads the same, and the entry is truncation's
    (long_texts.stored_reading): looked up second on a miss, written so on a computation."""
    started = time.perf_counter()
    unique_texts = list(dict.fromkeys(texts))
    digest_of = {text: cache.text_digest(text) for text in unique_texts}
    description = encoder.describe()
    width = feature_size(encoder.hidden_size, layers, combine)

    def key_and_fields(reading: LongTexts) -> tuple[str, dict[str, Any]]:
        key = cache.cache_key(description, pooling=pooling, layers=layers, combine=combine,
                              max_seq_length=max_seq_length, sorted_digests=sorted(digest_of.values()),
                              long_texts=reading.record())
        return key, cache.expected_manifest_fields(description, pooling=pooling, layers=layers, combine=combine,
                                                   max_seq_length=max_seq_length, texts=len(unique_texts),
                                                   feature_size=width, long_texts=reading.record())

    def tokenized() -> list[Any]:
        return tokenize_whole(unique_texts, encoder.tokenizer, show_progress=show_progress)

    def compute(entry: cache.CacheEntry, whole_ids: list[Any], reading: LongTexts) -> tuple[np.ndarray, np.ndarray]:
        return _compute_entry(unique_texts, whole_ids, digest_of, encoder, pooling=pooling, layers=layers,
                              combine=combine, max_seq_length=max_seq_length, long_texts=reading, entry=entry,
                              batch_size=batch_size, show_progress=show_progress)

    # Each entry is read once under its lock (a damaged one warns once), and computed under the same lock. A
    # strategy other than truncation holds its own entry's lock while it looks at truncation's (always in
    # that order, so two processes never wait for each other).
    key, expected = key_and_fields(long_texts)
    with cache.locked_entry(cache_dir, key) as entry:
        found = entry.read(expected=expected)
        report = entry.recorded_long_texts() if found is not None else None
        entry_dir, reused_shards, cache_hit, whole_ids = entry.directory, 0, found is not None, None
        if found is None and long_texts != TRUNCATE:
            truncated_key, truncated_fields = key_and_fields(TRUNCATE)
            with cache.locked_entry(cache_dir, truncated_key) as truncated:
                recorded = truncated.recorded_long_texts()
                if recorded is None or recorded.get("texts_cut") == 0:  # None: an entry from before reports
                    found = truncated.read(expected=truncated_fields)
                if found is not None and recorded is None:
                    whole_ids = tokenized()
                    if stored_reading([len(ids) for ids in whole_ids], max_seq_length, long_texts) != TRUNCATE:
                        found = None
                if found is not None:
                    cache_hit, entry_dir = True, truncated.directory
                    report = restated(recorded, max_seq_length, long_texts) if recorded else None
                else:
                    whole_ids = whole_ids if whole_ids is not None else tokenized()
                    if stored_reading([len(ids) for ids in whole_ids], max_seq_length, long_texts) == TRUNCATE:
                        found = compute(truncated, whole_ids, TRUNCATE)  # every strategy reads these texts alike
                        entry_dir, reused_shards = truncated.directory, truncated.reused_shards
        if found is None:
            whole_ids = whole_ids if whole_ids is not None else tokenized()
            found = compute(entry, whole_ids, long_texts)
            reused_shards = entry.reused_shards
    stored = found
    if report is None:  # computed now, or an entry from before the report was recorded: count (nothing is encoded)
        lengths = ([len(ids) for ids in whole_ids] if whole_ids is not None else
                   [len(ids) for ids in tokenize_whole(unique_texts, encoder.tokenizer, show_progress=False)])
        report = length_report(lengths, max_seq_length, long_texts)
    warning = cut_warning(report)
    if warning:
        log.warning(warning)
    storage_digests, storage_features = stored
    row_of = {text_hash: row for row, text_hash in enumerate(cache.digests_from_array(storage_digests))}
    rows = np.fromiter((row_of[digest_of[text]] for text in texts), dtype=np.int64, count=len(texts))
    seconds = time.perf_counter() - started
    return FeatureResult(
        features=storage_features[rows],
        cache_hit=cache_hit,
        seconds=seconds,
        texts=len(unique_texts),
        texts_per_second=len(unique_texts) / max(seconds, 1e-9),
        entry_dir=entry_dir,
        long_texts=report,
        reused_shards=reused_shards,
    )


def _compute_entry(unique_texts: list[str], whole_ids: Sequence[Sequence[int]], digest_of: dict[str, bytes],
                   encoder: Encoder, *, pooling: str, layers: tuple[int, ...], combine: str, max_seq_length: int,
                   long_texts: LongTexts, entry: cache.CacheEntry, batch_size: int,
                   show_progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Orders the texts by the tokens read, encodes shard by shard into the entry (reusing an earlier attempt's
    shards), records `long_texts`'s report in the manifest; returns (digests, features) in storage order."""
    report = length_report([len(ids) for ids in whole_ids], max_seq_length, long_texts)
    read_lengths = [tokens_read(len(ids), max_seq_length, long_texts) for ids in whole_ids]
    order = cache.storage_order(read_lengths, [digest_of[text] for text in unique_texts])
    storage_digests = cache.digests_to_array([digest_of[unique_texts[index]] for index in order])
    entry.begin_writing()
    shard_arrays = []
    extraction_started = time.perf_counter()
    with tqdm(total=len(order), unit="text", desc="features", disable=not show_progress, smoothing=0.1,
              mininterval=redraw_interval()) as progress:
        for shard_index, start in enumerate(range(0, len(order), cache.SHARD_ROWS)):
            shard_order = order[start : start + cache.SHARD_ROWS]
            array = entry.reuse_shard(shard_index, len(shard_order))
            if array is not None:
                progress.update(len(shard_order))
            else:
                array = encode_sorted_texts([segments(whole_ids[index], max_seq_length, long_texts)
                                             for index in shard_order], encoder, pooling=pooling, layers=layers,
                                            combine=combine, max_seq_length=max_seq_length, batch_size=batch_size,
                                            progress=progress)
                entry.write_shard(shard_index, array)
            shard_arrays.append(array)
    seconds = time.perf_counter() - extraction_started
    width = feature_size(encoder.hidden_size, layers, combine)
    features = np.concatenate(shard_arrays) if shard_arrays else np.zeros((0, width), np.float32)
    entry.finish(storage_digests, cache.manifest_description(
        encoder.describe(), pooling=pooling, layers=layers, combine=combine, max_seq_length=max_seq_length,
        texts=len(unique_texts), feature_size=width, extraction_seconds=seconds, long_texts=report))
    return storage_digests, features


# Traced feature functions by (encoder layer, pooling): tracing and graph optimisation take a second or
# two, so a process that extracts several times (predict, notebooks, the benchmark) pays them once.
_FEATURE_FUNCTIONS: dict[tuple[int, str, tuple[int, ...], str], tuple[Any, FeatureFunction]] = {}


def make_feature_function(encoder: Encoder, pooling: str, layers: tuple[int, ...] = (-1,),
                          combine: str = "concat") -> FeatureFunction:
    """One traced graph per encoder and pooling: encoder call plus pooling, only the pooled rows come back.

    The sequence output never leaves the graph, so at most one batch of it exists at a time. Input
    shapes are dynamic ([None, None]): one trace serves every batch width. XLA (jit_compile) is not used: it
    compiles again for every new shape, which costs more than it saves
    (measured: docs/benchmarks-history.md#what-was-tried-and-what-it-gave).
    """
    layer = encoder.forward_layer
    key = (id(layer), pooling, layers, combine)
    cached = _FEATURE_FUNCTIONS.get(key)
    if cached is not None and cached[0] is layer:
        return cached[1]
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec, spec])
    def features(input_word_ids: tf.Tensor, input_mask: tf.Tensor, input_type_ids: tf.Tensor) -> tf.Tensor:
        outputs = encoder(input_word_ids, input_mask, input_type_ids)
        return tf.cast(pool(outputs, input_mask, pooling, layers, combine), tf.float32)

    _FEATURE_FUNCTIONS[key] = (layer, features)
    return features


def _batch_bounds(lengths: list[int], max_rows: int, token_budget: int) -> list[tuple[int, int]]:
    """(start, end) of each batch over rows sorted by length (shortest first): at most `max_rows` rows,
    and more than one row only while rows x (longest row + [CLS] and [SEP]) stays within `token_budget`."""
    bounds, start = [], 0
    while start < len(lengths):
        end = start + 1
        while end < len(lengths) and end - start < max_rows and (end + 1 - start) * (lengths[end] + 2) <= token_budget:
            end += 1
        bounds.append((start, end))
        start = end
    return bounds


def _encode_rows(rows_token_ids: Sequence[Sequence[int]], feature_fn: FeatureFunction, batch_size: int,
                 max_seq_length: int, cls_id: int, sep_id: int, progress: tqdm | None = None,
                 in_flight: int = 1) -> np.ndarray:
    """Encodes rows already sorted by length, each batch padded only to its own longest row.

    A batch holds at most `batch_size` rows and TOKEN_BUDGET padded tokens, so short texts go many
    to a call and long ones few. Only the pooled [batch, hidden] rows come back from the graph; they
    go straight into one preallocated array: a shard's features plus `in_flight` batches at a time
    (more than one for an encoder that runs several calls at once: Encoder.concurrent_batches).
    """
    bounds = _batch_bounds([len(row) for row in rows_token_ids], batch_size, TOKEN_BUDGET)

    def encode(start: int, end: int) -> np.ndarray:
        batch = pack_inputs(rows_token_ids[start:end], max_seq_length=max_seq_length, cls_id=cls_id, sep_id=sep_id)
        return feature_fn(tf.constant(batch["input_word_ids"]), tf.constant(batch["input_mask"]),
                          tf.constant(batch["input_type_ids"])).numpy()

    output: np.ndarray | None = None
    for (start, _), vectors in zip(bounds, _in_order(encode, bounds, in_flight)):
        if output is None:
            output = np.empty((len(rows_token_ids), vectors.shape[1]), dtype=np.float32)
        output[start : start + len(vectors)] = vectors
        if progress is not None:
            progress.update(len(vectors))
    return output if output is not None else np.zeros((0, 0), np.float32)


def _in_order(encode: Callable[[int, int], np.ndarray], bounds: list[tuple[int, int]],
              in_flight: int) -> Iterator[np.ndarray]:
    """encode(start, end) of each batch, yielded in order, with up to `in_flight` batches computing at once
    (threads: the encoder releases Python's GIL while it computes). A failure stops the rest."""
    if in_flight <= 1:
        yield from (encode(start, end) for start, end in bounds)
        return
    executor = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="encode")
    pending: collections.deque[Future[np.ndarray]] = collections.deque()
    try:
        for start, end in bounds:
            pending.append(executor.submit(encode, start, end))
            if len(pending) > in_flight:  # one more waits its turn, packed as soon as a worker is free
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def encode_sorted_rows(rows_token_ids: Sequence[Sequence[int]], encoder: Encoder, *, pooling: str,
                       layers: tuple[int, ...], combine: str, max_seq_length: int, batch_size: int,
                       progress: tqdm | None = None) -> np.ndarray:
    """float32 [rows, feature size] for token ids already sorted by length (the cache's storage order):
    what every extraction runner calls for one shard."""
    if not rows_token_ids:
        return np.zeros((0, feature_size(encoder.hidden_size, layers, combine)), np.float32)
    cls_id, sep_id = encoder.tokenizer.vocab["[CLS]"], encoder.tokenizer.vocab["[SEP]"]
    with graph_rewrite(encoder.graph_rewrite):
        return _encode_rows(rows_token_ids, make_feature_function(encoder, pooling, layers, combine), batch_size,
                            max_seq_length, cls_id, sep_id, progress=progress, in_flight=encoder.concurrent_batches)


def encode_sorted_texts(texts_segments: Sequence[Sequence[Sequence[int]]], encoder: Encoder, *, pooling: str,
                        layers: tuple[int, ...], combine: str, max_seq_length: int, batch_size: int,
                        progress: tqdm | None = None) -> np.ndarray:
    """float32 [texts, feature size] for texts already in storage order, each given as the segments it is read
    as (long_texts.segments). A text of one segment is encoded as one row. The windows of longer texts join the
    same length-sorted batches, and a text's vector is the mean of its windows' vectors weighted by their ids."""
    if all(len(text_segments) == 1 for text_segments in texts_segments):
        return encode_sorted_rows([text_segments[0] for text_segments in texts_segments], encoder, pooling=pooling,
                                  layers=layers, combine=combine, max_seq_length=max_seq_length,
                                  batch_size=batch_size, progress=progress)
    owners = np.repeat(np.arange(len(texts_segments)), [len(text_segments) for text_segments in texts_segments])
    rows = [segment for text_segments in texts_segments for segment in text_segments]
    order = sorted(range(len(rows)), key=lambda index: len(rows[index]))  # stable: one order for every runner
    vectors = encode_sorted_rows([rows[index] for index in order], encoder, pooling=pooling, layers=layers,
                                 combine=combine, max_seq_length=max_seq_length, batch_size=batch_size)
    weights = np.array([max(len(rows[index]), 1) for index in order], dtype=np.float32)  # an empty text counts
    totals = np.zeros((len(texts_segments), vectors.shape[1]), np.float32)
    np.add.at(totals, owners[order], vectors * weights[:, np.newaxis])
    ids_per_text = np.zeros(len(texts_segments), np.float32)
    np.add.at(ids_per_text, owners[order], weights)
    if progress is not None:
        progress.update(len(texts_segments))
    return totals / np.maximum(ids_per_text, 1.0)[:, np.newaxis]


def encode_texts(texts: list[str], encoder: Encoder, *, pooling: str, layers: tuple[int, ...] = (-1,),
                 combine: str = "concat", max_seq_length: int, long_texts: LongTexts = TRUNCATE,
                 batch_size: int = 64) -> np.ndarray:
    """Features without the cache, in the order given (for predict and small checks); long texts read as in
    extraction."""
    texts_segments = [segments(encoder.tokenizer.encode(text), max_seq_length, long_texts) for text in texts]
    read = [sum(len(segment) for segment in text_segments) for text_segments in texts_segments]
    order = sorted(range(len(texts)), key=lambda index: read[index])
    if not texts:
        return np.zeros((0, feature_size(encoder.hidden_size, layers, combine)), np.float32)
    ordered = encode_sorted_texts([texts_segments[index] for index in order], encoder, pooling=pooling,
                                  layers=layers, combine=combine, max_seq_length=max_seq_length, batch_size=batch_size)
    result = np.empty_like(ordered)
    result[np.array(order)] = ordered
    return result
