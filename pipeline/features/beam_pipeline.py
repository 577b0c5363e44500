"""The Beam pipeline that fills one feature-cache entry: what runs on the workers.

    staged texts -> Tokenize (keyed by text digest; scales out) -> shard starts (from each token length's count
    and its sorted digests) -> rows keyed by shard -> GroupByKey -> EncodeShard (encoder loaded once per worker
    in DoFn.setup; writes the shard, its digests and its record) -> the launcher merges (pipeline.runs.beam_extract)

A shard is the storage order's rows [i*shard_rows, (i+1)*shard_rows): sorted by (token length, text digest),
exactly the local runner's shards, so each is encoded by the same function (extraction.encode_sorted_texts),
in the same length-bucketed batches, with padding as low as the local runner's. Only the shard starts (one
(length, digest) pair per shard) reach every worker; no step gathers all rows in one place.

Why not RunInference: its model handlers batch elements as they arrive and return one prediction per
element, so the rows of a shard would come back scattered; a shard must be encoded and written as one
sorted unit. The encoder is still loaded once per worker process (encoder.load_encoder keeps it).
"""

from __future__ import annotations

import bisect
import json
from array import array as int_array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import apache_beam as beam

from pipeline.base.errors import UserError
from pipeline.base.files import file_sha256
from pipeline.features import beam_storage, cache
from pipeline.features.long_texts import LongTexts, segments, tokens_read
from tokenization import FullTokenizer

if TYPE_CHECKING:
    from pipeline.encoders.encoder import Encoder

# A worker's UserError crosses the runner as text; the launcher finds this mark and prints one `error:` line.
WORKER_ERROR_MARK = "[pipeline worker] "
TokenizedRow = tuple[int, bytes, Any]  # (tokens read, text digest, the segments read, each an array('i'))


@dataclass(frozen=True)
class ShardJob:
    """Everything a worker needs, in plain values (it is pickled with the DoFns and sent to every worker)."""

    entry_path: str
    key: str
    writer_tag: str
    texts: int
    shard_rows: int
    encoder_folder: str  # the launcher's resolved SavedModel folder; the same path must exist on the workers
    models_dir: str | None
    precision: str  # settled by the launcher (run.prepare): float32, bfloat16, float16 or int8
    encoder_fingerprint: str
    vocab_file: str
    vocab_sha256: str
    do_lower_case: bool
    pooling: str
    layers: tuple[int, ...]
    combine: str
    max_seq_length: int
    long_texts: LongTexts
    batch_size: int
    feature_size: int


def load_worker_encoder(encoder_folder: str, models_dir: str | None, precision: str) -> Encoder:
    """The encoder on a worker, TensorFlow started and the encoder loaded once per process (load_encoder keeps
    it), in the launcher's settled `precision`. `encoder_folder` may also be a handle, resolved with `models_dir`."""
    from pipeline.base.devices import start_tensorflow

    start_tensorflow()  # first: it imports TensorFlow with its start-up chatter caught
    from pipeline.encoders.encoder import load_encoder

    return load_encoder(encoder_folder, models_dir=Path(models_dir) if models_dir else None, precision=precision)


def _worker_error(message: str) -> UserError:
    return UserError(WORKER_ERROR_MARK + message)


class TokenizeText(beam.DoFn):
    """A staged JSON line -> (tokens read, text digest, the segments read), as the local runner reads a text."""

    def __init__(self, job: ShardJob):
        self.job = job
        self.tokenizer: FullTokenizer | None = None

    def setup(self) -> None:
        if not _file_matches(self.job.vocab_file, self.job.vocab_sha256):
            raise _worker_error(f"the encoder's vocabulary {self.job.vocab_file} is missing or differs on this worker; "
                                f"put the same encoder folder at the same path on every worker")
        self.tokenizer = FullTokenizer(self.job.vocab_file, do_lower_case=self.job.do_lower_case)

    def process(self, line: str) -> Iterator[TokenizedRow]:
        assert self.tokenizer is not None  # set in setup, which Beam calls first
        text = json.loads(line)
        ids = self.tokenizer.encode(text)
        job = self.job
        read = [int_array("i", segment) for segment in segments(ids, job.max_seq_length, job.long_texts)]
        yield tokens_read(len(ids), job.max_seq_length, job.long_texts), cache.text_digest(text), read


def _file_matches(path: str, sha256: str) -> bool:
    try:
        return file_sha256(Path(path)) == sha256
    except OSError:
        return False


