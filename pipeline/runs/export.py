"""Export a finished run as one SavedModel: raw strings in, class probabilities out.

The exported graph holds the in-graph tokenizer (`pipeline.encoders.graph_tokenizer`, equal to the
`FullTokenizer` that built the feature cache), the frozen encoder the run used, the run's pooling (layers and how they are combined)
and its trained head, so a user needs nothing of this package to use it:

    import tensorflow as tf, tensorflow_text  # tensorflow_text registers the tokenizer's ops
    model = tf.saved_model.load("exported/")
    model.signatures["serving_default"](texts=tf.constant(["a fine film"]))["probabilities"]
    model.signatures["labels"]()["labels"]    # class names, in probability-column order

This module imports TensorFlow only after the run folder and the output folder have been checked,
so bad input fails in a second with one line.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.base.errors import UserError
from pipeline.base.files import check_creatable, ensure_writable_dir, write_json_atomic
from pipeline.runs.exported_model import (
    EXPORT_FORMAT,
    EXPORT_INFO_FILE,
    LABELS_SIGNATURE,
    SERVING_SIGNATURE,
    TOKENIZE_SIGNATURE,
    ExportedModel,
)
from pipeline.runs.run_folder import read_run_folder

if TYPE_CHECKING:
    import tensorflow as tf

    from pipeline.runs.run_model import RunModel

log = logging.getLogger(__name__)
# Texts the export is checked on before it is published: plain, empty, accented, over-long.
PROBE_TEXTS = ["a fine film", "", "Café crème, très BON!", "so very long " * 200]
# The exported graph pads a batch to its own longest row while the pipeline pads length-sorted
# batches, so float sums may differ in the last bits; anything larger is a bug.
PROBE_TOLERANCE = 1e-4


def build_end_to_end_module(run_model: RunModel) -> tf.Module:
    """A tf.Module whose functions go from strings to probabilities, ready for tf.saved_model.save."""
    import tensorflow as tf

    from pipeline.encoders.graph_tokenizer import make_graph_tokenizer
    from pipeline.features.encoder_io import pool
    from pipeline.features.graph_long_texts import graph_segments, pack_segments, pool_per_text

    encoder, pooling = run_model.encoder, run_model.run.pooling
    module = tf.Module(name="end_to_end_classifier")
    module.tokenizer = make_graph_tokenizer(encoder.vocab_file, encoder.do_lower_case,
                                            max_seq_length=run_model.run.max_seq_length)
    # Attributes put the encoder's and head's variables into the SavedModel (a reduced-precision run's converted
    # weights, so the export computes as the run did).
    module.encoder = encoder.forward_layer
    module.head = run_model.head
    module.label_names = tf.Variable(run_model.label_names, dtype=tf.string, trainable=False, name="label_names")
    texts_spec = tf.TensorSpec([None], tf.string, name="texts")

    @tf.function(input_signature=[texts_spec])
    def tokenize(texts: tf.Tensor) -> dict[str, tf.Tensor]:
        return module.tokenizer(texts)

    long_texts = run_model.run.long_texts

    def encode(inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        outputs = encoder(inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"])
        return tf.cast(pool(outputs, inputs["input_mask"], pooling, run_model.run.layers, run_model.run.combine),
                       tf.float32)

    def text_features(texts: tf.Tensor) -> tf.Tensor:
        """As extraction computes them: truncated texts through the tokenizer's own packing; head and tail, or
        windows pooled per text, through the same reading as pipeline.features.long_texts."""
        if long_texts.strategy == "truncate":
            return encode(module.tokenizer(texts))
        segments, owner, weight = graph_segments(module.tokenizer.token_ids(texts), run_model.run.max_seq_length,
                                                 long_texts)
        vectors = encode(pack_segments(segments, cls_id=module.tokenizer.cls_id, sep_id=module.tokenizer.sep_id,
                                       pad_id=module.tokenizer.pad_id))
        if long_texts.strategy == "head-tail":  # one segment per text, in the texts' order
            return vectors
        return pool_per_text(vectors, owner, weight, tf.size(texts))

    regression = run_model.run.target.regression

    @tf.function(input_signature=[texts_spec])
    def classify(texts: tf.Tensor) -> dict[str, tf.Tensor]:
        features = text_features(texts)
        outputs = tf.cast(module.head(features, training=False), tf.float32)
        if regression:  # the target in its own units, one number per text
            return {"predictions": outputs}
        if outputs.shape[-1] == 1:  # a sigmoid head: both columns, as predict_probabilities gives
            outputs = tf.concat([1.0 - outputs, outputs], axis=1)
        return {"probabilities": outputs}

    @tf.function(input_signature=[])
    def labels() -> dict[str, tf.Tensor]:
        return {"labels": tf.identity(module.label_names)}

    module.classify, module.tokenize, module.labels = classify, tokenize, labels
    return module


def export_run(run_dir: str | os.PathLike[str], output_dir: str | os.PathLike[str], *, verbose: bool = False) -> Path:
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

    from pipeline.base.devices import known_tensorflow_noise_dropped, start_tensorflow

    start_tensorflow(verbose=verbose)
    import tensorflow as tf

    from pipeline.runs.run_model import load_run_model

    run_model = load_run_model(run)
    if run_model.encoder.graph_rewrite:  # a grappler option is not saved with a graph
        log.warning("run %s computed its features in %s through TensorFlow's graph rewrite, which an exported model "
                    "cannot carry; the export computes in float32 (features differ in the last digits)",
                    run.run_dir, run.precision)
        run_model = load_run_model(run, precision="float32")
    if run_model.encoder.precision == "int8":  # TFLite runs beside TensorFlow's graph, a SavedModel cannot hold it
        # One calm line whether int8 was asked for or chosen by `auto`: it is the documented behaviour, with nothing
        # for the user to fix, and the float32 features stay within int8's quality guard (docs/precision.md#int8).
        log.info("run %s computed its features with int8 weights through TFLite, which a SavedModel cannot carry; the "
                 "export computes them in float32 (within the cosine bound of docs/quality.md), so its probabilities "
                 "may differ slightly from the run's test predictions", run.run_dir)
        run_model = load_run_model(run, precision="float32")
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
        _allow_by_umask(temporary_dir / EXPORT_INFO_FILE, 0o666)
        log.info("exported %s in %.1f s (largest probe difference %.2e)", run.run_dir,
                 time.perf_counter() - started, max_difference)
        _publish(temporary_dir, output_dir)
    except BaseException:
        shutil.rmtree(temporary_dir, ignore_errors=True)
        raise
    return output_dir


def export_tuned_encoder(run_dir: str | os.PathLike[str], output_dir: str | os.PathLike[str], *,
                         verbose: bool = False) -> Path:
    """Copies a fine-tuned run's encoder to `output_dir` (which must not exist) as a TF-Hub dict-signature
    SavedModel that `--encoder` accepts; checked by loading it as the pipeline loads encoders."""
    run = read_run_folder(run_dir)
    output_dir = Path(output_dir)
    if not run.fine_tuned:
        raise UserError(f"run {run.run_dir} was not fine-tuned, so its encoder is the unchanged {run.encoder_handle}: "
                        f"pass that to --encoder, or export --encoder-only a run made with --fine-tune")
    if output_dir.exists():
        raise UserError(f"--output {output_dir} already exists; choose a new folder (an export never overwrites)")
    check_creatable(output_dir.parent, "--output")
    ensure_writable_dir(output_dir.parent, "--output")
    temporary_dir = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".tmp", dir=output_dir.parent))
    try:
        shutil.copytree(run.tuned_encoder_dir, temporary_dir, dirs_exist_ok=True)
        from pipeline.base.devices import start_tensorflow

        start_tensorflow(verbose=verbose)
        from pipeline.encoders.encoder import load_encoder

        copied = load_encoder(str(temporary_dir), reload=True)
        expected = run.metrics.get("fine_tune", {}).get("encoder_fingerprint")
        if copied.signature != "dict" or (expected and copied.fingerprint != expected):
            raise RuntimeError(f"the copied encoder differs from the run's ({copied.signature}, {copied.fingerprint})")
        _publish(temporary_dir, output_dir)
    except BaseException:
        shutil.rmtree(temporary_dir, ignore_errors=True)
        raise
    return output_dir


def _publish(temporary_dir: Path, output_dir: Path) -> None:
    """Renames the checked export into place. mkdtemp makes an owner-only folder; a model is meant to be
    shared or served, so it first gets the permissions the user's umask gives a new folder."""
    _allow_by_umask(temporary_dir, 0o777)
    try:
        os.rename(temporary_dir, output_dir)
    except OSError:
        raise UserError(f"--output {output_dir} appeared while exporting; choose a new folder") from None


