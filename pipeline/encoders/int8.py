"""An encoder converted by this pipeline, run with int8 weights on a CPU: TFLite dynamic-range quantization.

Why this route (docs/precision.md, measured on a 2-core Zen 3): TensorFlow has no fast int8 matrix product
of its own on CPUs, while its TFLite interpreter (in the tensorflow wheel) runs a dynamic-range quantized
model through XNNPACK: int8 weights (per output channel), each product's float32 input quantized to int8
per row as it is called, the sums in int32 scaled back to float32. Layer norms, softmax, GELU, the
attention products (weights-free) and the residual stream stay float32, and so does pooling, which runs in
TensorFlow after the call. Our converter's forward pass (pipeline.encoders.modeling.bert_forward) is traced
from the saved float32 variables and converted once per encoder; the result is cached beside the encoder
folder (`<folder>.int8.tflite`, with a record of the encoder's fingerprint), never rebuilt on every run.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from pipeline.base.devices import stderr_to_debug_log
from pipeline.encoders.modeling import INPUT_NAMES, BertConfig, bert_forward
from pipeline.encoders.reduced_precision import rebuilt_config, saved_params

log = logging.getLogger(__name__)

INT8_SUFFIX = ".int8.tflite"
RECORD_SUFFIX = ".int8.json"
# What the record says was done; a different method (a future change of this module) converts again.
METHOD = "tflite dynamic-range int8"
POOLED_OUTPUT = "pooled_output"
# Interpreters per int8 encoder, and so batches in flight during extraction (see Int8Encoder).
INTERPRETER_COPIES = 2


def int8_model_path(model_dir: Path) -> Path:
    """Beside the encoder folder, not inside it: the folder's own files are its fingerprint."""
    return model_dir.with_name(model_dir.name + INT8_SUFFIX)


def layer_output_name(index: int) -> str:
    return f"encoder_outputs_{index}"


