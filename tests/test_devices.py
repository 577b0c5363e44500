"""GPU configuration and the choice of precision, checked on a CPU machine through a stand-in TensorFlow that
records what is asked of it and stand-in CPU flags."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from pipeline.base import devices
from pipeline.base.errors import UserError


class FakeTensorFlow:
    """The few tf.config calls configure_devices and graph_rewrite make, recorded."""

    def __init__(self, gpus):
        self.gpus = list(gpus)
        self.memory_growth = {}
        self.optimizer_options = {"auto_mixed_precision": False}
        self.option_history = []
        self.config = SimpleNamespace(
            list_physical_devices=lambda kind: list(self.gpus) if kind == "GPU" else ["cpu:0"],
            experimental=SimpleNamespace(set_memory_growth=self._set_memory_growth),
            optimizer=SimpleNamespace(get_experimental_options=lambda: dict(self.optimizer_options),
                                      set_experimental_options=self._set_options),
        )

    def _set_memory_growth(self, device, enabled):
        self.memory_growth[device] = enabled

    def _set_options(self, options):
        self.optimizer_options.update(options)
        self.option_history.append(dict(options))


# /proc/cpuinfo flags of the CPUs the pipeline meets: the ones choose_precision reads, and neighbours it must ignore.
ZEN3 = frozenset({"avx2", "fma", "f16c", "sha_ni", "vaes"})  # AMD EPYC Milan: no AVX-512, no bfloat16 units
ZEN4 = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512vbmi"})  # AMD EPYC Genoa: no AMX
SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                             "amx_bf16", "amx_tile", "amx_int8"})
# What `auto` says on a CPU without bfloat16 units: int8 with AVX2 (the Zen 3 it was measured on), float32 without.
AVX2_INT8 = ("auto: no GPU and no bfloat16 units (amx_bf16, avx512_bf16) and avx2 on this CPU, where int8 extracted "
             "1.4-1.8x as fast as float32 (AMD Zen 3 and Zen 4 with AVX2, measured)")
NO_AVX2 = ("auto: no GPU and no bfloat16 units (amx_bf16, avx512_bf16) and no avx2 on this CPU (int8 is measured "
           "faster only with avx2)")
FINE_TUNE_ON_ZEN3 = ("auto: no GPU and no bfloat16 units (amx_bf16, avx512_bf16) on this CPU, and int8 is for frozen "
                     "features, not --fine-tune")


def test_every_gpu_gets_memory_growth():
    fake = FakeTensorFlow(["gpu:0", "gpu:1"])
    assert devices.configure_devices(tf_module=fake) == {"device": "GPU", "gpus": 2}
    assert fake.memory_growth == {"gpu:0": True, "gpu:1": True}
    assert fake.option_history == []  # nothing global: the head's training graphs stay float32


def test_no_gpu_means_no_memory_settings():
    fake = FakeTensorFlow([])
    assert devices.configure_devices(tf_module=fake) == {"device": "CPU", "gpus": 0}
    assert fake.memory_growth == {}


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
    assert devices.choose_precision("auto", gpus=gpus, flags=flags) == expected


@pytest.mark.parametrize("gpus, flags, expected", [
    (0, ZEN3, ("float32", FINE_TUNE_ON_ZEN3)),
    (0, frozenset(), ("float32", FINE_TUNE_ON_ZEN3)),
    (0, ZEN4, ("bfloat16", "auto: this CPU has AVX512_BF16 (avx512_bf16)")),
    (1, ZEN3, ("float16", "auto: a GPU")),
])
def test_auto_for_fine_tuning_never_picks_int8_and_says_why(gpus, flags, expected, caplog):
    """--fine-tune trains in float32 and refuses an explicit int8 (the int8 model is inference only), so `auto`
    keeps the whole run, the probe's frozen features included, in float32 where it would have picked int8: quietly."""
    with caplog.at_level(logging.WARNING, logger="pipeline.base.devices"):
        assert devices.choose_precision("auto", gpus=gpus, flags=flags, fine_tune=True) == expected
    assert not caplog.records


FOREIGN = "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4"
NO_INT8_ROUTE = devices.INT8_NEEDS_OUR_ENCODER.format(handle=FOREIGN)


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
    with caplog.at_level(logging.WARNING, logger="pipeline.base.devices"):
        assert devices.precision_for_encoder(requested, *chosen, rebuildable=False, handle=FOREIGN) == expected
    assert len(caplog.records) == warnings
    assert devices.precision_for_encoder(requested, *chosen, rebuildable=True, handle=FOREIGN) == chosen