def _allow_by_umask(path: Path, mode: int) -> None:
    """Gives `path` the permissions a new file or folder would get from the user's umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def _check_export(export_dir: Path, run_model: RunModel) -> float:
    """Reloads the written model as a user would and compares it with the pipeline; a difference is a bug."""
    exported = ExportedModel(export_dir).predict(PROBE_TEXTS)
    expected = run_model.predict(PROBE_TEXTS)
    if exported.shape != expected.shape:
        raise RuntimeError(f"exported model gives shape {exported.shape}, the pipeline {expected.shape}")
    max_difference = float(np.max(np.abs(exported - expected)))
    if not max_difference <= PROBE_TOLERANCE:
        raise RuntimeError(f"exported model differs from the pipeline by {max_difference:.3g} on the probe texts")
    return max_difference


def _export_info(run_model: RunModel, max_difference: float) -> dict[str, Any]:
    run, encoder = run_model.run, run_model.encoder
    return {
        "format": EXPORT_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_dir": str(run.run_dir.resolve()),
        "labels": run.label_names,
        "target": run.target.record(),  # several labels per text: each label's threshold, chosen on validation
        "encoder": {"handle": run.encoder_handle, "model_dir": str(encoder.model_dir),
                    "fingerprint": encoder.fingerprint},
        "pooling": run.pooling,
        "layers": list(run.layers),
        "combine": run.combine,
        "max_seq_length": run.max_seq_length,
        "long_texts": run.long_texts.record(),
        "do_lower_case": encoder.do_lower_case,
        "precision": encoder.precision,  # what the export computes in
        "run_precision": run.precision,  # what the run computed in: int8 or a graph rewrite export as float32
        "signatures": {
            SERVING_SIGNATURE: "texts: string [batch] -> probabilities: float32 [batch, classes] (several labels per "
                               "text: [batch, labels], each label's own probability; it applies when >= its "
                               "target.thresholds value; a number: predictions: float32 [batch, 1])",
            LABELS_SIGNATURE: "() -> labels: string [classes], the class (or label) of each probability column",
            TOKENIZE_SIGNATURE: "texts: string [batch] -> input_word_ids, input_mask, input_type_ids: int32 "
                                "(each text's first max_seq_length tokens; classify reads long texts as long_texts says)",
        },
        "probe_max_difference": max_difference,
        "load_with": "import tensorflow as tf, tensorflow_text; tf.saved_model.load(folder)",
    }
