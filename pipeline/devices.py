"""TensorFlow start-up: quiet by default, GPU memory growth where there is a GPU, optional mixed precision.

TensorFlow 2.21 logs through absl before TF_CPP_MIN_LOG_LEVEL takes effect, so importing it prints
several lines (oneDNN, missing CUDA drivers) to the process's stderr. The command line promises one
`error:` line for bad input, so those lines are caught at the file-descriptor level while TensorFlow
starts, and shown only with --verbose.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)
_STARTED: dict[str, Any] | None = None
_EXTRACTION_MIXED_PRECISION = False  # set by configure_devices: GPU present and --mixed-precision


@contextmanager
def _stderr_captured() -> Iterator[Callable[[], str]]:
    """Sends file descriptor 2 to a temporary file; yields a function that returns what was caught."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: (sink.seek(0), sink.read().decode("utf-8", "replace"))[1]
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def start_tensorflow(*, verbose: bool = False, mixed_precision: bool = False) -> dict[str, Any]:
    """Imports TensorFlow (quietly unless verbose) and configures devices, once; returns what it found."""
    global _STARTED
    if _STARTED is not None:
        return _STARTED
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    if verbose:
        _STARTED = configure_devices(mixed_precision=mixed_precision)
        return _STARTED
    with _stderr_captured() as caught:
        import tensorflow  # noqa: F401  (the import is the noisy part)
        import tensorflow_hub  # noqa: F401
        import tf_keras  # noqa: F401

        devices = configure_devices(mixed_precision=mixed_precision)
        log.debug("TensorFlow start-up said: %s", caught())
    _STARTED = devices
    return devices


def configure_devices(*, mixed_precision: bool = False, tf_module: Any = None) -> dict[str, Any]:
    """Memory growth on every GPU (so the encoder does not grab all memory); float16 extraction on request.

    Mixed precision is grappler's auto_mixed_precision graph rewrite, switched on only while features
    are extracted (see `extraction_precision`): a Keras mixed-precision policy would not reach the
    encoder, whose graph comes frozen from a SavedModel, and the small head keeps training in float32.
    On a CPU the request is refused with a warning, because float16 there is slower, not faster.
    `tf_module` lets tests stand in a fake TensorFlow to check the GPU branch on a machine without one.
    """
    global _EXTRACTION_MIXED_PRECISION
    if tf_module is None:
        import tensorflow

        tf_module = tensorflow
    gpus = tf_module.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf_module.config.experimental.set_memory_growth(gpu, True)
    policy = "float32"
    if gpus and mixed_precision:
        policy = "mixed_float16"
    elif mixed_precision:
        log.warning("--mixed-precision asks for float16 on a GPU, and TensorFlow sees none; using float32 on the CPU")
    _EXTRACTION_MIXED_PRECISION = policy == "mixed_float16"
    return {"device": "GPU" if gpus else "CPU", "gpus": len(gpus), "policy": policy}


def mixed_precision_chosen() -> bool:
    """True when configure_devices chose float16 (a GPU and --mixed-precision): fine-tuning then scales its loss."""
    return _EXTRACTION_MIXED_PRECISION


@contextmanager
def extraction_precision(tf_module: Any = None) -> Iterator[None]:
    """While the encoder runs (extraction, fine-tuning): float16 compute on the GPU when configure_devices
    chose it, else nothing changes.

    The rewrite option is read when a graph is first run, so the encoder's graphs are rewritten and
    graphs built outside this block (the frozen head's training) are not.
    """
    if not _EXTRACTION_MIXED_PRECISION:
        yield
        return
    if tf_module is None:
        import tensorflow

        tf_module = tensorflow
    previous = bool(tf_module.config.optimizer.get_experimental_options().get("auto_mixed_precision", False))
    tf_module.config.optimizer.set_experimental_options({"auto_mixed_precision": True})
    try:
        yield
    finally:
        tf_module.config.optimizer.set_experimental_options({"auto_mixed_precision": previous})


# Lines TensorFlow's C++ runtime prints that say nothing about the user's run: tf-keras 2.21 builds
# datasets with an attribute the TF 2.21 runtime does not declare, and it complains on every fit; the
# exported model's in-graph tokenizer has int64 ops, and oneDNN says once that Eigen runs them.
KNOWN_NOISE = ("use_unbounded_threadpool", "oneDNN supports DT_INT64 only")


@contextmanager
def known_tensorflow_noise_dropped() -> Iterator[None]:
    """Runs the block with stderr caught, then passes on every caught line except known runtime noise."""
    with _stderr_captured() as caught:
        try:
            yield
        finally:
            kept = [line for line in caught().splitlines(keepends=True) if not any(mark in line for mark in KNOWN_NOISE)]
    sys.stderr.write("".join(kept))
