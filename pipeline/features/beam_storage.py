"""The Beam runner's cache files, through Beam's FileSystems (a local path, gs://, s3://, hdfs://): atomic
writes, streamed SHA-256 checks, the shard records workers write, and the manifest the launcher merges.

The format is pipeline.features.cache's; this module only reads and writes it where Python's own file functions
cannot reach. No array is ever loaded whole: shards are checked by streaming their bytes, so the
launcher verifies an entry of any size in constant memory. Arrays are read with allow_pickle=False.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.base.errors import UserError
from pipeline.base.files import bytes_sha256, npy_bytes
from pipeline.features import cache

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
TEMPORARY_SUFFIX = ".tmp"


# ============================================================================ files


def join(base: str, *names: str) -> str:
    return FileSystems.join(base, *names)


def is_local(path: str) -> bool:
    """True for a plain path (Beam's LocalFileSystem), which also takes the local runner's file lock."""
    return FileSystems.get_scheme(path) is None


def check_filesystem(path: str, option: str) -> None:
    """Fails early, in one line, for a path on a filesystem this Beam installation cannot open."""
    try:
        FileSystems.get_filesystem(path)
    except (ValueError, BeamIOError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{option} {path}: Beam cannot open this filesystem ({first_line}); pass a local folder, "
                        f"or install the Beam extra for it (e.g. pip install 'apache-beam[gcp]==2.77.0' for gs://)") from None


def exists(path: str) -> bool:
    return bool(FileSystems.exists(path))


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return handle.read()


def write_atomic(path: str, payload: bytes, writer_tag: str) -> None:
    """Writes `payload` to a temporary name beside `path`, then renames it: a reader sees the old file or the
    whole new one. `writer_tag` names the writing run in the temporary name, so its leftovers can be found."""
    folder, name = FileSystems.split(path)
    temporary = join(folder, f".{name}.{writer_tag}-{uuid.uuid4().hex[:12]}{TEMPORARY_SUFFIX}")
    try:
        with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            handle.write(payload)
        FileSystems.rename([temporary], [path])
    except BaseException as error:
        try:
            FileSystems.delete([temporary])
        except (BeamIOError, OSError):
            pass  # never created, or already renamed
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(f"no space left on the device while writing {path}; free some space and run the same "
                            f"command again (finished shards are kept)") from None
        raise


def delete_if_present(paths: list[str]) -> None:
    present = [path for path in paths if exists(path)]
    if present:
        FileSystems.delete(present)


def names_in(folder: str, pattern: str) -> list[str]:
    """File names in `folder` matching the glob `pattern` (no error when the folder does not exist)."""
    matched = FileSystems.match([join(folder, pattern)])[0].metadata_list
    return sorted(FileSystems.split(metadata.path)[1] for metadata in matched)


def remove_temporaries(folder: str, writer_tag: str = "") -> None:
    """Half-written temporary files in `folder`: every one when the caller holds the entry's lock (no writer
    can be running), else only those of the run named by `writer_tag`."""
    delete_if_present([join(folder, name) for name in names_in(folder, f".*.{writer_tag}*{TEMPORARY_SUFFIX}")])


class _HashingReader:
    """Reads a file while hashing every byte read, so a header can be parsed and the whole file hashed in one pass."""

    def __init__(self, handle: IO[bytes]):
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def check_streamed_array(path: str, expected_sha256: str, *, rows: int, width: int | None,
                         dtype: np.dtype[Any]) -> None:
    """ValueError naming the fault unless `path` is a plain .npy of `rows` rows (and `width` columns) of `dtype`
    whose bytes have `expected_sha256`; reads the file in chunks, never whole."""
    name = FileSystems.split(path)[1]
    try:
        handle = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except (BeamIOError, OSError):
        raise ValueError(f"{name} is missing or cannot be read") from None
    with handle:
        reader = _HashingReader(handle)
        try:
            version = np.lib.format.read_magic(reader)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran_order, stored_dtype = read_header(reader)
        except ValueError as error:
            raise ValueError(f"{name} is not a .npy array ({error})") from None
        while reader.read(CHUNK_BYTES):
            pass
    if reader.digest.hexdigest() != expected_sha256:
        raise ValueError(f"{name} does not match its recorded SHA-256 (truncated or altered)")
    expected_shape = (rows,) if width is None else (rows, width)
    if stored_dtype.hasobject or stored_dtype != dtype or fortran_order or tuple(shape)[: len(expected_shape)] != expected_shape:
        raise ValueError(f"{name} holds {stored_dtype} {tuple(shape)}, expected {dtype} {expected_shape}")


def load_small_array(path: str, expected_sha256: str) -> np.ndarray:
    """A small array (a shard's digests) read whole, checked against its SHA-256, never unpickled."""
    name = FileSystems.split(path)[1]
    try:
        payload = read_bytes(path)
    except (BeamIOError, OSError):
        raise ValueError(f"{name} is missing or cannot be read") from None
    if bytes_sha256(payload) != expected_sha256:
        raise ValueError(f"{name} does not match its recorded SHA-256 (truncated or altered)")
    try:
        return np.load(io.BytesIO(payload), allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"{name} is not a plain numeric array ({error})") from None


# ============================================================================ shards, by the workers


def write_shard(entry_path: str, key: str, shard_index: int, features: np.ndarray, row_lengths: list[int],
                row_digests: list[bytes], writer_tag: str) -> cache.ShardRecord:
    """Writes one shard, its row digests, and last its record (so a record always means a complete shard)."""
    features_payload = npy_bytes(features)
    digests_payload = npy_bytes(cache.digests_to_array(row_digests))
    parts = join(entry_path, cache.PARTS_DIR)
    write_atomic(join(entry_path, cache.shard_file_name(shard_index)), features_payload, writer_tag)
    write_atomic(join(parts, cache.shard_digests_file_name(shard_index)), digests_payload, writer_tag)
    record = cache.shard_part_record(key, shard_index, rows=len(features), sha256=bytes_sha256(features_payload),
                                     digests_sha256=bytes_sha256(digests_payload),
                                     first_row=(row_lengths[0], row_digests[0]), last_row=(row_lengths[-1], row_digests[-1]),
                                     writer=writer_tag)
    write_atomic(join(parts, cache.shard_record_file_name(shard_index)), cache.json_payload(record), writer_tag)
    return record


def reusable_shard(entry_path: str, key: str, shard_index: int, row_digests: list[bytes], width: int) -> bool:
    """True when an earlier attempt finished this very shard: its record names the same rows (by their digests)
    and the shard file still has the recorded bytes. Anything else is recomputed."""
    parts = join(entry_path, cache.PARTS_DIR)
    try:
        record = cache.check_shard_part_record(json.loads(read_bytes(join(parts, cache.shard_record_file_name(shard_index)))),
                                               key, shard_index, len(row_digests))
    except (BeamIOError, OSError, ValueError):
        return False
    if record["digests_sha256"] != bytes_sha256(npy_bytes(cache.digests_to_array(row_digests))):
        return False
    try:
        check_streamed_array(join(entry_path, record["file"]), record["sha256"], rows=len(row_digests), width=width,
                             dtype=np.dtype(np.float32))
    except ValueError as error:
        log.warning("feature shard %s of an earlier attempt is damaged (%s); recomputing it", shard_index, error)
        return False
    return True


# ============================================================================ the entry, by the launcher


@dataclass
class MergeProblems(Exception):
    """Shards whose files do not match their records (or have none); the launcher recomputes them."""

    bad_shards: dict[int, str]

    def __str__(self) -> str:
        return "; ".join(f"shard {index}: {problem}" for index, problem in sorted(self.bad_shards.items()))


def shard_record_names(entry_path: str) -> dict[str, str]:
    """{record file name: its SHA-256} of the shard records present now (to count what a run reused)."""
    parts = join(entry_path, cache.PARTS_DIR)
    return {name: bytes_sha256(read_bytes(join(parts, name))) for name in names_in(parts, "shard-*.json")}


def _verified_parts(entry_path: str, key: str, *, texts: int, shard_rows: int, width: int) -> Iterator[tuple[int, Any]]:
    """(shard index, record or the problem as a string) for every shard, each checked by streaming its bytes."""
    parts = join(entry_path, cache.PARTS_DIR)
    for shard_index in range(cache.shard_count(texts, shard_rows)):
        rows = cache.shard_rows_of(shard_index, texts, shard_rows)
        try:
            record_path = join(parts, cache.shard_record_file_name(shard_index))
            try:
                record = cache.check_shard_part_record(json.loads(read_bytes(record_path)), key, shard_index, rows)
            except (BeamIOError, OSError):
                raise ValueError("its record is missing") from None
            check_streamed_array(join(entry_path, record["file"]), record["sha256"], rows=rows, width=width,
                                 dtype=np.dtype(np.float32))
            digests = load_small_array(join(parts, record["digests_file"]), record["digests_sha256"])
            if digests.dtype != np.uint8 or digests.shape != (rows, 32):
                raise ValueError(f"{record['digests_file']} holds {digests.dtype} {digests.shape}")
            yield shard_index, (record, digests)
        except ValueError as error:
            yield shard_index, str(error)


def merge_entry(entry_path: str, key: str, *, sorted_digests: list[bytes], shard_rows: int, width: int,
                description: Mapping[str, Any], writer_tag: str) -> list[cache.ShardRecord]:
    """Checks every worker's shard, then writes digests.npy and, last, manifest.json, and removes parts/.

    Raises MergeProblems naming the shards that are missing or do not match their records (nothing is
    written then). The digests of all texts are held (32 bytes a text); the features never are.
    """
    texts = len(sorted_digests)
    problems: dict[int, str] = {}
    shards: list[cache.ShardRecord] = []
    digest_blocks: list[np.ndarray] = []
    previous_last: tuple[int, str] | None = None
    for shard_index, outcome in _verified_parts(entry_path, key, texts=texts, shard_rows=shard_rows, width=width):
        if isinstance(outcome, str):
            problems[shard_index] = outcome
            continue
        record, digests = outcome
        first_row, last_row = tuple(record["first_row"]), tuple(record["last_row"])
        if previous_last is not None and not previous_last < first_row:
            problems[shard_index] = "its rows do not follow the previous shard's in storage order"
        previous_last = last_row
        shards.append({"file": record["file"], "rows": record["rows"], "sha256": record["sha256"]})
        digest_blocks.append(digests)
    if problems:
        raise MergeProblems(problems)
    storage_digests = np.concatenate(digest_blocks) if digest_blocks else np.zeros((0, 32), np.uint8)
    if sorted(cache.digests_from_array(storage_digests)) != sorted_digests:
        raise MergeProblems({index: "the shards together do not hold exactly this entry's texts"
                             for index in range(len(shards))})
    digests_payload = npy_bytes(storage_digests)
    write_atomic(join(entry_path, cache.DIGESTS_FILE), digests_payload, writer_tag)
    delete_if_present([join(entry_path, cache.PROGRESS_FILE)])  # a local runner's interrupted attempt
    manifest = cache.manifest_record(description, key=key, digests_sha256=bytes_sha256(digests_payload), shards=shards,
                                     created=cache.manifest_time())
    write_atomic(join(entry_path, cache.MANIFEST_FILE), cache.json_payload(manifest), writer_tag)
    delete_if_present([join(entry_path, cache.PARTS_DIR)])
    return shards


def remove_unused_parts(entry_path: str) -> None:
    """After a pipeline that stopped on bad input: the staged texts go, and the entry folder too when nothing else
    is in it; finished shards and their records stay for the next attempt."""
    parts = join(entry_path, cache.PARTS_DIR)
    if names_in(parts, "shard-*"):
        return
    delete_if_present([parts])
    if is_local(entry_path) and not names_in(entry_path, "*"):
        delete_if_present([entry_path])


def forget_shards(entry_path: str, shard_indices: list[int]) -> None:
    """Removes the records of shards found bad, so the next pipeline attempt recomputes them."""
    parts = join(entry_path, cache.PARTS_DIR)
    delete_if_present([join(parts, cache.shard_record_file_name(index)) for index in shard_indices])


def verified_manifest(entry_path: str, key: str, expected: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest of a complete entry whose every file matches it (streamed), else None (one warning when
    an entry exists but is damaged): read_cache_entry's checks, without loading the features."""
    manifest_path = join(entry_path, cache.MANIFEST_FILE)
    if not exists(manifest_path):
        return None
    try:
        manifest = json.loads(read_bytes(manifest_path))
        if not isinstance(manifest, dict) or manifest.get("key") != key or manifest.get("format") != cache.CACHE_FORMAT_VERSION:
            raise ValueError("manifest.json does not match this cache key")
        for name, value in expected.items():
            recorded: Any = manifest
            for part in name.split("."):
                recorded = recorded.get(part) if isinstance(recorded, dict) else None
            if recorded != value:
                raise ValueError(f"manifest.json records {name} {recorded!r}, this run needs {value!r}")
        problems = []
        rows_total = 0
        for record in manifest["shards"]:
            rows_total += record["rows"]
            try:
                check_streamed_array(join(entry_path, record["file"]), record["sha256"], rows=record["rows"],
                                     width=manifest["feature_size"], dtype=np.dtype(np.float32))
            except ValueError as error:
                problems.append(str(error))
        try:
            check_streamed_array(join(entry_path, cache.DIGESTS_FILE), manifest["digests_sha256"], rows=rows_total,
                                 width=32, dtype=np.dtype(np.uint8))
        except ValueError as error:
            problems.append(str(error))
        if problems:
            raise ValueError("; ".join(problems))
        return manifest
    except (BeamIOError, OSError, ValueError, KeyError, TypeError) as error:
        log.warning("feature cache %s is damaged (%s); recomputing what is bad", entry_path, error)
        return None
