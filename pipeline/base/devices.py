"""TensorFlow start-up (quiet by default, GPU memory growth where there is a GPU), graph rewrites and runtime noise.

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
# Grappler's rewrites, for encoders the pipeline cannot rebuild in reduced precision (pipeline.encoders.reduced_precision).
GRAPH_REWRITES = {"float16": "auto_mixed_precision", "bfloat16": "auto_mixed_precision_onednn_bfloat16"}


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


@contextmanager
def stderr_to_debug_log() -> Iterator[None]:
    """Runs the block with file descriptor 2 caught and logged at debug level: for libraries that print status lines
    (TFLite's "Created TensorFlow Lite XNNPACK delegate") where the command line promises quiet."""
    with _stderr_captured() as caught:
        try:
            yield
        finally:
            said = caught()
            if said:
                log.debug("caught on stderr: %s", said)


def start_tensorflow(*, verbose: bool = False) -> dict[str, Any]:
    """Imports TensorFlow (quietly unless verbose) and configures devices, once; returns what it found."""
    global _STARTED
    if _STARTED is not None:
        return _STARTED
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    if verbose:
        _STARTED = configure_devices()
        return _STARTED
    with _stderr_captured() as caught:
        import tensorflow  # noqa: F401  (the import is the noisy part; tensorflow_hub, quiet, only when a model loads)
        import tf_keras  # noqa: F401

        devices = configure_devices()
        log.debug("TensorFlow start-up said: %s", caught())
    _STARTED = devices
    return devices


def configure_devices(*, tf_module: Any = None) -> dict[str, Any]:
    """Memory growth on every GPU, so the encoder does not grab all memory. `tf_module` lets tests stand in a
    fake TensorFlow to check the GPU branch on a machine without one."""
    if tf_module is None:
        import tensorflow

        tf_module = tensorflow
    gpus = tf_module.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf_module.config.experimental.set_memory_growth(gpu, True)
    return {"device": "GPU" if gpus else "CPU", "gpus": len(gpus)}








@contextmanager
def graph_rewrite(option: str | None, tf_module: Any = None) -> Iterator[None]:
    """Switches one of grappler's precision rewrites (GRAPH_REWRITES) on for the block, or does nothing for None.

    The option is read when a graph is first run, so the encoder's graphs run inside the block are
    rewritten and graphs built outside it (the frozen head's training) are not. Used for encoders that
    the pipeline cannot rebuild in reduced precision, and for fine-tuning in float16 on a GPU.
    """
    if option is None:
        yield
        return
    if tf_module is None:
        import tensorflow

        tf_module = tensorflow
    previous = bool(tf_module.config.optimizer.get_experimental_options().get(option, False))
    tf_module.config.optimizer.set_experimental_options({option: True})
    try:
        yield
    finally:
        tf_module.config.optimizer.set_experimental_options({option: previous})


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
