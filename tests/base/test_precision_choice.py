"""The choice of precision (pipeline.base.precision), on stand-in CPU flags and GPU counts: `auto`'s pick and its
reason, what an encoder allows, the request's checks and the one decision `run` asks for."""

from __future__ import annotations

import logging

import pytest
from helpers import AVX2_INT8, NO_AVX2, SAPPHIRE_RAPIDS, ZEN3, ZEN4

from pipeline.base import precision
from pipeline.base.config import RunConfig, validate
from pipeline.base.errors import UserError

# The stand-in CPU flags (ZEN3, ZEN4, SAPPHIRE_RAPIDS) and `auto`'s reasons live in helpers.py: test_precision and
# test_int8 use them too.
FINE_TUNE_ON_ZEN3 = ("auto: no GPU and no bfloat16 units (amx_bf16, avx512_bf16) on this CPU, and int8 is for frozen "
                     "features, not --fine-tune")


@pytest.mark.parametrize("gpus, flags, expected", [
    (0, ZEN3, ("int8", AVX2_INT8)),
    (0, frozenset({"avx2"}), ("int8", AVX2_INT8)),  # AVX2 alone is enough
    (0, frozenset({"sse4_2", "avx"}), ("float32", NO_AVX2)),  # older CPUs: int8 unmeasured there
    (0, frozenset(), ("float32", NO_AVX2)),  # no /proc/cpuinfo (or an ARM's, which lists no flags): nothing known
    (0, ZEN4, ("bfloat16", "auto: this CPU has AVX512_BF16 (avx512_bf16)")),  # int8 against bfloat16 is unmeasured
    (0, frozenset({"avx2", "avx512_bf16"}), ("bfloat16", "auto: this CPU has AVX512_BF16 (avx512_bf16)")),
    (0, SAPPHIRE_RAPIDS, ("bfloat16", "auto: this CPU has AMX (amx_bf16)")),  # both flags: AMX, the faster, is named
    (1, ZEN3, ("float16", "auto: a GPU")),
    (1, ZEN4, ("float16", "auto: a GPU")),
    (1, SAPPHIRE_RAPIDS, ("float16", "auto: a GPU")),
])
def test_auto_picks_float16_on_a_gpu_bfloat16_with_bfloat16_units_int8_with_avx2_else_float32_and_says_why(
        gpus, flags, expected):
    assert precision.choose_precision("auto", gpus=gpus, flags=flags) == expected


@pytest.mark.parametrize("gpus, flags, expected", [
    (0, ZEN3, ("float32", FINE_TUNE_ON_ZEN3)),
    (0, frozenset(), ("float32", FINE_TUNE_ON_ZEN3)),
    (0, ZEN4, ("bfloat16", "auto: this CPU has AVX512_BF16 (avx512_bf16)")),
    (1, ZEN3, ("float16", "auto: a GPU")),
])
def test_auto_for_fine_tuning_never_picks_int8_and_says_why(gpus, flags, expected, caplog):
    """--fine-tune trains in float32 and refuses an explicit int8 (the int8 model is inference only), so `auto`
    keeps the whole run, the probe's frozen features included, in float32 where it would have picked int8: quietly."""
    with caplog.at_level(logging.WARNING, logger="pipeline.base.precision"):
        assert precision.choose_precision("auto", gpus=gpus, flags=flags, fine_tune=True) == expected
    assert not caplog.records


FOREIGN = "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4"


NO_INT8_ROUTE = precision.INT8_NEEDS_OUR_ENCODER.format(handle=FOREIGN)


