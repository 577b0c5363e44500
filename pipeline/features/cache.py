"""The feature cache's on-disk format: key, shards, manifest, verification, resume and lock.

Layout of one cache entry, `<cache_dir>/<key[:32]>/`:
  shard-00000.npy ...   float32 [rows, hidden], rows in storage order (by token length, then text digest)
  digests.npy           uint8 [rows, 32]: SHA-256 of each text, in storage order (which row is which text)
  progress.json         shards finished so far, with their SHA-256 (lets a killed extraction resume)
  manifest.json         written last: what produced the arrays, every file's SHA-256, timings

The key covers the encoder's files, its vocabulary and lower-casing, max_seq_length, pooling, what is read
of long texts (when not truncated) and the set of unique texts, so any change gives a new entry, while another split, head or seed of the same
data reuses the entry. Every file is written to a temporary name and renamed when complete.

This module knows nothing of encoders or TensorFlow: an extraction runner computes the key, opens
the entry with `locked_entry`, and hands it finished shards. Any runner that does so writes the same
format, and every reader verifies it the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from pipeline.base.errors import UserError
from pipeline.base.files import bytes_sha256, ensure_writable_dir, npy_bytes, write_bytes_atomic, write_json_atomic

log = logging.getLogger(__name__)

# 2: the key also covers the chosen layers and how they are combined (version 1 entries are not read).
CACHE_FORMAT_VERSION = 2
MANIFEST_FILE = "manifest.json"
PROGRESS_FILE = "progress.json"
DIGESTS_FILE = "digests.npy"
FULL_PRECISION = "float32"  # the encoder description's precision when it gives none
TRUNCATE = "truncate"  # the long-text strategy of entries that do not name one
ShardRecord = dict[str, Any]  # {"file": name, "rows": count, "sha256": hex digest}, as stored in JSON
_UNREAD = object()  # a manifest not read yet


def _shard_rows_setting(default: int = 4096) -> int:
    """Rows per shard. PIPELINE_SHARD_ROWS is a test and tuning knob (small shards make a kill land
    between shards in a short test); it is read once, when this module is imported."""
    text = os.environ.get("PIPELINE_SHARD_ROWS", "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) <= 0:
        raise UserError(f"PIPELINE_SHARD_ROWS must be a positive whole number, got {text!r}; unset it or fix it")
    return int(text)


SHARD_ROWS = _shard_rows_setting()


def shard_file_name(shard_index: int) -> str:
    return f"shard-{shard_index:05d}.npy"


# ============================================================================ keys and digests


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def digests_to_array(digests: list[bytes]) -> np.ndarray:
    """uint8 [N, 32]; numpy's fixed-width bytes dtype would drop a digest's trailing zero bytes."""
    return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), 32)


def digests_from_array(array: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in array]


def cache_key(encoder_description: Mapping[str, Any], *, pooling: str, layers: tuple[int, ...], combine: str,
              max_seq_length: int, sorted_digests: list[bytes], long_texts: Mapping[str, Any] | None = None) -> str:
    """SHA-256 over everything that determines the features; the handle and folder are left out on purpose."""
    settings = {
        "format": CACHE_FORMAT_VERSION,
        "encoder_fingerprint": encoder_description["fingerprint"],
        "vocab_sha256": encoder_description["vocab_sha256"],
        "do_lower_case": encoder_description["do_lower_case"],
        "pooling": pooling,
        "layers": list(layers),
        "combine": combine,
        "max_seq_length": max_seq_length,
    }
    # float32 entries keep the keys they had before the precision existed, so caches already filled stay valid.
    precision = encoder_description.get("precision", FULL_PRECISION)
    if precision != FULL_PRECISION:
        settings["precision"] = precision
    # Likewise truncation, what every entry did before long texts could be read otherwise.
    if long_texts is not None and long_texts.get("strategy", TRUNCATE) != TRUNCATE:
        settings["long_texts"] = dict(long_texts)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8"))
    for text_hash in sorted_digests:
        digest.update(text_hash)
    return digest.hexdigest()


def expected_manifest_fields(encoder_description: Mapping[str, Any], *, pooling: str, layers: tuple[int, ...],
                             combine: str, max_seq_length: int, texts: int, feature_size: int,
                             long_texts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a reader checks in an entry's manifest (see read_cache_entry); every extraction runner writes them."""
    expected = {
        "pooling": pooling, "layers": list(layers), "combine": combine, "max_seq_length": max_seq_length,
        "texts": texts, "feature_size": feature_size,
        **{f"encoder.{name}": encoder_description[name] for name in ("fingerprint", "vocab_sha256", "do_lower_case")},
    }
    precision = encoder_description.get("precision", FULL_PRECISION)
    if precision != FULL_PRECISION:  # manifests from before the precision existed are float32 and do not say so
        expected["encoder.precision"] = precision
    if long_texts is not None and long_texts.get("strategy", TRUNCATE) != TRUNCATE:  # older manifests truncated
        expected.update({f"long_texts.{name}": value for name, value in long_texts.items()})
    return expected


