"""The encoder's precision, decided in one place: the request (`--precision`, the old `--mixed-precision`), the
machine (GPUs, the CPU's flags) and what the encoder allows (our own rebuild, its int8 model) give one precision
and the reason the run reports. The checks of the request live here too, so they run before TensorFlow starts.

This module imports nothing heavy: the caller passes what TensorFlow saw and what the encoder allows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pipeline.base.errors import UserError

log = logging.getLogger(__name__)

AUTO = "auto"
PRECISIONS = (AUTO, "float32", "bfloat16", "float16", "int8")  # of the encoder's matrix products
# CPU flags (Linux /proc/cpuinfo) of hardware bfloat16: AMX tiles (Intel Sapphire Rapids and later) and AVX-512 BF16
# (AMD Zen 4 and later, Intel Cooper Lake). Either makes bfloat16 extraction faster than float32 (docs/precision.md).
AMX_FLAG, AVX512_BF16_FLAG = "amx_bf16", "avx512_bf16"
# The units `auto` names when it picks bfloat16, by flag, AMX first: a CPU with both says AMX, the faster of the two.
BFLOAT16_UNITS = {AMX_FLAG: "AMX", AVX512_BF16_FLAG: "AVX512_BF16"}
# What the emulation warning quotes; measured in docs/benchmarks.md.
EMULATED_BFLOAT16_SLOWDOWN = "1.4"
# `auto` picks int8 (TFLite, XNNPACK) only on CPUs like those it was measured on: AVX2 and no bfloat16 units
# (docs/benchmarks.md#int8); other CPUs (no AVX2, an ARM, no /proc/cpuinfo) are unmeasured and keep float32.
INT8_FLAG = "avx2"
INT8_SPEED_UP = "1.4-1.8x"
INT8_MEASURED_ON = "AMD Zen 3 and Zen 4 with AVX2"
# int8 (pipeline.encoders.int8) is the pipeline's own route: an encoder from elsewhere gets float32 and this reason.
INT8_NEEDS_OUR_ENCODER = ("int8 needs an encoder converted by this pipeline (the embedded one, `python -m pipeline "
                          "convert`'s, a fine-tuned run's encoder/), and {handle} is not one")


def check_request(precision: str, *, mixed_precision: bool, fine_tune: bool) -> None:
    """The request's own checks, which need no model and no TensorFlow; UserError naming the fix."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
    if fine_tune and precision == "int8":
        raise UserError("--precision int8 is for frozen features (TFLite, inference only) and --fine-tune trains the "
                        "encoder; drop one of the two")
    if mixed_precision and precision not in (AUTO, "float16"):
        raise UserError(f"--mixed-precision is the old name of --precision float16, and --precision {precision} "
                        f"asks for another; drop --mixed-precision")


def decide_precision(precision: str, *, mixed_precision: bool, fine_tune: bool, gpus: int, flags: frozenset[str],
                     encoder_rebuildable: bool, int8_unobtainable: Callable[[], str | None], handle: str) -> tuple[str, str]:
    """(precision, why) for the encoder's features, from a request already checked by `check_request`.

    `encoder_rebuildable`: the pipeline can rebuild the encoder in reduced precision (pipeline.encoders.encoder
    .rebuildable); `int8_unobtainable`: asked only when int8 is chosen for such an encoder, None or why its int8
    model cannot be had (pipeline.encoders.int8.int8_model_unobtainable)."""
    requested = requested_precision(precision, mixed_precision=mixed_precision, gpus=gpus)
    chosen, why = choose_precision(requested, gpus=gpus, flags=flags, fine_tune=fine_tune)
    unobtainable = int8_unobtainable() if chosen == "int8" and encoder_rebuildable else None
    return precision_for_encoder(requested, chosen, why, rebuildable=encoder_rebuildable, handle=handle,
                                 int8_unobtainable=unobtainable)


def requested_precision(precision: str, *, mixed_precision: bool, gpus: int) -> str:
    """--precision, with the old --mixed-precision read as float16 on a GPU and, as it always was, ignored
    (with a warning) without one."""
    if not mixed_precision:
        return precision
    if gpus:
        return "float16"
    log.warning("--mixed-precision (now --precision float16) asks for float16 on a GPU, and TensorFlow sees none; "
                "using --precision %s", precision)
    return precision


def choose_precision(requested: str, *, gpus: int, flags: frozenset[str], fine_tune: bool = False) -> tuple[str, str]:
    """(precision, why) on this machine: `auto` is float16 on a GPU, bfloat16 on a CPU with bfloat16 units (AMX or
    AVX512_BF16), int8 on one with AVX2 and neither (where it was measured faster than float32; not with
    `fine_tune`, which trains in float32 and has no int8 route for its tuned encoder), else float32.

    float16 without a GPU is refused: CPUs have no float16 matrix units, so it would be slower and less exact
    than float32 for nothing. bfloat16 on a CPU without bfloat16 units runs (emulated) with a warning: it is
    the way to preview, on any machine, the features such a CPU will compute (the same rounding).
    """
    if requested == AUTO:
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
    """(precision, why) once the encoder is known: an encoder this pipeline cannot rebuild has no int8 route, so it
    gets float32 (with one warning when int8 was asked for), and `auto` does not give it bfloat16 through
    grappler's rewrite, which is slower than float32. `int8_unobtainable` says why an encoder of ours cannot have
    its int8 model: `auto` then keeps float32, and an explicit int8 is refused."""
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
    if requested == AUTO and precision == "bfloat16":
        return "float32", "auto: TensorFlow's bfloat16 rewrite, all an encoder from outside this pipeline can have, is slower than float32"
    return precision, why


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
