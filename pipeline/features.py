"""Turn texts into pooled encoder vectors once, and keep them in a verifiable on-disk cache.

Layout of one cache entry, `<cache_dir>/<key>/`:
  shard-00000.npy ...   float32 [rows, hidden], rows in storage order (by token length, then text digest)
  digests.npy           uint8 [rows, 32]: SHA-256 of each text, in storage order (which row is which text)
  progress.json         shards finished so far, with their SHA-256 (lets a killed extraction resume)
  manifest.json         written last: what produced the arrays, every file's SHA-256, timings

The key covers the encoder's files, its vocabulary and lower-casing, max_seq_length, pooling and the
set of unique texts, so any change gives a new entry, while another split, head or seed of the same
data reuses the entry. Every file is written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import io
from array import array as int_array
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from filelock import FileLock, Timeout
from tqdm import tqdm

from pipeline.devices import extraction_precision
from pipeline.encoder import Encoder, pool
from pipeline.errors import UserError
from pipeline.files import bytes_sha256, ensure_writable_dir, npy_bytes, write_bytes_atomic, write_json_atomic
from tokenization.packing import pack_inputs

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
# Padded tokens per encoder call (rows are also capped by the batch size). Against 64 rows per call it
# pads less (+4% instead of +7% on snippets, +1% instead of +5% on reviews) and costs no more CPU per
# token; bigger calls cost more (docs/benchmarks.md, "What was tried").
TOKEN_BUDGET = 1024


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


@dataclass
class FeatureResult:
    """Features aligned with the texts asked for, and how they were obtained."""

    features: np.ndarray  # float32 [len(texts), hidden]
    cache_hit: bool
    seconds: float
    texts: int  # unique texts behind the features
    texts_per_second: float
    entry_dir: Path
    reused_shards: int = 0

    def summary(self) -> dict:
        return {
            "cache_hit": self.cache_hit,
            "seconds": round(self.seconds, 3),
            "texts": self.texts,
            "texts_per_second": round(self.texts_per_second, 1),
            "cache_entry": str(self.entry_dir),
            "reused_shards": self.reused_shards,
        }


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def digests_to_array(digests: list[bytes]) -> np.ndarray:
    """uint8 [N, 32]; numpy's fixed-width bytes dtype would drop a digest's trailing zero bytes."""
    return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), 32)


def digests_from_array(array: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in array]


def cache_key(encoder_description: dict, *, pooling: str, max_seq_length: int, sorted_digests: list[bytes]) -> str:
    """SHA-256 over everything that determines the features; the handle and folder are left out on purpose."""
    settings = {
        "format": CACHE_FORMAT_VERSION,
        "encoder_fingerprint": encoder_description["fingerprint"],
        "vocab_sha256": encoder_description["vocab_sha256"],
        "do_lower_case": encoder_description["do_lower_case"],
        "pooling": pooling,
        "max_seq_length": max_seq_length,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8"))
    for text_hash in sorted_digests:
        digest.update(text_hash)
    return digest.hexdigest()


def extract_features(
    texts: list[str],
    encoder: Encoder,
    *,
    pooling: str,
    max_seq_length: int,
    cache_dir: Path,
    batch_size: int = 64,
    show_progress: bool = True,
) -> FeatureResult:
    """Features for `texts` (duplicates allowed), from the cache when it holds them, else computed and cached."""
    started = time.perf_counter()
    unique_texts = list(dict.fromkeys(texts))
    digest_of = {text: text_digest(text) for text in unique_texts}
    key = cache_key(
        encoder.describe(), pooling=pooling, max_seq_length=max_seq_length, sorted_digests=sorted(digest_of.values())
    )
    ensure_writable_dir(cache_dir, "--cache-dir")
    entry_dir = cache_dir / key[:32]
    lock = FileLock(str(cache_dir / f".{key[:32]}.lock"))
    try:
        lock.acquire(timeout=0.5)
    except Timeout:  # another process is filling this entry: wait, then read what it wrote
        log.info("another process is extracting the same features into %s; waiting for it", entry_dir)
        lock.acquire()
    try:  # the OS drops the lock of a killed process, so a kill never blocks the next run
        _remove_leftovers(entry_dir)
        description = encoder.describe()
        stored = read_cache_entry(entry_dir, key, expected={
            "pooling": pooling, "max_seq_length": max_seq_length, "texts": len(unique_texts),
            "hidden_size": encoder.hidden_size, **{f"encoder.{name}": description[name]
                                                   for name in ("fingerprint", "vocab_sha256", "do_lower_case")},
        })
        cache_hit = stored is not None
        if cache_hit:  # a kill between writing the manifest and removing progress.json leaves it behind
            (entry_dir / "progress.json").unlink(missing_ok=True)
        reused_shards = 0
        if stored is None:
            stored, reused_shards = _compute_entry(
                unique_texts, digest_of, encoder, pooling=pooling, max_seq_length=max_seq_length,
                entry_dir=entry_dir, key=key, batch_size=batch_size, show_progress=show_progress,
            )
    finally:
        lock.release()
    storage_digests, storage_features = stored
    row_of = {text_hash: row for row, text_hash in enumerate(digests_from_array(storage_digests))}
    rows = np.fromiter((row_of[digest_of[text]] for text in texts), dtype=np.int64, count=len(texts))
    seconds = time.perf_counter() - started
    return FeatureResult(
        features=storage_features[rows],
        cache_hit=cache_hit,
        seconds=seconds,
        texts=len(unique_texts),
        texts_per_second=len(unique_texts) / max(seconds, 1e-9),
        entry_dir=entry_dir,
        reused_shards=reused_shards,
    )


def _remove_leftovers(entry_dir: Path) -> None:
    """Called under the lock, so a temporary file can only be a killed writer's half-written one."""
    for temporary in entry_dir.glob(".*.tmp"):
        temporary.unlink(missing_ok=True)