def test_a_zen4_cpuinfo_is_read_as_a_cpu_with_avx512_bf16(tmp_path):
    """The flags line as Linux writes it on a Zen 4 EPYC (cpu family 25, model 17), read the way `run` reads it."""
    cpuinfo = tmp_path / "cpuinfo"
    processor = ("processor\t: {0}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                 "flags\t\t: fpu sse2 avx2 avx512f avx512dq avx512_bf16 avx512vbmi avx512_vnni vaes\n\n")
    cpuinfo.write_text(processor.format(0) + processor.format(1))
    flags = devices.cpu_flags(cpuinfo)
    assert devices.choose_precision("auto", gpus=0, flags=flags) == (
        "bfloat16", "auto: this CPU has AVX512_BF16 (avx512_bf16)")


@pytest.mark.parametrize("requested", ["float32", "bfloat16", "float16"])
def test_an_explicit_precision_is_kept_where_the_hardware_has_it(requested, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.base.devices"):
        assert devices.choose_precision(requested, gpus=1, flags=SAPPHIRE_RAPIDS) == (requested, "asked for")
    assert not caplog.records


def test_float16_without_a_gpu_is_refused_with_what_to_do_instead():
    with pytest.raises(UserError, match="float16 needs a GPU.*--precision auto.*AMX or AVX512_BF16"):
        devices.choose_precision("float16", gpus=0, flags=ZEN4)


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
    with caplog.at_level(logging.WARNING, logger="pipeline.base.devices"):
        assert devices.choose_precision("bfloat16", gpus=gpus, flags=flags) == ("bfloat16", "asked for")
        devices.choose_precision("auto", gpus=gpus, flags=flags)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == (1 if emulated else 0), messages
    if emulated:
        assert "no bfloat16 units (no amx_bf16 or avx512_bf16)" in messages[0]
        assert f"about {devices.EMULATED_BFLOAT16_SLOWDOWN}x slower than float32" in messages[0]


def test_an_unknown_precision_is_refused():
    with pytest.raises(UserError, match="--precision 'float8' is unknown; choose one of auto, float32"):
        devices.choose_precision("float8", gpus=0, flags=SAPPHIRE_RAPIDS)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert devices.cpu_flags(cpuinfo) == {"fpu", "avx2", "amx_bf16", "amx_tile"}
    assert devices.cpu_flags(tmp_path / "missing") == frozenset()


def test_a_graph_rewrite_is_on_only_inside_its_block():
    fake = FakeTensorFlow(["gpu:0"])
    with devices.graph_rewrite("auto_mixed_precision", tf_module=fake):
        assert fake.optimizer_options["auto_mixed_precision"] is True
    assert fake.optimizer_options["auto_mixed_precision"] is False
    assert fake.option_history == [{"auto_mixed_precision": True}, {"auto_mixed_precision": False}]
    with devices.graph_rewrite(None, tf_module=fake):
        pass
    assert len(fake.option_history) == 2


def test_the_rewrite_is_switched_back_off_when_extraction_fails():
    fake = FakeTensorFlow(["gpu:0"])
    with pytest.raises(KeyboardInterrupt), devices.graph_rewrite("auto_mixed_precision", tf_module=fake):
        raise KeyboardInterrupt
    assert fake.optimizer_options["auto_mixed_precision"] is False


def test_the_rewrite_names_are_options_tensorflow_knows():
    import tensorflow as tf

    for option in devices.GRAPH_REWRITES.values():
        with devices.graph_rewrite(option):
            assert tf.config.optimizer.get_experimental_options()[option] is True
        assert tf.config.optimizer.get_experimental_options()[option] is False


def test_an_encoder_of_ours_whose_int8_model_cannot_be_written_keeps_float32_under_auto_and_refuses_int8():
    """A converted encoder in a read-only shared folder, with no int8 model beside it: `auto` keeps float32 there (it
    worked before `auto` chose int8), and an explicit int8 is one error line saying what to do."""
    why = "its int8 model is converted once and written beside /opt/models/ours, and /opt/models is not writable"
    assert devices.precision_for_encoder("auto", "int8", AVX2_INT8, rebuildable=True, handle="/opt/models/ours",
                                         int8_unobtainable=why) == ("float32", f"auto: {why}")
    with pytest.raises(UserError, match="--precision int8: its int8 model .* not writable; make that folder writable"):
        devices.precision_for_encoder("int8", "int8", "asked for", rebuildable=True, handle="/opt/models/ours",
                                      int8_unobtainable=why)
    assert devices.precision_for_encoder("auto", "bfloat16", "auto: this CPU has AMX (amx_bf16)", rebuildable=True,
                                         handle="/opt/models/ours", int8_unobtainable=why) == (
        "bfloat16", "auto: this CPU has AMX (amx_bf16)")  # only int8 needs the file