def manifest_description(encoder_description: Mapping[str, Any], *, pooling: str, layers: tuple[int, ...],
                         combine: str, max_seq_length: int, texts: int, feature_size: int,
                         extraction_seconds: float, long_texts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What produced an entry's arrays, as its manifest records it (CacheEntry.finish adds key, files and time);
    `long_texts` is the long-text report: the strategy's settings, how many texts were cut, their token lengths."""
    return {
        **({"long_texts": dict(long_texts)} if long_texts is not None else {}),
        "encoder": dict(encoder_description),
        "pooling": pooling,
        "layers": list(layers),
        "combine": combine,
        "max_seq_length": max_seq_length,
        "texts": texts,
        "feature_size": feature_size,
        "extraction_seconds": round(extraction_seconds, 3),
    }


def storage_order(token_lengths: list[int], digests: list[bytes]) -> list[int]:
    """Row order of an entry: by token length (so batches pad little), ties by text digest (so it is one order)."""
    return sorted(range(len(digests)), key=lambda index: (token_lengths[index], digests[index]))


# ============================================================================ one entry


@contextmanager
def locked_entry(cache_dir: Path, key: str) -> Iterator[CacheEntry]:
    """The entry for `key`, held under a file lock for the block; a second process waits, then reads.

    The operating system drops the lock of a killed process, so a kill never blocks the next run.
    """
    ensure_writable_dir(cache_dir, "--cache-dir")
    entry = CacheEntry(cache_dir, key)
    lock = FileLock(str(cache_dir / f".{key[:32]}.lock"))
    try:
        lock.acquire(timeout=0.5)
    except Timeout:  # another process is filling this entry: wait, then read what it wrote
        log.info("another process is extracting the same features into %s; waiting for it", entry.directory)
        lock.acquire()
    try:
        _remove_leftovers(entry.directory)
        yield entry
    finally:
        lock.release()


class CacheEntry:
    """One entry: read it whole and verified, or write it shard by shard, reusing an earlier attempt's shards."""

    def __init__(self, cache_dir: Path, key: str):
        self.key = key
        self.directory = cache_dir / key[:32]
        self.reused_shards = 0
        self._earlier: dict[str, ShardRecord] = {}
        self._written: list[ShardRecord] = []
        self._manifest: Any = _UNREAD

    def manifest(self) -> Any:
        """The entry's manifest.json as parsed JSON (None when there is none), read from disk once."""
        if self._manifest is _UNREAD:
            self._manifest = read_manifest(self.directory)
        return self._manifest

    def read(self, expected: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(digests, features) when the entry is complete and verified, else None (see read_cache_entry)."""
        stored = read_cache_entry(self.directory, self.key, expected, manifest=self.manifest())
        if stored is not None:  # a kill between writing the manifest and removing progress.json leaves it behind
            (self.directory / PROGRESS_FILE).unlink(missing_ok=True)
        return stored

    def recorded_long_texts(self) -> dict[str, Any] | None:
        """The long-text report the entry's manifest holds; None for an entry written before it was recorded."""
        return long_texts_report(self.manifest())

    def begin_writing(self) -> None:
        """Collects the verified shards of an earlier, interrupted attempt, so they can be reused."""
        self._earlier = _finished_shards(self.directory, self.key)
        self._written = []
        self.reused_shards = 0

    def reuse_shard(self, shard_index: int, rows: int) -> np.ndarray | None:
        """The earlier attempt's shard `shard_index` if it is intact and has `rows` rows; it then counts as written."""
        file_name = shard_file_name(shard_index)
        record = self._earlier.get(file_name)
        array = _reuse_shard(self.directory / file_name, record, rows)
        if array is None or record is None:
            return None
        self.reused_shards += 1
        self._record(record)
        return array

    def write_shard(self, shard_index: int, features: np.ndarray) -> None:
        payload = npy_bytes(features)
        file_name = shard_file_name(shard_index)
        write_bytes_atomic(self.directory / file_name, payload)
        self._record({"file": file_name, "rows": len(features), "sha256": bytes_sha256(payload)})

    def _record(self, record: ShardRecord) -> None:
        self._written.append(record)
        # Shards of an earlier attempt not reached yet stay listed, so a kill now does not forget them.
        not_reached = [self._earlier[name] for name in sorted(self._earlier) if name > record["file"]]
        write_json_atomic(self.directory / PROGRESS_FILE, {"key": self.key, "shards": self._written + not_reached})

    def finish(self, storage_digests: np.ndarray, description: Mapping[str, Any]) -> None:
        """Writes digests.npy and, last, the manifest (`description` says what produced the arrays)."""
        digests_payload = npy_bytes(storage_digests)
        write_bytes_atomic(self.directory / DIGESTS_FILE, digests_payload)
        manifest = {
            **description,
            "key": self.key,
            "format": CACHE_FORMAT_VERSION,
            "digests_sha256": bytes_sha256(digests_payload),
            "shards": self._written,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json_atomic(self.directory / MANIFEST_FILE, manifest)
        self._manifest = json.loads(json.dumps(manifest))  # as a reader would parse it
        (self.directory / PROGRESS_FILE).unlink(missing_ok=True)
        if self.reused_shards:
            log.info("reused %d finished shard(s) of an interrupted extraction", self.reused_shards)


def _remove_leftovers(entry_dir: Path) -> None:
    """Called under the lock, so a temporary file can only be a killed writer's half-written one."""
    for temporary in entry_dir.glob(".*.tmp"):
        temporary.unlink(missing_ok=True)


# ============================================================================ verification


def read_manifest(entry_dir: Path) -> Any:
    """An entry's manifest.json as parsed JSON; None when the entry has none; the error (returned, not raised) when
    it cannot be read, for read_cache_entry to report."""
    try:
        return json.loads((entry_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        return error


def read_cache_entry(entry_dir: Path, key: str, expected: Mapping[str, Any] | None = None, *,
                     manifest: Any = _UNREAD) -> tuple[np.ndarray, np.ndarray] | None:
    """(digests, features) of a complete, verified entry; None when absent or damaged (with one warning line).

    `expected` maps manifest fields ("encoder.fingerprint" for a nested one) to the values this run needs;
    the key already covers them, so a difference means an edited manifest. `manifest`: the entry's manifest as
    `read_manifest` gave it, when the caller has read it already.
    """
    if manifest is _UNREAD:
        manifest = read_manifest(entry_dir)
    if manifest is None:
        return None
    try:
        if isinstance(manifest, (OSError, ValueError)):
            raise manifest
        if not isinstance(manifest, dict) or manifest.get("key") != key or manifest.get("format") != CACHE_FORMAT_VERSION:
            raise ValueError("manifest.json does not match this cache key")
        for name, value in (expected or {}).items():
            recorded = _manifest_field(manifest, name)
            if recorded != value:
                raise ValueError(f"manifest.json records {name} {recorded!r}, this run needs {value!r}")
        problems = []
        try:  # check every file, so the one warning names all that is bad
            digests = _load_verified(entry_dir / DIGESTS_FILE, manifest["digests_sha256"])
        except ValueError as error:
            problems.append(str(error))
        # The shards are read straight into one array: no copy per shard, and none to join them.
        records = manifest["shards"]
        features = np.empty((sum(int(record["rows"]) for record in records), int(manifest["feature_size"])), np.float32)
        start = 0
        for record in records:
            rows = int(record["rows"])
            try:
                _read_verified_into(entry_dir / record["file"], record["sha256"], features[start:start + rows])
            except ValueError as error:
                problems.append(str(error))
            start += rows
        if problems:
            raise ValueError("; ".join(problems))
        if digests.shape != (len(features), 32) or digests.dtype != np.uint8:
            raise ValueError("arrays do not match the manifest")
        return digests, features
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        log.warning("feature cache %s is damaged (%s); recomputing what is bad", entry_dir, error)
        return None


def long_texts_report(manifest: Any) -> dict[str, Any] | None:
    """The long-text report a manifest holds; None for entries written before it was recorded."""
    recorded = manifest.get("long_texts") if isinstance(manifest, dict) else None
    return recorded if isinstance(recorded, dict) and "token_length" in recorded else None


def _manifest_field(manifest: Mapping[str, Any], dotted_name: str) -> Any:
    value: Any = manifest
    for part in dotted_name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def recorded_setting(manifest: Mapping[str, Any], dotted_name: str) -> Any:
    """A manifest field by its dotted name ("encoder.fingerprint"), with what older entries meant by saying
    nothing: an entry from before the precision was recorded is float32, one from before the long-text reading
    was recorded truncated."""
    value = _manifest_field(manifest, dotted_name)
    if value is None and dotted_name == "encoder.precision":
        return FULL_PRECISION
    if value is None and dotted_name == "long_texts.strategy":
        return TRUNCATE
    return value


# ============================================================================ lookup


@dataclass
class HeldEntry:
    """A complete entry of the settings asked for that says it holds some of the texts asked for."""

    directory: Path
    key: str
    manifest: dict[str, Any]  # read once, by entries_holding
    digests: set[bytes]  # the wanted texts' digests its digests.npy lists: hints until read_held_entry verifies them


def entries_holding(cache_dir: Path, wanted: set[bytes], encoder_description: Mapping[str, Any], *, pooling: str,
                    layers: tuple[int, ...], combine: str, max_seq_length: int, feature_size: int,
                    long_texts: Mapping[str, Any]) -> list[HeldEntry]:
    """Every complete entry in `cache_dir` made with this encoder and these settings, long-text reading included
    (truncation's entries serve every reading when none of their texts was cut), that lists some of the `wanted`
    text digests; in folder order. An entry whose files are damaged may be among them: read_held_entry says."""
    expected = expected_manifest_fields(encoder_description, pooling=pooling, layers=layers, combine=combine,
                                        max_seq_length=max_seq_length, texts=0, feature_size=feature_size)
    del expected["texts"]
    expected["encoder.precision"] = encoder_description.get("precision", FULL_PRECISION)
    readings = [{f"long_texts.{name}": value for name, value in long_texts.items()}]
    if long_texts.get("strategy") != TRUNCATE:
        readings.append({"long_texts.strategy": TRUNCATE, "long_texts.texts_cut": 0})
    found = []
    for manifest_path in sorted(cache_dir.glob(f"*/{MANIFEST_FILE}")) if cache_dir.is_dir() else []:
        manifest = read_manifest(manifest_path.parent)
        if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT_VERSION:
            continue  # a command reading this entry reports it; here it just serves nothing
        if not isinstance(manifest.get("key"), str) or not isinstance(manifest.get("texts"), int):
            continue
        if all(recorded_setting(manifest, name) == value for name, value in expected.items()) and any(
                all(recorded_setting(manifest, name) == value for name, value in fields.items()) for fields in readings):
            held = {digest for digest in _digest_hints(manifest_path.parent) if digest in wanted}
            if held:
                found.append(HeldEntry(manifest_path.parent, manifest["key"], manifest, held))
    return found


def read_held_entry(entry: HeldEntry, encoder_description: Mapping[str, Any], *, pooling: str, layers: tuple[int, ...],
                    combine: str, max_seq_length: int, feature_size: int,
                    long_texts: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(digests, features) of an entry entries_holding found, verified as a command verifies an entry it reads
    (read_cache_entry, against the manifest entries_holding read); None when damaged."""
    same_reading = recorded_setting(entry.manifest, "long_texts.strategy") == long_texts["strategy"]
    expected = expected_manifest_fields(encoder_description, pooling=pooling, layers=layers, combine=combine,
                                        max_seq_length=max_seq_length, texts=entry.manifest["texts"],
                                        feature_size=feature_size, long_texts=long_texts if same_reading else None)
    return read_cache_entry(entry.directory, entry.key, expected, manifest=entry.manifest)


def _digest_hints(entry_dir: Path) -> list[bytes]:
    """The digests an entry says it holds, unverified: only to choose which entries to read (and verify)."""
    try:
        array = np.load(entry_dir / DIGESTS_FILE, allow_pickle=False)
    except (OSError, ValueError):
        return []
    if array.dtype != np.uint8 or array.ndim != 2 or array.shape[1] != 32:
        return []
    return digests_from_array(array)


def _load_verified(path: Path, expected_sha256: str, rows: int | None = None) -> np.ndarray:
    """The array in `path` if its bytes have the recorded SHA-256 and hold plain numbers; ValueError naming the fault."""
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path.name} is missing") from None
    except OSError as error:
        raise ValueError(f"{path.name} cannot be read ({error.strerror})") from None
    if bytes_sha256(payload) != expected_sha256:
        raise ValueError(f"{path.name} does not match its recorded SHA-256 (truncated or altered)")
    try:
        array = np.load(io.BytesIO(payload), allow_pickle=False)  # the bytes just hashed, not a second read
    except ValueError as error:  # object arrays need pickle, which is refused
        raise ValueError(f"{path.name} is not a plain numeric array ({error})") from None
    if rows is not None and len(array) != rows:
        raise ValueError(f"{path.name} has {len(array)} rows, the manifest says {rows}")
    return array


def _read_verified_into(path: Path, expected_sha256: str, destination: np.ndarray) -> None:
    """Fills `destination` (a C-ordered float32 block) from the .npy file at `path`, whose bytes must have the
    recorded SHA-256 and hold a plain float32 array of exactly that shape; ValueError naming the fault. A file
    of any other layout is read the general way (`_load_verified`), so its fault is named as it always was."""
    try:
        with path.open("rb") as handle:
            try:
                version = np.lib.format.read_magic(handle)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}[version]
                shape, fortran_order, dtype = read_header(handle)
            except (ValueError, KeyError):
                shape, fortran_order, dtype = None, None, None
            if dtype == np.dtype("<f4") and fortran_order is False and shape == destination.shape:
                header = handle.tell()
                handle.seek(0)
                digest = hashlib.sha256(handle.read(header))
                data = destination.data.cast("B")
                complete = handle.readinto(data) == data.nbytes and not handle.read(1)
                digest.update(data)
                if not complete or digest.hexdigest() != expected_sha256:
                    raise ValueError(f"{path.name} does not match its recorded SHA-256 (truncated or altered)")
                return
    except FileNotFoundError:
        raise ValueError(f"{path.name} is missing") from None
    except OSError as error:
        raise ValueError(f"{path.name} cannot be read ({error.strerror})") from None
    array = _load_verified(path, expected_sha256, rows=len(destination))
    if array.dtype != np.float32 or array.shape != destination.shape:
        raise ValueError("arrays do not match the manifest")
    destination[...] = array


def _finished_shards(entry_dir: Path, key: str) -> dict[str, ShardRecord]:
    """Verified shard records from an earlier attempt (progress.json, or a damaged entry's manifest).

    A recorded shard that fails its check is left out, so it is recomputed. It is reported here in one
    line unless a manifest exists, because then read_cache_entry has already reported it.
    """
    records: dict[str, ShardRecord] = {}
    for name in (MANIFEST_FILE, PROGRESS_FILE):
        try:
            recorded = json.loads((entry_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(recorded, dict) and recorded.get("key") == key and isinstance(recorded.get("shards"), list):
            records.update({shard["file"]: shard for shard in recorded["shards"]
                            if isinstance(shard, dict) and isinstance(shard.get("file"), str)
                            and isinstance(shard.get("sha256"), str) and isinstance(shard.get("rows"), int)})
    problems = []
    for file_name, record in list(records.items()):
        try:
            _load_verified(entry_dir / file_name, record["sha256"], rows=record["rows"])
        except ValueError as error:
            problems.append(str(error))
            del records[file_name]
    if problems and not (entry_dir / MANIFEST_FILE).is_file():
        log.warning("feature cache %s: %s; recomputing those shards", entry_dir, "; ".join(problems))
    return records


def _reuse_shard(path: Path, record: ShardRecord | None, rows: int) -> np.ndarray | None:
    if record is None or record.get("rows") != rows or not path.is_file():
        return None
    try:
        array = _load_verified(path, record["sha256"], rows=rows)
    except (ValueError, KeyError) as error:  # _finished_shards checked it; this catches a change since then
        log.warning("feature shard %s is damaged (%s); recomputing it", path, error)
        return None
    return array if array.dtype == np.float32 and len(array) == rows else None


# ============================================================================ entries filled by many workers
# A runner whose workers write the shards (the Beam runner) cannot share progress.json: each worker
# writes its shard, then beside it, in the entry's parts/ folder, the shard's row digests and a small
# record (written last, so a record means a complete shard). The launcher checks every shard against
# its record, writes digests.npy and the manifest, and removes parts/: the finished entry is laid out
# exactly as the local runner lays it out.

PARTS_DIR = "parts"


def has_entry(cache_dir: Path, key: str) -> bool:
    """True when the entry of `key` has a manifest: it is complete, unless damaged (its read says)."""
    return (cache_dir / entry_dir_name(key) / MANIFEST_FILE).is_file()


def entry_dir_name(key: str) -> str:
    """The entry's folder name inside the cache folder (CacheEntry uses the same)."""
    return key[:32]


def shard_count(texts: int, shard_rows: int) -> int:
    return -(-texts // shard_rows)


def shard_rows_of(shard_index: int, texts: int, shard_rows: int) -> int:
    """Rows of shard `shard_index`: `shard_rows`, except the last shard, which holds the rest."""
    return min(shard_rows, texts - shard_index * shard_rows)


def shard_record_file_name(shard_index: int) -> str:
    return f"shard-{shard_index:05d}.json"


def shard_digests_file_name(shard_index: int) -> str:
    return f"shard-{shard_index:05d}.digests.npy"


def shard_part_record(key: str, shard_index: int, *, rows: int, sha256: str, digests_sha256: str,
                      first_row: tuple[int, bytes], last_row: tuple[int, bytes], writer: str) -> ShardRecord:
    """A worker's record of one finished shard. `first_row` and `last_row` are (token length, text digest)
    of its first and last rows, so the launcher can check that the shards follow one another in storage order;
    `writer` names the run that wrote it (a launcher counts the records it found and did not rewrite)."""
    return {
        "key": key, "writer": writer, "file": shard_file_name(shard_index), "rows": rows, "sha256": sha256,
        "digests_file": shard_digests_file_name(shard_index), "digests_sha256": digests_sha256,
        "first_row": [first_row[0], first_row[1].hex()], "last_row": [last_row[0], last_row[1].hex()],
    }


def check_shard_part_record(record: Any, key: str, shard_index: int, rows: int) -> ShardRecord:
    """`record` if it is a well-formed record of shard `shard_index` of entry `key` with `rows` rows; else ValueError."""
    name = shard_record_file_name(shard_index)
    if not isinstance(record, dict) or record.get("key") != key:
        raise ValueError(f"{name} is not a record of this cache key")
    if record.get("file") != shard_file_name(shard_index) or record.get("digests_file") != shard_digests_file_name(shard_index):
        raise ValueError(f"{name} names other files")
    if record.get("rows") != rows:
        raise ValueError(f"{name} records {record.get('rows')!r} rows, shard {shard_index} has {rows}")
    for field in ("sha256", "digests_sha256"):
        if not isinstance(record.get(field), str) or len(record[field]) != 64:
            raise ValueError(f"{name} has no valid {field}")
    for field in ("first_row", "last_row"):
        value = record.get(field)
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) and isinstance(value[1], str)):
            raise ValueError(f"{name} has no valid {field}")
    return record


def manifest_record(description: Mapping[str, Any], *, key: str, digests_sha256: str, shards: list[ShardRecord],
                    created: str) -> dict[str, Any]:
    """The manifest of a finished entry, as CacheEntry.finish writes it; `shards` holds {"file", "rows", "sha256"}."""
    return {
        **description,
        "key": key,
        "format": CACHE_FORMAT_VERSION,
        "digests_sha256": digests_sha256,
        "shards": shards,
        "created": created,
    }


def manifest_time() -> str:
    """The manifest's "created" field, formatted as CacheEntry.finish formats it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def json_payload(value: Any) -> bytes:
    """JSON bytes as the cache writes them (files.write_json_atomic's formatting)."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8")
