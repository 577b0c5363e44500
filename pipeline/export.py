"""Export a finished run as one SavedModel: raw strings in, class probabilities out.

The exported graph holds the in-graph tokenizer (`pipeline.graph_tokenizer`, equal to the
`FullTokenizer` that built the feature cache), the frozen encoder the run used, the run's pooling
and its trained head, so a user needs nothing of this package to use it:

    import tensorflow as tf, tensorflow_text  # tensorflow_text registers the tokenizer's ops
    model = tf.saved_model.load("exported/")
    model.signatures["serving_default"](texts=tf.constant(["a fine film"]))["probabilities"]
    model.signatures["labels"]()["labels"]    # class names, in probability-column order

This module imports TensorFlow only after the run folder and the output folder have been checked,
so bad input fails in a second with one line.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import EMBEDDED_ENCODER
from pipeline.errors import UserError
from pipeline.files import ensure_writable_dir, write_json_atomic
from pipeline.run import INCOMPLETE_MARKER, check_creatable

log = logging.getLogger(__name__)

EXPORT_INFO_FILE = "export_info.json"
EXPORT_FORMAT = "pipeline-end-to-end-savedmodel"
SERVING_SIGNATURE = "serving_default"
LABELS_SIGNATURE = "labels"
TOKENIZE_SIGNATURE = "tokenize"
# Texts the export is checked on before it is published: plain, empty, accented, over-long.
PROBE_TEXTS = ["a fine film", "", "Café crème, très BON!", "so very long " * 200]
# The exported graph pads a batch to its own longest row while the pipeline pads length-sorted
# batches, so float sums may differ in the last bits; anything larger is a bug.
PROBE_TOLERANCE = 1e-4
RUN_HINT = "pass a run folder written by `python -m pipeline run` (artifacts/runs/<time>-<name>)"


@dataclass(frozen=True)
class RunFolder:
    """What a complete run folder records about its model; reading it needs no TensorFlow."""

    run_dir: Path
    label_names: list[str]
    encoder_handle: str
    encoder_info: dict
    pooling: str
    max_seq_length: int

    @property
    def head_path(self) -> Path:
        return self.run_dir / "head.keras"


def read_run_folder(run_dir: str | os.PathLike) -> RunFolder:
    """Checks that `run_dir` holds a finished run and reads its settings; UserError otherwise."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UserError(f"run folder {run_dir} not found; {RUN_HINT}")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file, not a run folder; {RUN_HINT}")
    if (run_dir / INCOMPLETE_MARKER).exists():
        raise UserError(f"run folder {run_dir} is incomplete (the run was interrupted); run it again, then export the finished run")
    if not (run_dir / "metrics.json").is_file():
        raise UserError(f"run folder {run_dir} has no metrics.json, so its run did not finish; {RUN_HINT}")
    for name in ("config.json", "head.keras"):
        if not (run_dir / name).is_file():
            raise UserError(f"run folder {run_dir} has no {name}; {RUN_HINT}")
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        folder = RunFolder(
            run_dir=run_dir,
            label_names=[str(name) for name in config["labels"]],
            encoder_handle=str(config["encoder"]),
            encoder_info=dict(config["encoder_info"]),
            pooling=str(config["pooling"]),
            max_seq_length=int(config["max_seq_length"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"config.json of run folder {run_dir} is unreadable or lacks {error}; run again to write a complete one") from None
    return folder


@dataclass
class RunModel:
    """A run's encoder and head in memory; `predict` is the pipeline's own path (FullTokenizer + cache code)."""

    run: RunFolder
    encoder: object  # pipeline.encoder.Encoder
    head: object  # tf_keras.Model

    @property
    def label_names(self) -> list[str]:
        return self.run.label_names

    def predict(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """[N, K] float32 probabilities, computed exactly as a run computes its test predictions."""
        from pipeline.features import encode_texts
        from pipeline.head import predict_probabilities

        if not texts:
            return np.zeros((0, len(self.label_names)), np.float32)
        features = encode_texts(list(texts), self.encoder, pooling=self.run.pooling,
                                max_seq_length=self.run.max_seq_length, batch_size=batch_size)
        return predict_probabilities(self.head, features)


def load_run_model(run: RunFolder) -> RunModel:
    """Loads the encoder the run used and its head. TensorFlow must already be started."""
    import tf_keras as keras

    from pipeline.encoder import load_encoder

    encoder = load_encoder(_encoder_location(run))
    recorded = run.encoder_info.get("fingerprint")
    if recorded and recorded != encoder.fingerprint:
        log.warning("encoder %s differs from the one run %s was trained with (its files changed); "
                    "predictions may not match the run's", encoder.model_dir, run.run_dir)
    head = keras.models.load_model(str(run.head_path), compile=False)
    input_width = int(head.inputs[0].shape[-1])
    if input_width != encoder.hidden_size:
        raise UserError(
            f"the head in {run.run_dir} takes {input_width} features but encoder {encoder.model_dir} gives "
            f"{encoder.hidden_size}; the run's encoder is no longer where it was, pass the run folder of this encoder"
        )
    return RunModel(run=run, encoder=encoder, head=head)


def _encoder_location(run: RunFolder) -> str:
    """The folder the run loaded, when it is still there; else the recorded handle (the embedded name
    converts the model again, a URL is looked up in the TF-Hub cache)."""
    model_dir = run.encoder_info.get("model_dir")
    if run.encoder_handle != EMBEDDED_ENCODER and model_dir and (Path(model_dir) / "saved_model.pb").is_file():
        return model_dir
    return run.encoder_handle


def build_end_to_end_module(run_model: RunModel):
    """A tf.Module whose functions go from strings to probabilities, ready for tf.saved_model.save."""
    import tensorflow as tf

    from pipeline.encoder import pool
    from pipeline.graph_tokenizer import make_graph_tokenizer

    encoder, pooling = run_model.encoder, run_model.run.pooling
    module = tf.Module(name="end_to_end_classifier")
    module.tokenizer = make_graph_tokenizer(encoder.vocab_file, encoder.do_lower_case,
                                            max_seq_length=run_model.run.max_seq_length)
    # Attributes put the encoder's and head's variables into the SavedModel.
    module.encoder = encoder.layer
    module.head = run_model.head
    module.label_names = tf.Variable(run_model.label_names, dtype=tf.string, trainable=False, name="label_names")
    texts_spec = tf.TensorSpec([None], tf.string, name="texts")

    @tf.function(input_signature=[texts_spec])
    def tokenize(texts):
        return module.tokenizer(texts)

    @tf.function(input_signature=[texts_spec])
    def classify(texts):
        inputs = module.tokenizer(texts)
        outputs = encoder(inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"])
        features = tf.cast(pool(outputs, inputs["input_mask"], pooling), tf.float32)
        probabilities = tf.cast(module.head(features, training=False), tf.float32)
        if probabilities.shape[-1] == 1:  # a sigmoid head: both columns, as predict_probabilities gives
            probabilities = tf.concat([1.0 - probabilities, probabilities], axis=1)
        return {"probabilities": probabilities}

    @tf.function(input_signature=[])
    def labels():
        return {"labels": tf.identity(module.label_names)}

    module.classify, module.tokenize, module.labels = classify, tokenize, labels
    return module


def export_run(run_dir: str | os.PathLike, output_dir: str | os.PathLike, *, verbose: bool = False) -> Path:
    """Writes the run as one SavedModel into `output_dir` (which must not exist); returns that folder.

    The model is written into a temporary folder beside the output, checked against the pipeline
    on PROBE_TEXTS, and only then renamed, so `output_dir` either does not exist or is complete.
    """
    started = time.perf_counter()
    run = read_run_folder(run_dir)
    output_dir = Path(output_dir)
    if output_dir.exists():
        raise UserError(f"--output {output_dir} already exists; choose a new folder (an export never overwrites)")
    check_creatable(output_dir.parent, "--output")

    from pipeline.devices import known_tensorflow_noise_dropped, start_tensorflow

    start_tensorflow(verbose=verbose)
    import tensorflow as tf

    run_model = load_run_model(run)
    module = build_end_to_end_module(run_model)
    ensure_writable_dir(output_dir.parent, "--output")
    temporary_dir = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".tmp", dir=output_dir.parent))
    try:
        signatures = {
            SERVING_SIGNATURE: module.classify.get_concrete_function(),
            LABELS_SIGNATURE: module.labels.get_concrete_function(),
            TOKENIZE_SIGNATURE: module.tokenize.get_concrete_function(),
        }
        tf.saved_model.save(module, str(temporary_dir), signatures=signatures)
        with known_tensorflow_noise_dropped():  # the exported graph's first call prints a oneDNN note
            max_difference = _check_export(temporary_dir, run_model)
        write_json_atomic(temporary_dir / EXPORT_INFO_FILE, _export_info(run_model, max_difference))
        # mkdtemp and the atomic writer make owner-only files; a model is meant to be shared or served.
        _allow_by_umask(temporary_dir, 0o777)
        _allow_by_umask(temporary_dir / EXPORT_INFO_FILE, 0o666)
        log.info("exported %s in %.1f s (largest probe difference %.2e)", run.run_dir,
                 time.perf_counter() - started, max_difference)
        try:
            os.rename(temporary_dir, output_dir)
        except OSError:
            raise UserError(f"--output {output_dir} appeared while exporting; choose a new folder") from None
    except BaseException:
        shutil.rmtree(temporary_dir, ignore_errors=True)
        raise
    return output_dir


def _allow_by_umask(path: Path, mode: int) -> None:
    """Gives `path` the permissions a new file or folder would get from the user's umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def _check_export(export_dir: Path, run_model: RunModel) -> float:
    """Reloads the written model and compares it with the pipeline; a difference is a bug, not bad input."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(export_dir))
    exported = loaded.signatures[SERVING_SIGNATURE](texts=tf.constant(PROBE_TEXTS))["probabilities"].numpy()
    expected = run_model.predict(PROBE_TEXTS)
    if exported.shape != expected.shape:
        raise RuntimeError(f"exported model gives shape {exported.shape}, the pipeline {expected.shape}")
    max_difference = float(np.max(np.abs(exported - expected)))
    if not max_difference <= PROBE_TOLERANCE:
        raise RuntimeError(f"exported model differs from the pipeline by {max_difference:.3g} on the probe texts")
    return max_difference


def _export_info(run_model: RunModel, max_difference: float) -> dict:
    run, encoder = run_model.run, run_model.encoder
    return {
        "format": EXPORT_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_dir": str(run.run_dir.resolve()),
        "labels": run.label_names,
        "encoder": {"handle": run.encoder_handle, "model_dir": str(encoder.model_dir),
                    "fingerprint": encoder.fingerprint},
        "pooling": run.pooling,
        "max_seq_length": run.max_seq_length,
        "do_lower_case": encoder.do_lower_case,
        "signatures": {
            SERVING_SIGNATURE: "texts: string [batch] -> probabilities: float32 [batch, classes]",
            LABELS_SIGNATURE: "() -> labels: string [classes], the class of each probability column",
            TOKENIZE_SIGNATURE: "texts: string [batch] -> input_word_ids, input_mask, input_type_ids: int32",
        },
        "probe_max_difference": max_difference,
        "load_with": "import tensorflow as tf, tensorflow_text; tf.saved_model.load(folder)",
    }
