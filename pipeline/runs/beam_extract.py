"""`extract --runner beam`: the launcher of the Beam pipeline that fills the same cache entry `extract` fills.

The launcher reads the table and loads the encoder as `extract` does (run.prepare), so it takes the same
options and computes the same key. It holds the texts and their digests, never the features: it stages
the unique texts as JSON lines in the entry's parts/ folder, runs the pipeline (pipeline.features.beam_pipeline,
whose workers write the shards), then checks every shard against its worker's record and writes
digests.npy and, last, the manifest (pipeline.features.beam_storage).

Two launchers on one key: on a local cache folder they take turns through the local runner's file lock,
so `run` started meanwhile waits and then reads the entry. On gs://, s3:// or hdfs:// there is no lock:
every file is written to a temporary name and renamed, a worker keeps a shard an earlier attempt finished
for the same rows, and a shard computed twice holds the same rows, encoded by the same code (bit-identical
on identical CPUs), so the last rename wins harmlessly; the manifest lists the SHA-256 of the files as the
launcher read them, and a reader refuses (and recomputes) any file that changed after that.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.base.config import RunConfig, artifacts_dir
from pipeline.base.errors import UserError
from pipeline.features import cache
from pipeline.features.long_texts import TRUNCATE, LongTexts, length_report, restated, stored_reading

if TYPE_CHECKING:
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.features.beam_pipeline import ShardJob
    from pipeline.runs.prepare import Prepared

log = logging.getLogger(__name__)

INSTALL_HINT = "run `make beam`, or `.venv/bin/pip install -r requirements-beam.txt`"
TEXTS_PER_STAGED_FILE = 100_000
PIPELINE_ATTEMPTS = 2  # a second run recomputes only the shards the first left missing or damaged


@dataclass
class BeamResult:
    """What `extract --runner beam` reports, as the local FeatureResult does."""

    texts: int
    seconds: float
    cache_hit: bool
    reused_shards: int
    entry_path: str
    long_texts: dict[str, Any] | None = None  # the entry's long-text report (None: an entry from before it existed)

    @property
    def texts_per_second(self) -> float:
        return self.texts / max(self.seconds, 1e-9)


def require_beam(verbose: bool = False) -> None:
    """UserError naming the install command when Apache Beam is missing; Beam's import-time chatter is dropped."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.DEBUG if verbose else logging.ERROR)  # Beam logs an `apitools not found` warning on import
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        raise UserError(f"--runner beam needs Apache Beam, which is not installed; {INSTALL_HINT}") from None
    finally:
        root.setLevel(previous)
    if not verbose:  # Beam logs every stage, relays its workers' logs and logs a failure before raising it
        logging.getLogger("apache_beam").setLevel(logging.CRITICAL)


