"""Load a frozen TF-Hub BERT encoder and call it one way, whichever of the two hub signatures it has.

Old encoders (e.g. bert_en_uncased_L-12_H-768_A-12/1) take a list [word ids, mask, segment ids] and
return [pooled_output, sequence_output]; newer ones take and return dicts. `Encoder.__call__` hides
the difference. The tokenizer always comes from the model's own vocab asset and lower-casing flag.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tensorflow as tf

if TYPE_CHECKING:  # imported where a model is loaded: a run whose features are cached never loads one
    import tensorflow_hub as hub

from pipeline.base.config import EMBEDDED_ENCODER
from pipeline.base.config import models_dir as default_models_dir
from pipeline.base.errors import UserError
from pipeline.base.files import file_sha256
from pipeline.encoders.model_info import MODEL_INFO_FILENAME, read_model_info
from tokenization import FullTokenizer

log = logging.getLogger(__name__)

_KAGGLE_HANDLE = re.compile(r"^[\w.-]+/[\w.-]+/[\w.-]+/[\w.-]+(/\d+)?$")
_LOADED: dict[tuple[str, str], Encoder] = {}  # by (SavedModel folder, precision)
DEFAULT_MAX_POSITIONS = 512


@dataclass
class Encoder:
    """A loaded encoder with what the rest of the pipeline needs to know about it."""

    handle: str
    model_dir: Path
    layer_source: SavedModelLayer  # the hub layer, loaded on first use (see `layer`)
    signature: str  # "dict" (new hub BERT) or "list" (old hub BERT)
    tokenizer: FullTokenizer
    vocab_file: Path
    do_lower_case: bool
    hidden_size: int
    max_seq_length: int
    fingerprint: str
    vocab_sha256: str  # hashed once at load: the cache key and every run config need it
    recommended_pooling: str | None
    available_layers: int  # layer outputs the encoder returns: every layer (dict signature), or only the last
    precision: str = "float32"  # of the encoder's matrix products: float32, bfloat16, float16 or int8
    # How a reduced precision is had: "rebuilt" (our converter's graph traced again, pipeline.encoders.reduced_precision),
    # "graph rewrite" (grappler's, for encoders from elsewhere) or "tflite dynamic-range int8" (pipeline.encoders.int8);
    # None for float32.
    precision_method: str | None = None
    reduced_layer: Any = None  # the rebuilt or int8 encoder, called instead of `layer` when there is one
    graph_rewrite: str | None = None  # grappler option switched on while the encoder runs (pipeline.base.devices)

    @property
    def layer(self) -> hub.KerasLayer:
        """The frozen hub layer. For an encoder our converter wrote, what the pipeline needs to know about it is
        read from its notes, and the SavedModel itself is loaded here, on first use: a run whose features are
        all cached never loads it (the time and memory saved: docs/benchmarks-history.md)."""
        return self.layer_source.get()

    @property
    def all_layers_given(self) -> bool:
        return self.signature == "dict"

    @property
    def forward_layer(self) -> Any:
        """What runs the texts: the reduced-precision rebuild when there is one, else the hub layer."""
        return self.reduced_layer if self.reduced_layer is not None else self.layer

    @property
    def concurrent_batches(self) -> int:
        """Batches worth computing at once: more than one only for an encoder that runs calls side by side
        (the int8 one's interpreters); TensorFlow's own kernels already use every core for one batch."""
        return int(getattr(self.forward_layer, "concurrent_calls", 1))

    def __call__(self, input_word_ids: tf.Tensor, input_mask: tf.Tensor, input_type_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        """Runs the frozen encoder: {'pooled_output': [B, H], 'sequence_output': [B, T, H],
        'encoder_outputs': a [B, T, H] tensor per layer (only the last for an old list-signature encoder)}."""
        return call_encoder_layer(self.forward_layer, self.signature, input_word_ids, input_mask, input_type_ids)

    def describe(self) -> dict[str, Any]:
        """What identifies this encoder, for cache manifests and run configs."""
        return {
            "handle": self.handle,
            "model_dir": str(self.model_dir),
            "signature": self.signature,
            "fingerprint": self.fingerprint,
            "vocab_sha256": self.vocab_sha256,
            "do_lower_case": self.do_lower_case,
            "hidden_size": self.hidden_size,
            "max_seq_length": self.max_seq_length,
            "available_layers": self.available_layers,
            "precision": self.precision,
            "precision_method": self.precision_method,
        }


def load_encoder(handle: str = EMBEDDED_ENCODER, *, models_dir: Path | None = None, reload: bool = False,
                 precision: str = "float32") -> Encoder:
    """Resolves a handle to a local SavedModel and loads it once per process (again with `reload`, for a
    folder just rewritten, such as a fine-tuned run's encoder); `precision` as settled by
    pipeline.base.precision.decide_precision (the float32 weights are converted once per process)."""
    model_dir = resolve_handle(handle, models_dir=models_dir)
    key = (str(model_dir.resolve()), precision)
    if reload or key not in _LOADED:
        float32_key = (key[0], "float32")
        if reload or float32_key not in _LOADED:
            _LOADED[float32_key] = _load_from_dir(handle, model_dir)
        if precision != "float32":
            _LOADED[key] = with_precision(_LOADED[float32_key], precision)
    return _LOADED[key]


def rebuildable(encoder: Encoder) -> bool:
    """True when `encoder` can compute in a reduced precision by the pipeline's own rebuild (see with_precision)."""
    from pipeline.encoders.reduced_precision import can_rebuild

    if encoder.layer_source.described_by_notes:  # our converter's, checked against its variables when loaded
        return True
    return can_rebuild(encoder.layer.resolved_object, read_model_info(encoder.model_dir))


def with_precision(encoder: Encoder, precision: str) -> Encoder:
    """The same encoder computing in `precision`: our converter's encoders are rebuilt with their dense
    weights converted (fast on hardware with that precision); others get grappler's rewrite, with a warning."""
    from pipeline.base.devices import GRAPH_REWRITES
    from pipeline.encoders.reduced_precision import ReducedPrecisionEncoder

    if precision == "int8":
        return _with_int8(encoder)
    if rebuildable(encoder):
        return dataclasses.replace(encoder, precision=precision, precision_method="rebuilt", reduced_layer=
                                   ReducedPrecisionEncoder(encoder.layer.resolved_object, read_model_info(encoder.model_dir),
                                                           precision))
    log.warning("encoder %s was not converted by this pipeline, so %s comes from TensorFlow's generic graph "
                "rewrite (%s), which was slower than float32 on our own encoder; compare with --precision float32",
                encoder.handle, precision, GRAPH_REWRITES[precision])
    return dataclasses.replace(encoder, precision=precision, precision_method="graph rewrite",
                               graph_rewrite=GRAPH_REWRITES[precision])


def _with_int8(encoder: Encoder) -> Encoder:
    """Our converter's encoders only (pipeline.encoders.int8); pipeline.base.precision.decide_precision has
    already sent others to float32, so one reaching here is a caller's mistake. The SavedModel is loaded only
    if the int8 model has to be converted from it."""
    from pipeline.encoders.int8 import METHOD, Int8Encoder, ensure_int8_model

    if not rebuildable(encoder):
        raise ValueError(f"encoder {encoder.handle} was not converted by this pipeline; int8 needs one that was")
    path = ensure_int8_model(encoder.model_dir, encoder.fingerprint, lambda: encoder.layer.resolved_object,
                             read_model_info(encoder.model_dir))
    return dataclasses.replace(encoder, precision="int8", precision_method=METHOD,
                               reduced_layer=Int8Encoder(path, encoder.available_layers, encoder.hidden_size))


def resolve_handle(handle: str, *, models_dir: Path | None = None) -> Path:
    """Embedded name, local folder, URL or Kaggle handle -> a local SavedModel folder."""
    if handle == EMBEDDED_ENCODER:
        from pipeline.encoders.embedded import ensure_embedded_model

        return ensure_embedded_model(models_dir or default_models_dir())
    if handle.startswith(("http://", "https://")) or _looks_like_kaggle_handle(handle):
        return _resolve_remote(handle)
    path = Path(handle).expanduser()
    if not path.exists():
        raise UserError(
            f"encoder {handle!r} is neither a local folder nor a URL; pass a SavedModel folder, "
            f"a tfhub.dev URL, a Kaggle handle, or {EMBEDDED_ENCODER}"
        )
    if not (path / "saved_model.pb").is_file():
        raise UserError(
            f"encoder folder {handle} is not a SavedModel (no saved_model.pb); pass the folder that holds "
            f"saved_model.pb, or convert a Hugging Face checkpoint with `python -m pipeline convert`"
        )
    return path


def _looks_like_kaggle_handle(handle: str) -> bool:
    return not Path(handle).expanduser().exists() and bool(_KAGGLE_HANDLE.match(handle))


def _resolve_remote(handle: str) -> Path:
    """Downloads (or finds in TFHUB_CACHE_DIR) a hub model; offline, says what to do instead."""
    url = handle if handle.startswith("http") else f"https://www.kaggle.com/models/{handle}"
    import tensorflow_hub as hub

    try:
        return Path(hub.resolve(url))
    except Exception as error:  # hub raises many types for "no network"; all mean the same here
        log.debug("hub.resolve(%s) failed: %r", url, error)
        raise UserError(
            f"cannot fetch encoder {handle!r} (no network, or the handle is wrong); download it elsewhere "
            f"and set TFHUB_CACHE_DIR to that cache, or pass the local SavedModel folder with --encoder PATH"
        ) from None


class SavedModelLayer:
    """The encoder folder's hub.KerasLayer, loaded once, on the first `get` (from any thread).

    `notes`: what our converter recorded (pipeline_model.json), when it says all the pipeline needs; the
    loaded model is then checked against them, so notes that do not match their model stop the run
    instead of going unnoticed. Without notes (a TF-Hub model) the model itself must say what it is, so
    `_load_from_dir` loads it at once."""

    def __init__(self, model_dir: Path, notes: dict[str, Any] | None = None):
        self.model_dir = model_dir
        self.notes = notes
        self._layer: hub.KerasLayer | None = None
        self._lock = threading.Lock()

    @property
    def described_by_notes(self) -> bool:
        return self.notes is not None

    def get(self) -> hub.KerasLayer:
        with self._lock:
            if self._layer is None:
                layer = _load_layer(self.model_dir)
                if self.notes is not None:
                    _check_notes(layer, self.model_dir, self.notes)
                self._layer = layer
            return self._layer


def _load_layer(model_dir: Path) -> hub.KerasLayer:
    import tensorflow_hub as hub

    try:
        return hub.KerasLayer(str(model_dir), trainable=False)
    except Exception as error:
        raise UserError(
            f"encoder folder {model_dir} could not be loaded as a TF-Hub SavedModel "
            f"({type(error).__name__}); pass a TF-Hub BERT encoder folder"
        ) from None


# What our converter writes into pipeline_model.json, enough to describe the encoder without loading it.
_DESCRIBING_NOTES = {"signature": str, "hidden_size": int, "num_layers": int, "num_attention_heads": int,
                     "max_seq_length": int, "do_lower_case": bool}


def notes_describing(model_dir: Path, info: dict[str, Any]) -> dict[str, Any] | None:
    """`info` (pipeline_model.json) when it describes a dict-signature encoder with its vocabulary where our
    converter puts it; None otherwise (the SavedModel is then asked instead)."""
    described = all(isinstance(info.get(key), kind) for key, kind in _DESCRIBING_NOTES.items())
    if described and info["signature"] == "dict" and (model_dir / "assets" / "vocab.txt").is_file():
        return info
    return None


def _check_notes(layer: hub.KerasLayer, model_dir: Path, notes: dict[str, Any]) -> None:
    """The loaded model must be what its notes said: same signature, width, layers, lower-casing and variables."""
    from pipeline.encoders.reduced_precision import can_rebuild

    resolved = layer.resolved_object
    _, do_lower_case = _tokenizer_assets(resolved, model_dir)
    found = dict(zip(("signature", "hidden_size", "num_layers"), _detect_signature(layer, model_dir)),
                 do_lower_case=do_lower_case)
    differing = sorted(key for key, value in found.items() if notes[key] != value)
    if differing or not can_rebuild(resolved, notes):
        what = ", ".join(differing) if differing else "variable names"
        raise UserError(f"{model_dir / MODEL_INFO_FILENAME} does not match the SavedModel beside it ({what}); "
                        f"convert the model again with `python -m pipeline convert`")


def _load_from_dir(handle: str, model_dir: Path) -> Encoder:
    info = read_model_info(model_dir)
    notes = notes_describing(model_dir, info)
    if notes is not None:
        source = SavedModelLayer(model_dir, notes)
        vocab_file, do_lower_case = model_dir / "assets" / "vocab.txt", bool(notes["do_lower_case"])
        signature, hidden_size, available_layers = "dict", int(notes["hidden_size"]), int(notes["num_layers"])
        max_seq_length = int(notes["max_seq_length"])
    else:
        source = SavedModelLayer(model_dir)
        layer = source.get()
        resolved = layer.resolved_object
        vocab_file, do_lower_case = _tokenizer_assets(resolved, model_dir)
        signature, hidden_size, available_layers = _detect_signature(layer, model_dir)
        max_seq_length = int(info.get("max_seq_length") or _max_positions(resolved))
    return Encoder(
        handle=handle,
        model_dir=model_dir,
        layer_source=source,
        signature=signature,
        tokenizer=FullTokenizer(str(vocab_file), do_lower_case=do_lower_case),
        vocab_file=vocab_file,
        do_lower_case=do_lower_case,
        hidden_size=hidden_size,
        max_seq_length=max_seq_length,
        fingerprint=model_fingerprint(model_dir),
        vocab_sha256=file_sha256(vocab_file),
        recommended_pooling=info.get("recommended_pooling"),
        available_layers=available_layers,
    )


def _tokenizer_assets(resolved: Any, model_dir: Path) -> tuple[Path, bool]:
    """The model's own vocab asset and lower-casing flag: the tokenizer must match the model exactly."""
    if not hasattr(resolved, "vocab_file") or not hasattr(resolved, "do_lower_case"):
        raise UserError(
            f"SavedModel {model_dir} has no vocab_file asset or do_lower_case variable, so it is not a "
            f"TF-Hub BERT encoder; pass a BERT encoder from TF-Hub or one made by `python -m pipeline convert`"
        )
    vocab_file = Path(resolved.vocab_file.asset_path.numpy().decode("utf-8"))
    return vocab_file, bool(resolved.do_lower_case.numpy())


def call_encoder_layer(layer: hub.KerasLayer, signature: str, input_word_ids: tf.Tensor, input_mask: tf.Tensor,
                       input_type_ids: tf.Tensor, *, training: bool | None = None) -> dict[str, tf.Tensor]:
    """One call of a hub encoder layer, either signature, as {'pooled_output', 'sequence_output', 'encoder_outputs'}."""
    if signature == "dict":
        outputs = layer(
            {"input_word_ids": input_word_ids, "input_mask": input_mask, "input_type_ids": input_type_ids},
            training=training,
        )
        sequence_output = outputs["sequence_output"]
        return {"pooled_output": outputs["pooled_output"], "sequence_output": sequence_output,
                "encoder_outputs": list(outputs.get("encoder_outputs") or [sequence_output])}
    pooled_output, sequence_output = layer([input_word_ids, input_mask, input_type_ids], training=training)
    return {"pooled_output": pooled_output, "sequence_output": sequence_output, "encoder_outputs": [sequence_output]}


def _detect_signature(layer: hub.KerasLayer, model_dir: Path) -> tuple[str, int, int]:
    """Tries the new dict signature, then the old list one, on a 1x4 probe; returns (signature, hidden size,
    number of layer outputs).

    The probe uses ids 1 and 2 because every vocabulary, even a 100-word test one, has them.
    """
    probe = tf.constant([[1, 2, 0, 0]], dtype=tf.int32), tf.constant([[1, 1, 0, 0]], dtype=tf.int32)
    type_ids = tf.zeros_like(probe[0])
    for signature in ("dict", "list"):
        try:
            outputs = call_encoder_layer(layer, signature, probe[0], probe[1], type_ids)
        except Exception as error:  # a wrong signature fails in TF's own ways (ValueError, TypeError, ...)
            log.debug("signature %s failed on %s: %r", signature, model_dir, error)
            continue
        pooled, sequence = outputs["pooled_output"], outputs["sequence_output"]
        if pooled.shape.rank == 2 and sequence.shape.rank == 3 and pooled.shape[-1] == sequence.shape[-1]:
            return signature, int(pooled.shape[-1]), len(outputs["encoder_outputs"])
    raise UserError(
        f"SavedModel {model_dir} does not give BERT outputs (pooled_output and sequence_output) for "
        f"input_word_ids, input_mask and type ids; pass a TF-Hub BERT encoder, not a preprocessor or other model"
    )


def _max_positions(resolved: Any) -> int:
    """The position-embedding table's height is the longest sequence the model accepts."""
    for variable in getattr(resolved, "variables", []):
        if "position_embedding" in variable.name and variable.shape.rank == 2:
            return int(variable.shape[0])
    return DEFAULT_MAX_POSITIONS


def model_fingerprint(model_dir: Path) -> str:
    """SHA-256 over every file of the SavedModel (names and bytes): any change to the model changes it."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(model_dir).as_posix()
        if relative == MODEL_INFO_FILENAME:
            continue  # notes about the model, not the model
        digest.update(relative.encode("utf-8") + b"\0")
        digest.update(file_sha256(path).encode("ascii"))
    return digest.hexdigest()