def _serving_module(params: dict[str, Any], config: BertConfig) -> tf.Module:
    """The forward pass as one signature: int32 ids, mask and type ids in, every layer's output and the pooled
    output out (the sequence output is the last layer's, so it is not returned twice)."""
    module = tf.Module()
    module.params = {name: tf.Variable(variable.read_value(), trainable=False) for name, variable in params.items()}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUT_NAMES])
    def serve(input_word_ids: tf.Tensor, input_mask: tf.Tensor, input_type_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        inputs = {"input_word_ids": input_word_ids, "input_mask": input_mask, "input_type_ids": input_type_ids}
        outputs = bert_forward(module.params, config, inputs, False)
        named = {POOLED_OUTPUT: outputs["pooled_output"]}
        for index, layer_output in enumerate(outputs["encoder_outputs"]):
            named[layer_output_name(index)] = layer_output
        return named

    module.serve = serve
    return module


def convert_to_int8(resolved_object: Any, model_info: dict[str, Any]) -> bytes:
    """The TFLite flatbuffer of the encoder with dynamic-range int8 weights (TFLiteConverter, Optimize.DEFAULT)."""
    params = saved_params(resolved_object)
    module = _serving_module(params, rebuilt_config(params, model_info))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with stderr_to_debug_log():  # the converter's MLIR status lines
        return bytes(converter.convert())


def _expected_record(fingerprint: str) -> dict[str, str]:
    return {"method": METHOD, "source_fingerprint": fingerprint}


def _is_current(model_dir: Path, fingerprint: str) -> bool:
    """True when the int8 model beside `model_dir` was converted, by this method, from these weights."""
    expected = _expected_record(fingerprint)
    try:
        record = json.loads(model_dir.with_name(model_dir.name + RECORD_SUFFIX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return int8_model_path(model_dir).is_file() and {key: record.get(key) for key in expected} == expected


def int8_model_unobtainable(model_dir: Path, fingerprint: str) -> str | None:
    """None when the encoder's int8 model is cached and current or can be written beside its folder; else why not
    (a read-only shared models folder: `auto` then keeps float32 rather than fail where it used to work)."""
    if _is_current(model_dir, fingerprint) or os.access(model_dir.parent, os.W_OK | os.X_OK):
        return None
    return f"its int8 model is converted once and written beside {model_dir}, and {model_dir.parent} is not writable"


def ensure_int8_model(model_dir: Path, fingerprint: str, saved_model: Callable[[], Any], model_info: dict[str, Any]) -> Path:
    """The cached int8 model of the encoder in `model_dir`, converted first when missing or made from other
    weights (`fingerprint` is the encoder folder's) from the loaded SavedModel `saved_model()` gives, which is
    asked for only then. The file is written whole or not at all, under a lock."""
    from filelock import FileLock

    path = int8_model_path(model_dir)
    record_path = model_dir.with_name(model_dir.name + RECORD_SUFFIX)
    expected = _expected_record(fingerprint)

    def is_current() -> bool:
        return _is_current(model_dir, fingerprint)

    if is_current():
        return path
    with FileLock(str(model_dir.with_name(f".{model_dir.name}.int8.lock"))):
        if is_current():  # another process converted it while this one waited
            return path
        log.info("converting %s to int8 (TFLite dynamic range) at %s, once", model_dir, path)
        started = time.perf_counter()
        model = convert_to_int8(saved_model(), model_info)
        for target, content in ((path, model), (record_path, json.dumps({
                **expected, "tensorflow": tf.__version__, "bytes": len(model)}, indent=2).encode("utf-8"))):
            partial = target.with_name(f".{target.name}.partial")
            partial.write_bytes(content)
            os.replace(partial, target)  # the record last: a model without a current record is converted again
        log.info("converted to int8 in %.1f s (%.0f MB)", time.perf_counter() - started, len(model) / 1e6)
    return path


def _signature_runner(model_path: Path, threads: int) -> Any:
    """One interpreter of the int8 model, ready to call (its delegate applied on a first tiny call)."""
    # XNNPACK (TFLite's default CPU delegate) with its "latest features" on: they include its kernels for
    # dynamically quantized fully connected layers (both settings measured:
    # docs/benchmarks-history.md#routes-measured-before-building-one). tf.lite.Interpreter warns that it moves
    # to the ai-edge-litert package, whose interpreter is no faster (same table); the wheel's is used and its
    # warning and status line are kept off the user's screen.
    with warnings.catch_warnings(), stderr_to_debug_log():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(model_path), num_threads=threads,
                                          experimental_default_delegate_latest_features=True)
        runner = interpreter.get_signature_runner()
        runner(**{name: np.ones((1, 2), np.int32) for name in INPUT_NAMES})
    return runner


def cpu_threads() -> int:
    """The cores this process may use (what TensorFlow's own thread pools use too)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Int8Encoder:
    """Called like the saved encoder (a dict of int32 inputs -> pooled_output, sequence_output, encoder_outputs,
    all float32), inference only, inside or outside a tf.function: the TFLite interpreter runs through
    tf.numpy_function, so a traced feature function keeps its pooling in TensorFlow.

    It holds `copies` interpreters of the same model and runs up to that many calls at once, one per
    interpreter (an interpreter runs one call at a time). Why: only XNNPACK's partitions of the graph use the
    interpreter's threads; the ops between its 9 partitions run on one, so one interpreter left much of a
    2-core machine idle. Two batches in flight keep both busy
    (docs/benchmarks.md#int8); the extraction loop sends them (`concurrent_calls`).
    """

    def __init__(self, model_path: Path, num_layers: int, hidden_size: int, threads: int | None = None,
                 copies: int = INTERPRETER_COPIES):
        self._model_path = model_path
        self._threads = threads or cpu_threads()
        self._num_layers = num_layers
        self._hidden_size = hidden_size
        self.concurrent_calls = copies
        self._output_names = [POOLED_OUTPUT] + [layer_output_name(index) for index in range(num_layers)]
        # Interpreters are made on demand (each reads the model and applies its delegate): a run whose features are
        # all cached makes none, and a caller that never overlaps its calls makes one. The signature runner returns
        # copies of the outputs (tested), so an interpreter is free for the next call as soon as it returns.
        self._free_runners: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._runners_made = 0
        self._making = threading.Lock()

    def _take_runner(self) -> Any:
        """A free interpreter: an idle one, a new one while fewer than `concurrent_calls` exist, else the next freed."""
        try:
            return self._free_runners.get_nowait()
        except queue.Empty:
            pass
        with self._making:
            if self._runners_made < self.concurrent_calls:
                runner = _signature_runner(self._model_path, self._threads)
                self._runners_made += 1
                return runner
        return self._free_runners.get()

    def run(self, input_word_ids: np.ndarray, input_mask: np.ndarray, input_type_ids: np.ndarray) -> list[np.ndarray]:
        """[pooled_output, layer 0 output, ..., last layer output] as float32 arrays, for numpy inputs. Safe to call
        from several threads: each call has an interpreter to itself."""
        inputs = {"input_word_ids": input_word_ids, "input_mask": input_mask, "input_type_ids": input_type_ids}
        runner = self._take_runner()
        try:
            outputs = runner(**{name: np.asarray(value, dtype=np.int32) for name, value in inputs.items()})
            return [np.asarray(outputs[name], dtype=np.float32) for name in self._output_names]
        finally:
            self._free_runners.put(runner)

    def __call__(self, inputs: dict[str, Any], training: bool | None = None) -> dict[str, Any]:
        del training  # inference only: an int8 encoder is never trained
        arguments = [tf.convert_to_tensor(inputs[name], dtype=tf.int32) for name in INPUT_NAMES]
        results = tf.numpy_function(self.run, arguments, [tf.float32] * (1 + self._num_layers))
        pooled, layer_outputs = results[0], list(results[1:])
        pooled.set_shape([None, self._hidden_size])
        for layer_output in layer_outputs:
            layer_output.set_shape([None, None, self._hidden_size])
        return {"pooled_output": pooled, "sequence_output": layer_outputs[-1], "encoder_outputs": layer_outputs}