class ShardStarts(beam.DoFn):
    """(token length, its texts' digests) -> (shard index, (length, digest) of the shard's first row), for each
    shard that starts among these rows; `counts` (texts per token length) places the length in the order."""

    def __init__(self, shard_rows: int):
        self.shard_rows = shard_rows

    def process(self, length_and_digests: tuple[int, Iterable[bytes]], counts: dict[int, int]) -> Iterator[tuple[int, tuple[int, bytes]]]:
        length, digests = length_and_digests
        ordered = sorted(digests)
        offset = sum(count for other, count in counts.items() if other < length)
        first_start = -(-offset // self.shard_rows) * self.shard_rows
        for position in range(first_start, offset + len(ordered), self.shard_rows):
            yield position // self.shard_rows, (length, ordered[position - offset])


def _sorted_starts(starts: list[tuple[int, tuple[int, bytes]]]) -> list[tuple[int, bytes]]:
    return [start for _, start in sorted(starts)]


def _key_by_shard(row: TokenizedRow, starts: list[tuple[int, bytes]]) -> tuple[int, TokenizedRow]:
    """A row's shard: the last shard whose first row is not after it in (length, digest) order."""
    return bisect.bisect_right(starts, (row[0], row[1])) - 1, row


class EncodeShard(beam.DoFn):
    """One shard's rows -> its features, written by this worker with its digests and record. A shard that an
    earlier attempt finished (same rows, intact file) is kept as it is."""

    def __init__(self, job: ShardJob):
        self.job = job
        self.encoder: Encoder | None = None

    def setup(self) -> None:
        job = self.job
        self.encoder = load_worker_encoder(job.encoder_folder, job.models_dir, job.precision)
        if self.encoder.fingerprint != job.encoder_fingerprint:
            raise _worker_error(f"the encoder folder {job.encoder_folder} on this worker is not the launcher's "
                                f"(its files differ); put the same encoder folder at the same path on every worker")

    def process(self, shard: tuple[int, Iterable[TokenizedRow]]) -> Iterator[tuple[int, str]]:
        from pipeline.features.extraction import encode_sorted_texts

        job = self.job
        shard_index, unordered = shard
        rows = sorted(unordered, key=lambda row: (row[0], row[1]))
        expected_rows = cache.shard_rows_of(shard_index, job.texts, job.shard_rows)
        if len(rows) != expected_rows:  # the shard starts were computed from the same rows: a bug if this differs
            raise RuntimeError(f"shard {shard_index} got {len(rows)} rows, expected {expected_rows}")
        lengths, digests = [row[0] for row in rows], [row[1] for row in rows]
        if beam_storage.reusable_shard(job.entry_path, job.key, shard_index, digests, job.feature_size):
            yield shard_index, "reused"
            return
        assert self.encoder is not None  # set in setup, which Beam calls first
        features = encode_sorted_texts([row[2] for row in rows], self.encoder, pooling=job.pooling, layers=job.layers,
                                       combine=job.combine, max_seq_length=job.max_seq_length, batch_size=job.batch_size)
        beam_storage.write_shard(job.entry_path, job.key, shard_index, features, lengths, digests, job.writer_tag)
        yield shard_index, "written"


def add_extraction(pipeline: beam.Pipeline, texts_pattern: str, job: ShardJob) -> beam.PCollection:
    """Adds the extraction to `pipeline`: staged texts (JSON lines matching `texts_pattern`) -> shards in the entry."""
    rows = (pipeline
            | "Read staged texts" >> beam.io.ReadFromText(texts_pattern)
            | "Tokenize" >> beam.ParDo(TokenizeText(job)))
    counts = (rows
              | "Token length" >> beam.Map(lambda row: row[0])
              | "Texts per length" >> beam.combiners.Count.PerElement())
    starts = (rows
              | "Digest by length" >> beam.Map(lambda row: (row[0], row[1]))
              | "Group digests by length" >> beam.GroupByKey()
              | "Shard starts" >> beam.ParDo(ShardStarts(job.shard_rows), counts=beam.pvalue.AsDict(counts))
              | "All shard starts" >> beam.combiners.ToList()
              | "Sort shard starts" >> beam.Map(_sorted_starts))
    return (rows
            | "Key by shard" >> beam.Map(_key_by_shard, starts=beam.pvalue.AsSingleton(starts))
            | "Group rows by shard" >> beam.GroupByKey()
            | "Encode and write shard" >> beam.ParDo(EncodeShard(job)))