@pytest.mark.parametrize("requested, chosen, expected, warnings", [
    ("auto", ("int8", AVX2_INT8), ("float32", f"auto: {NO_INT8_ROUTE}"), 0),  # `auto` never warns
    ("int8", ("int8", "asked for"), ("float32", f"int8 asked for, but {NO_INT8_ROUTE}"), 1),
    ("auto", ("bfloat16", "auto: this CPU has AMX (amx_bf16)"),
     ("float32", "auto: TensorFlow's bfloat16 rewrite, all an encoder from outside this pipeline can have, is slower "
                 "than float32"), 0),
    ("auto", ("float16", "auto: a GPU"), ("float16", "auto: a GPU"), 0),  # grappler's float16 rewrite on a GPU
])
def test_an_encoder_from_elsewhere_gets_float32_where_auto_would_pick_int8_and_says_why(requested, chosen, expected,
                                                                                     warnings, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.base.precision"):
        assert precision.precision_for_encoder(requested, *chosen, rebuildable=False, handle=FOREIGN) == expected
    assert len(caplog.records) == warnings
    assert precision.precision_for_encoder(requested, *chosen, rebuildable=True, handle=FOREIGN) == chosen


def test_a_zen4_cpuinfo_is_read_as_a_cpu_with_avx512_bf16(tmp_path):
    """The flags line as Linux writes it on a Zen 4 EPYC (cpu family 25, model 17), read the way `run` reads it."""
    cpuinfo = tmp_path / "cpuinfo"
    processor = ("processor\t: {0}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                 "flags\t\t: fpu sse2 avx2 avx512f avx512dq avx512_bf16 avx512vbmi avx512_vnni vaes\n\n")
    cpuinfo.write_text(processor.format(0) + processor.format(1))
    flags = precision.cpu_flags(cpuinfo)
    assert precision.choose_precision("auto", gpus=0, flags=flags) == (
        "bfloat16", "auto: this CPU has AVX512_BF16 (avx512_bf16)")


@pytest.mark.parametrize("requested", ["float32", "bfloat16", "float16"])
def test_an_explicit_precision_is_kept_where_the_hardware_has_it(requested, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.base.precision"):
        assert precision.choose_precision(requested, gpus=1, flags=SAPPHIRE_RAPIDS) == (requested, "asked for")
    assert not caplog.records


def test_float16_without_a_gpu_is_refused_with_what_to_do_instead():
    with pytest.raises(UserError, match="float16 needs a GPU.*--precision auto.*AMX or AVX512_BF16"):
        precision.choose_precision("float16", gpus=0, flags=ZEN4)


@pytest.mark.parametrize("gpus, flags, emulated", [
    (0, ZEN3, True),
    (0, frozenset(), True),
    (0, ZEN4, False),
    (0, SAPPHIRE_RAPIDS, False),
    (1, ZEN3, False),
])
def test_the_emulation_warning_appears_only_on_a_cpu_with_neither_bfloat16_flag(gpus, flags, emulated, caplog):
    """bfloat16 runs everywhere it is asked for; only where it is emulated is the user told it is slower. `auto`
    never warns: it picks bfloat16 only where the units are."""
    with caplog.at_level(logging.WARNING, logger="pipeline.base.precision"):
        assert precision.choose_precision("bfloat16", gpus=gpus, flags=flags) == ("bfloat16", "asked for")
        precision.choose_precision("auto", gpus=gpus, flags=flags)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == (1 if emulated else 0), messages
    if emulated:
        assert "no bfloat16 units (no amx_bf16 or avx512_bf16)" in messages[0]
        assert f"about {precision.EMULATED_BFLOAT16_SLOWDOWN}x slower than float32" in messages[0]


def test_an_unknown_precision_is_refused_before_tensorflow_starts_by_the_request_check_and_by_validate():
    with pytest.raises(UserError, match="--precision 'float8' is unknown; choose one of auto, float32"):
        precision.check_request("float8", mixed_precision=False, fine_tune=False)
    with pytest.raises(UserError, match="--precision 'float8' is unknown; choose one of auto, float32"):
        validate(RunConfig(precision="float8"))


@pytest.mark.parametrize("options, message", [
    ({"precision": "int8", "fine_tune": True}, "--precision int8 is for frozen features (TFLite, inference only) and "
                                               "--fine-tune trains the encoder; drop one of the two"),
    ({"precision": "bfloat16", "mixed_precision": True}, "--mixed-precision is the old name of --precision float16, "
                                                         "and --precision bfloat16 asks for another; drop --mixed-precision"),
])
def test_requests_that_contradict_themselves_are_refused_where_the_precision_is_decided(options, message):
    with pytest.raises(UserError) as raised:
        precision.check_request(options["precision"], mixed_precision=options.get("mixed_precision", False),
                                fine_tune=options.get("fine_tune", False))
    assert str(raised.value) == message
    with pytest.raises(UserError) as raised:
        validate(RunConfig(**options))
    assert str(raised.value) == message


@pytest.mark.parametrize("request_, mixed, gpus, flags, rebuildable, unobtainable, expected, asks", [
    ("auto", False, 0, ZEN3, True, None, ("int8", AVX2_INT8), True),
    ("auto", False, 0, ZEN3, False, None, ("float32", "auto: " + precision.INT8_NEEDS_OUR_ENCODER.format(handle="h")), False),
    ("auto", False, 0, ZEN3, True, "read-only", ("float32", "auto: read-only"), True),
    ("auto", False, 0, frozenset(), True, "never asked", ("float32", NO_AVX2), False),
    ("auto", False, 0, ZEN4, True, "never asked", ("bfloat16", "auto: this CPU has AVX512_BF16 (avx512_bf16)"), False),
    ("auto", True, 1, ZEN3, True, None, ("float16", "asked for"), False),  # --mixed-precision on a GPU: float16
    ("auto", True, 0, ZEN3, True, None, ("int8", AVX2_INT8), True),  # ... and ignored without one, as it always was
    ("float32", False, 0, SAPPHIRE_RAPIDS, True, None, ("float32", "asked for"), False),
])
def test_one_decision_from_the_request_the_machine_and_the_encoder(request_, mixed, gpus, flags, rebuildable, unobtainable,
                                                                  expected, asks):
    """The int8 model's folder is looked at only when int8 is chosen for an encoder of ours."""
    asked = []

    def int8_unobtainable():
        asked.append(True)
        return unobtainable

    assert precision.decide_precision(request_, mixed_precision=mixed, fine_tune=False, gpus=gpus, flags=flags,
                                      encoder_rebuildable=rebuildable, int8_unobtainable=int8_unobtainable,
                                      handle="h") == expected
    assert asked == ([True] if asks else [])


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert precision.cpu_flags(cpuinfo) == {"fpu", "avx2", "amx_bf16", "amx_tile"}
    assert precision.cpu_flags(tmp_path / "missing") == frozenset()


def test_an_encoder_of_ours_whose_int8_model_cannot_be_written_keeps_float32_under_auto_and_refuses_int8():
    """A converted encoder in a read-only shared folder, with no int8 model beside it: `auto` keeps float32 there (it
    worked before `auto` chose int8), and an explicit int8 is one error line saying what to do."""
    why = "its int8 model is converted once and written beside /opt/models/ours, and /opt/models is not writable"
    assert precision.precision_for_encoder("auto", "int8", AVX2_INT8, rebuildable=True, handle="/opt/models/ours",
                                         int8_unobtainable=why) == ("float32", f"auto: {why}")
    with pytest.raises(UserError, match="--precision int8: its int8 model .* not writable; make that folder writable"):
        precision.precision_for_encoder("int8", "int8", "asked for", rebuildable=True, handle="/opt/models/ours",
                                      int8_unobtainable=why)
    assert precision.precision_for_encoder("auto", "bfloat16", "auto: this CPU has AMX (amx_bf16)", rebuildable=True,
                                         handle="/opt/models/ours", int8_unobtainable=why) == (
        "bfloat16", "auto: this CPU has AMX (amx_bf16)")  # only int8 needs the file