def pipeline_options(arguments: list[str]) -> PipelineOptions:
    """Beam's PipelineOptions from the arguments after `--`; an option Beam rejects or does not know, or a runner
    it cannot create, is one UserError (Beam itself would only log a warning for an unknown option)."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.runners.runner import create_runner

    parsers: list[Any] = []

    def refuse(message: str) -> None:
        if message.startswith("ambiguous option: "):  # Beam's own parser lets these pass, so do we
            return
        raise UserError(f"Beam rejects the pipeline options after --: {message}; fix that option or drop it")

    def strict(parser: Any) -> None:
        parser.error = refuse
        parsers.append(parser)

    options = PipelineOptions(arguments)
    options.get_all_options(add_extra_args_fn=strict)
    unknown = [argument for argument in parsers[0].parse_known_args(arguments)[1] if argument != "--"]
    if unknown:
        raise UserError(f"Beam does not know the pipeline option(s) {' '.join(unknown)} given after --; "
                        f"check their spelling (Beam's options are written --name=value)")
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    try:
        create_runner(runner)
    except (ValueError, ImportError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"Beam cannot start runner {runner!r} ({first_line}); pass --runner=DirectRunner, "
                        f"DataflowRunner, FlinkRunner, SparkRunner or PortableRunner after --") from None
    return options


def cache_location(config: RunConfig) -> str:
    """--cache-dir as given (a URL stays a URL: pathlib would fold gs:// into gs:/), else artifacts/features."""
    return config.cache_dir or str(artifacts_dir() / "features")


def extract_with_beam(config: RunConfig, beam_arguments: list[str], *, verbose: bool = False) -> BeamResult:
    """Fills (or finds) the cache entry of `config`'s texts with a Beam pipeline; the same entry as `extract`."""
    require_beam(verbose)
    from pipeline.features import beam_storage

    options = pipeline_options(beam_arguments)
    cache_path = cache_location(config)
    beam_storage.check_filesystem(cache_path, "--cache-dir")
    from pipeline.features.encoder_io import tokenize_whole
    from pipeline.runs.prepare import prepare  # reads the table and starts TensorFlow: only once the options are known good

    prepared = prepare(config)
    started = time.perf_counter()
    all_texts = prepared.splits.train.texts + prepared.splits.validation.texts + prepared.splits.test.texts
    unique_texts = list(dict.fromkeys(all_texts))
    sorted_digests = sorted(cache.text_digest(text) for text in unique_texts)
    requested = prepared.long_texts

    def hit(job: ShardJob, report: dict[str, Any] | None) -> BeamResult:
        return BeamResult(texts=job.texts, seconds=time.perf_counter() - started, cache_hit=True, reused_shards=0,
                          entry_path=job.entry_path, long_texts=report)

    def lengths_of_texts() -> list[int]:
        # Counted here as the local runner counts them: tokenizing is a small part of the launcher's work beside
        # hashing and staging every text, and keeps the workers' records unchanged.
        return [len(ids) for ids in tokenize_whole(unique_texts, prepared.encoder.tokenizer, show_progress=False)]

    def filled(job: ShardJob, lengths: list[int]) -> BeamResult:
        reused = _fill_entry(prepared, job, unique_texts, sorted_digests, lengths, options, started)
        return BeamResult(texts=job.texts, seconds=time.perf_counter() - started, cache_hit=False,
                          reused_shards=reused, entry_path=job.entry_path,
                          long_texts=length_report(lengths, prepared.max_seq_length, requested))

    # As the local runner: each entry is looked at once under its lock, and filled under the same lock; a strategy
    # other than truncation holds its own entry's lock while it looks at truncation's, whose entry serves every
    # strategy when none of its texts is long (long_texts.stored_reading).
    job = _shard_job(prepared, cache_path, sorted_digests, requested)
    with _entry_lock(cache_path, job.key):
        manifest = _complete_entry(prepared, job)
        if manifest is not None:
            return hit(job, manifest.get("long_texts"))
        lengths = None
        if requested != TRUNCATE:
            truncated = _shard_job(prepared, cache_path, sorted_digests, TRUNCATE)
            with _entry_lock(cache_path, truncated.key):
                manifest = _complete_entry(prepared, truncated)
                report = manifest.get("long_texts") if manifest is not None else None
                if isinstance(report, dict) and report.get("texts_cut") == 0:
                    return hit(truncated, restated(report, prepared.max_seq_length, requested))
                lengths = lengths_of_texts()
                if stored_reading(lengths, prepared.max_seq_length, requested) == TRUNCATE:
                    if manifest is not None:  # an entry from before reports were recorded
                        return hit(truncated, length_report(lengths, prepared.max_seq_length, requested))
                    return filled(truncated, lengths)
        return filled(job, lengths if lengths is not None else lengths_of_texts())


def _shard_job(prepared: Prepared, cache_path: str, sorted_digests: list[bytes], long_texts: LongTexts) -> ShardJob:
    """The workers' job for the entry of these texts read as `long_texts` says."""
    from pipeline.features import beam_storage
    from pipeline.features.beam_pipeline import ShardJob
    from pipeline.features.encoder_io import feature_size

    encoder, config = prepared.encoder, prepared.config
    key = cache.cache_key(encoder.describe(), pooling=prepared.pooling, layers=prepared.layers, combine=prepared.combine,
                          max_seq_length=prepared.max_seq_length, sorted_digests=sorted_digests,
                          long_texts=long_texts.record())
    return ShardJob(
        entry_path=beam_storage.join(cache_path, cache.entry_dir_name(key)), key=key, writer_tag=uuid.uuid4().hex[:8],
        texts=len(sorted_digests), shard_rows=cache.SHARD_ROWS, encoder_folder=str(encoder.model_dir), models_dir=None,
        precision=prepared.precision,
        encoder_fingerprint=encoder.fingerprint, vocab_file=str(encoder.vocab_file), vocab_sha256=encoder.vocab_sha256,
        do_lower_case=encoder.do_lower_case, pooling=prepared.pooling, layers=prepared.layers, combine=prepared.combine,
        max_seq_length=prepared.max_seq_length, long_texts=long_texts, batch_size=config.extraction_batch_size,
        feature_size=feature_size(encoder.hidden_size, prepared.layers, prepared.combine))


@contextlib.contextmanager
def _entry_lock(cache_path: str, key: str) -> Iterator[None]:
    """The local runner's file lock on a local cache folder (and its clean-up of killed writers' temporary
    files); no lock elsewhere, where atomic renames of identical content keep two pipelines apart."""
    from pipeline.features import beam_storage

    if not beam_storage.is_local(cache_path):
        yield
        return
    with cache.locked_entry(Path(cache_path), key) as entry:
        beam_storage.remove_temporaries(str(entry.directory / cache.PARTS_DIR))  # the lock holder is the only writer
        yield


def _expected_fields(prepared: Prepared, job: ShardJob) -> dict[str, Any]:
    return cache.expected_manifest_fields(prepared.encoder.describe(), pooling=job.pooling, layers=job.layers,
                                          combine=job.combine, max_seq_length=job.max_seq_length, texts=job.texts,
                                          feature_size=job.feature_size, long_texts=job.long_texts.record())


def _complete_entry(prepared: Prepared, job: ShardJob) -> dict[str, Any] | None:
    from pipeline.features import beam_storage

    return beam_storage.verified_manifest(job.entry_path, job.key, _expected_fields(prepared, job))


def _fill_entry(prepared: Prepared, job: ShardJob, unique_texts: list[str], sorted_digests: list[bytes],
                lengths: list[int], options: PipelineOptions, started: float) -> int:
    """Stages the texts, runs the pipeline (again, once, for shards found bad), merges, recording the long-text
    report of the texts' `lengths` in WordPiece ids; returns the shards reused."""
    from pipeline.features import beam_storage

    texts_pattern = _stage_texts(job, unique_texts)
    report = length_report(lengths, job.max_seq_length, job.long_texts)
    records_before = beam_storage.shard_record_names(job.entry_path)
    log.info("Beam: %d texts in %d shard(s) of %d into %s", job.texts, cache.shard_count(job.texts, job.shard_rows),
             job.shard_rows, job.entry_path)
    for attempt in range(1, PIPELINE_ATTEMPTS + 1):
        try:
            _run_pipeline(options, texts_pattern, job)
        except UserError:
            beam_storage.remove_unused_parts(job.entry_path)
            raise
        records_after = beam_storage.shard_record_names(job.entry_path)
        reused = sum(1 for name, sha256 in records_before.items() if records_after.get(name) == sha256)
        description = cache.manifest_description(
            prepared.encoder.describe(), pooling=job.pooling, layers=job.layers, combine=job.combine,
            max_seq_length=job.max_seq_length, texts=job.texts, feature_size=job.feature_size,
            extraction_seconds=time.perf_counter() - started, long_texts=report)
        try:
            beam_storage.merge_entry(job.entry_path, job.key, sorted_digests=sorted_digests, shard_rows=job.shard_rows,
                                     width=job.feature_size, description=description, writer_tag=job.writer_tag)
            if not beam_storage.is_local(job.entry_path):
                beam_storage.remove_temporaries(job.entry_path, job.writer_tag)
            return reused
        except beam_storage.MergeProblems as problems:
            if attempt == PIPELINE_ATTEMPTS:
                raise UserError(f"the Beam pipeline finished, but shards of {job.entry_path} do not match their records "
                                f"({problems}); is another pipeline writing the same entry? Run the same command again "
                                f"when it is done") from None
            log.warning("shards to recompute after the Beam pipeline: %s", problems)
            beam_storage.forget_shards(job.entry_path, sorted(problems.bad_shards))
    raise AssertionError("unreachable")


def _stage_texts(job: ShardJob, unique_texts: list[str]) -> str:
    """The unique texts as JSON lines (one text a line, ASCII-escaped, so no text can split a line) in parts/,
    where every worker can read them; returns their file pattern."""
    from pipeline.features import beam_storage

    parts = beam_storage.join(job.entry_path, cache.PARTS_DIR)
    for number, start in enumerate(range(0, len(unique_texts), TEXTS_PER_STAGED_FILE)):
        lines = "".join(json.dumps(text) + "\n" for text in unique_texts[start : start + TEXTS_PER_STAGED_FILE])
        beam_storage.write_atomic(beam_storage.join(parts, f"texts-{number:05d}.jsonl"), lines.encode("ascii"),
                                  job.writer_tag)
    return beam_storage.join(parts, "texts-*.jsonl")


def _run_pipeline(options: PipelineOptions, texts_pattern: str, job: ShardJob) -> None:
    """Runs the pipeline to its end; a worker's UserError (marked) becomes this process's one `error:` line."""
    import apache_beam as beam

    from pipeline.features.beam_pipeline import WORKER_ERROR_MARK, add_extraction

    try:
        pipeline = beam.Pipeline(options=options)
        add_extraction(pipeline, texts_pattern, job)
        state = pipeline.run().wait_until_finish()
    except Exception as error:
        text = str(error)
        if WORKER_ERROR_MARK not in text:
            raise
        message = text.split(WORKER_ERROR_MARK, 1)[1].splitlines()[0].rstrip("'\"\\")
        raise UserError(message) from None
    if state is not None and str(state) not in ("DONE", "PipelineState.DONE"):
        raise UserError(f"the Beam pipeline ended in state {state}; finished shards are kept: look at the runner's "
                        f"logs, then run the same command again to resume")