def read_cache_entry(entry_dir: Path, key: str, expected: dict | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(digests, features) of a complete, verified entry; None when absent or damaged (with one warning line).

    `expected` maps manifest fields ("encoder.fingerprint" for a nested one) to the values this run needs;
    the key already covers them, so a difference means an edited manifest.
    """
    manifest_path = entry_dir / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("key") != key or manifest.get("format") != CACHE_FORMAT_VERSION:
            raise ValueError("manifest.json does not match this cache key")
        for name, value in (expected or {}).items():
            recorded = _manifest_field(manifest, name)
            if recorded != value:
                raise ValueError(f"manifest.json records {name} {recorded!r}, this run needs {value!r}")
        problems, shards = [], []
        for record in [{"file": "digests.npy", "sha256": manifest["digests_sha256"]}, *manifest["shards"]]:
            try:  # check every file, so the one warning names all that is bad
                shards.append(_load_verified(entry_dir / record["file"], record["sha256"], rows=record.get("rows")))
            except ValueError as error:
                problems.append(str(error))
        if problems:
            raise ValueError("; ".join(problems))
        digests, shards = shards[0], shards[1:]
        features = np.concatenate(shards) if shards else np.zeros((0, manifest["hidden_size"]), np.float32)
        if features.dtype != np.float32 or digests.shape != (len(features), 32) or digests.dtype != np.uint8:
            raise ValueError("arrays do not match the manifest")
        return digests, features
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        log.warning("feature cache %s is damaged (%s); recomputing what is bad", entry_dir, error)
        return None


def _manifest_field(manifest: dict, dotted_name: str):
    value = manifest
    for part in dotted_name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


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


def _compute_entry(unique_texts, digest_of, encoder, *, pooling, max_seq_length, entry_dir, key, batch_size, show_progress):
    """Tokenizes, orders by length, encodes shard by shard, and writes the entry; reuses finished shards."""
    token_ids = _tokenize_all(unique_texts, encoder, max_seq_length, show_progress=show_progress)
    order = sorted(range(len(unique_texts)), key=lambda index: (len(token_ids[index]), digest_of[unique_texts[index]]))
    storage_digests = digests_to_array([digest_of[unique_texts[index]] for index in order])
    good_shards = _finished_shards(entry_dir, key)
    feature_fn = make_feature_function(encoder, pooling)
    cls_id, sep_id = encoder.tokenizer.vocab["[CLS]"], encoder.tokenizer.vocab["[SEP]"]
    shard_records, shard_arrays, reused = [], [], 0
    extraction_started = time.perf_counter()
    with tqdm(total=len(order), unit="text", desc="features", disable=not show_progress, smoothing=0.1) as progress:
        for shard_index, start in enumerate(range(0, len(order), SHARD_ROWS)):
            shard_order = order[start : start + SHARD_ROWS]
            file_name = f"shard-{shard_index:05d}.npy"
            record = good_shards.get(file_name)
            array = _reuse_shard(entry_dir / file_name, record, len(shard_order))
            if array is not None:
                reused += 1
                progress.update(len(shard_order))
            else:
                with extraction_precision():
                    array = _encode_rows([token_ids[index] for index in shard_order], feature_fn, batch_size,
                                         max_seq_length, cls_id, sep_id, progress=progress)
                payload = npy_bytes(array)
                write_bytes_atomic(entry_dir / file_name, payload)
                record = {"file": file_name, "rows": len(shard_order), "sha256": bytes_sha256(payload)}
            shard_records.append(record)
            shard_arrays.append(array)
            # Shards of an earlier attempt not reached yet stay listed, so a kill now does not forget them.
            not_reached = [good_shards[name] for name in sorted(good_shards) if name > file_name]
            write_json_atomic(entry_dir / "progress.json", {"key": key, "shards": shard_records + not_reached})
    seconds = time.perf_counter() - extraction_started
    features = np.concatenate(shard_arrays) if shard_arrays else np.zeros((0, encoder.hidden_size), np.float32)
    digests_payload = npy_bytes(storage_digests)
    write_bytes_atomic(entry_dir / "digests.npy", digests_payload)
    write_json_atomic(entry_dir / "manifest.json", {
        "key": key,
        "format": CACHE_FORMAT_VERSION,
        "encoder": encoder.describe(),
        "pooling": pooling,
        "max_seq_length": max_seq_length,
        "texts": len(unique_texts),
        "hidden_size": int(features.shape[1]),
        "digests_sha256": bytes_sha256(digests_payload),
        "shards": shard_records,
        "extraction_seconds": round(seconds, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    (entry_dir / "progress.json").unlink(missing_ok=True)
    if reused:
        log.info("reused %d finished shard(s) of an interrupted extraction", reused)
    return (storage_digests, features), reused


def _finished_shards(entry_dir: Path, key: str) -> dict[str, dict]:
    """Verified shard records from an earlier attempt (progress.json, or a damaged entry's manifest).

    A recorded shard that fails its check is left out, so it is recomputed. It is reported here in one
    line unless a manifest exists, because then read_cache_entry has already reported it.
    """
    records: dict[str, dict] = {}
    for name in ("manifest.json", "progress.json"):
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
    if problems and not (entry_dir / "manifest.json").is_file():
        log.warning("feature cache %s: %s; recomputing those shards", entry_dir, "; ".join(problems))
    return records


def _reuse_shard(path: Path, record: dict | None, rows: int) -> np.ndarray | None:
    if record is None or record.get("rows") != rows or not path.is_file():
        return None
    try:
        array = _load_verified(path, record["sha256"], rows=rows)
    except (ValueError, KeyError) as error:  # _finished_shards checked it; this catches a change since then
        log.warning("feature shard %s is damaged (%s); recomputing it", path, error)
        return None
    return array if array.dtype == np.float32 and len(array) == rows else None


def _token_ids(encoder: Encoder, text: str, max_seq_length: int) -> list[int]:
    """WordPiece ids of one text, cut to leave room for [CLS] and [SEP]."""
    return encoder.tokenizer.encode(text)[: max_seq_length - 2]


def _tokenize_all(texts: list[str], encoder: Encoder, max_seq_length: int, *, show_progress: bool) -> list[int_array]:
    """Ids of every text, each kept as a compact int32 array (100,000 reviews: 36 MB rather than 62 MB of lists).

    The tokenizer memoises per word, so this runs at tens of thousands of texts per second: under
    1% of the encoder's time, which is why it is not overlapped with the encoder (docs/benchmarks.md).
    """
    with tqdm(texts, unit="text", desc="tokenizing", disable=not show_progress, smoothing=0.1,
              mininterval=0.5) as progress:
        return [int_array("i", _token_ids(encoder, text, max_seq_length)) for text in progress]


# Traced feature functions by (encoder layer, pooling): tracing and graph optimisation take a second or
# two, so a process that extracts several times (predict, notebooks, the benchmark) pays them once.
_FEATURE_FUNCTIONS: dict[tuple[int, str], tuple[object, object]] = {}


def make_feature_function(encoder: Encoder, pooling: str):
    """One traced graph per encoder and pooling: encoder call plus pooling, only the pooled rows come back.

    The sequence output never leaves the graph, so at most one batch of it exists at a time. Input
    shapes are dynamic ([None, None]): one trace serves every batch width. XLA (jit_compile) was
    measured and left out: 0-10% less CPU per token, but 1-2 s of compilation per new shape.
    """
    key = (id(encoder.layer), pooling)
    cached = _FEATURE_FUNCTIONS.get(key)
    if cached is not None and cached[0] is encoder.layer:
        return cached[1]
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec, spec])
    def features(input_word_ids, input_mask, input_type_ids):
        outputs = encoder(input_word_ids, input_mask, input_type_ids)
        return tf.cast(pool(outputs, input_mask, pooling), tf.float32)

    _FEATURE_FUNCTIONS[key] = (encoder.layer, features)
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


def _encode_rows(rows_token_ids, feature_fn, batch_size, max_seq_length, cls_id, sep_id, progress=None) -> np.ndarray:
    """Encodes rows already sorted by length, each batch padded only to its own longest row.

    A batch holds at most `batch_size` rows and TOKEN_BUDGET padded tokens, so short texts go many
    to a call and long ones few. Only the pooled [batch, hidden] rows come back from the graph; they
    go straight into one preallocated array: a shard's features plus one batch in flight.
    """
    output = None
    for start, end in _batch_bounds([len(row) for row in rows_token_ids], batch_size, TOKEN_BUDGET):
        batch = pack_inputs(rows_token_ids[start:end], max_seq_length=max_seq_length, cls_id=cls_id, sep_id=sep_id)
        vectors = feature_fn(tf.constant(batch["input_word_ids"]), tf.constant(batch["input_mask"]),
                             tf.constant(batch["input_type_ids"])).numpy()
        if output is None:
            output = np.empty((len(rows_token_ids), vectors.shape[1]), dtype=np.float32)
        output[start : start + len(vectors)] = vectors
        if progress is not None:
            progress.update(len(vectors))
    return output if output is not None else np.zeros((0, 0), np.float32)


def encode_texts(texts: list[str], encoder: Encoder, *, pooling: str, max_seq_length: int, batch_size: int = 64) -> np.ndarray:
    """Features without the cache, in the order given (for predict and small checks)."""
    token_ids = [_token_ids(encoder, text, max_seq_length) for text in texts]
    order = sorted(range(len(texts)), key=lambda index: len(token_ids[index]))
    cls_id, sep_id = encoder.tokenizer.vocab["[CLS]"], encoder.tokenizer.vocab["[SEP]"]
    if not texts:
        return np.zeros((0, encoder.hidden_size), np.float32)
    with extraction_precision():
        ordered = _encode_rows([token_ids[index] for index in order], make_feature_function(encoder, pooling),
                               batch_size, max_seq_length, cls_id, sep_id)
    result = np.empty_like(ordered)
    result[np.array(order)] = ordered
    return result
