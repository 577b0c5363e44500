"""TensorFlow start-up (quiet by default, GPU memory growth where there is a GPU) and the encoder's precision.

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
from pathlib import Path
from typing import Any

from pipeline.base.config import PRECISIONS
from pipeline.base.errors import UserError

log = logging.getLogger(__name__)
_STARTED: dict[str, Any] | None = None
# CPU flags (Linux /proc/cpuinfo) of hardware bfloat16: AMX tiles (Intel Sapphire Rapids and later) and AVX-512 BF16
# (AMD Zen 4 and later, Intel Cooper Lake). Either makes bfloat16 extraction faster than float32 (docs/precision.md).
AMX_FLAG, AVX512_BF16_FLAG = "amx_bf16", "avx512_bf16"
# The units `auto` names when it picks bfloat16, by flag, AMX first: a CPU with both says AMX, the faster of the two.
BFLOAT16_UNITS = {AMX_FLAG: "AMX", AVX512_BF16_FLAG: "AVX512_BF16"}
# Measured on a 2-core AMD EPYC Zen 3 (no bfloat16 units), the demo's snippets: see docs/benchmarks.md.
EMULATED_BFLOAT16_SLOWDOWN = "1.4"
# `auto` picks int8 (TFLite, XNNPACK) only on CPUs like those it was measured on: AVX2 and no bfloat16 units. On
# idle 2-core AMD EPYCs, a Zen 3 and a Zen 4 whose hypervisor shows AVX2 only, it extracted 1.4-1.8x as fast as
# float32 within the quality guard (docs/benchmarks.md#int8); other CPUs (no AVX2, an ARM, no /proc/cpuinfo) are
# unmeasured and keep float32.
INT8_FLAG = "avx2"
INT8_SPEED_UP = "1.4-1.8x"
INT8_MEASURED_ON = "AMD Zen 3 and Zen 4 with AVX2"
# int8 (pipeline.encoders.int8) is the pipeline's own route: an encoder from elsewhere gets float32 and this reason.
INT8_NEEDS_OUR_ENCODER = ("int8 needs an encoder converted by this pipeline (the embedded one, `python -m pipeline "
                          "convert`'s, a fine-tuned run's encoder/), and {handle} is not one")
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


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux lists them; empty where there is no /proc/cpuinfo (then: no bfloat16 units)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def choose_precision(requested: str, *, gpus: int, flags: frozenset[str], fine_tune: bool = False) -> tuple[str, str]:
    """(precision, why) for the encoder: `auto` is float16 on a GPU, bfloat16 on a CPU with bfloat16 units (AMX or
    AVX512_BF16), int8 on one with AVX2 and neither (where it was measured faster than float32; not with
    `fine_tune`, which trains in float32 and has no int8 route for its tuned encoder), else float32.

    float16 without a GPU is refused: CPUs have no float16 matrix units, so it would be slower and less exact
    than float32 for nothing. bfloat16 on a CPU without bfloat16 units runs (emulated) with a warning: it is
    the way to preview, on any machine, the features such a CPU will compute (the same rounding). Whether the
    encoder can have bfloat16 at all is the caller's to check (pipeline.commands.run.prepare keeps float32 for
    encoders the pipeline cannot rebuild).
    """
    if requested not in PRECISIONS:
        raise UserError(f"--precision {requested!r} is unknown; choose one of {', '.join(PRECISIONS)}")
    if requested == "auto":
        if gpus:
            return "float16", "auto: a GPU"
        for flag, units in BFLOAT16_UNITS.items():
            if flag in flags:
                return "bfloat16", f"auto: this CPU has {units} ({flag})"
        no_units = f"no GPU and no bfloat16 units ({AMX_FLAG}, {AVX512_BF16_FLAG})"
        if fine_tune:  # --fine-tune refuses an explicit int8, so `auto` keeps the whole run in float32
            return "float32", f"auto: {no_units} on this CPU, and int8 is for frozen features, not --fine-tune"
        if INT8_FLAG in flags:
            return "int8", (f"auto: {no_units} and {INT8_FLAG} on this CPU, where int8 extracted {INT8_SPEED_UP} as "
                            f"fast as float32 ({INT8_MEASURED_ON}, measured)")
        return "float32", f"auto: {no_units} and no {INT8_FLAG} on this CPU (int8 is measured faster only with {INT8_FLAG})"
    if requested == "float16" and not gpus:
        raise UserError("--precision float16 needs a GPU and TensorFlow sees none (a CPU has no float16 units, it "
                        "would be slower than float32); use --precision auto or float32, or bfloat16 on a CPU with "
                        "AMX or AVX512_BF16")
    if requested == "int8" and gpus:
        log.warning("--precision int8 runs the encoder on the CPU (TFLite), not on the GPU TensorFlow sees; for the "
                    "GPU use --precision auto (float16)")
    if requested == "bfloat16" and not gpus and flags.isdisjoint(BFLOAT16_UNITS):
        log.warning("--precision bfloat16: this CPU has no bfloat16 units (no %s or %s), so bfloat16 is emulated and "
                    "about %sx slower than float32 here (a 2-core Zen 3 measured); the features are those a CPU "
                    "with AMX or AVX512_BF16 computes. For speed use --precision auto", AMX_FLAG, AVX512_BF16_FLAG,
                    EMULATED_BFLOAT16_SLOWDOWN)
    return requested, "asked for"


def precision_for_encoder(requested: str, precision: str, why: str, *, rebuildable: bool, handle: str,
                          int8_unobtainable: str | None = None) -> tuple[str, str]:
    """(precision, why) once the encoder is known: an encoder this pipeline cannot rebuild (pipeline.encoders.encoder
    .rebuildable) has no int8 route, so it gets float32 (with one warning when int8 was asked for), and `auto`
    does not give it bfloat16 through grappler's rewrite, which is slower than float32. `int8_unobtainable` says why
    an encoder of ours cannot have its int8 model (pipeline.encoders.int8.int8_model_unobtainable): `auto` then
    keeps float32, and an explicit int8 is refused."""
    if rebuildable and precision == "int8" and int8_unobtainable:
        if requested == "int8":
            raise UserError(f"--precision int8: {int8_unobtainable}; make that folder writable (or convert the "
                            f"encoder into one that is), or use --precision float32")
        return "float32", f"auto: {int8_unobtainable}"
    if rebuildable:
        return precision, why
    if precision == "int8":
        reason = INT8_NEEDS_OUR_ENCODER.format(handle=handle)
        if requested == "int8":
            log.warning("--precision int8: %s; extracting in float32", reason)
            return "float32", f"int8 asked for, but {reason}"
        return "float32", f"auto: {reason}"
    if requested == "auto" and precision == "bfloat16":
        return "float32", "auto: TensorFlow's bfloat16 rewrite, all an encoder from outside this pipeline can have, is slower than float32"
    return precision, why


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
