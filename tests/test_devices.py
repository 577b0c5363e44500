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


AMX = frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
AVX512_BF16 = frozenset({"avx512f", "avx512_bf16"})
ZEN3 = frozenset({"avx2", "fma", "f16c"})


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
    (1, ZEN3, "float16"),
    (1, AMX, "float16"),
    (0, AMX, "bfloat16"),
    (0, AVX512_BF16, "float32"),  # AMX is what makes bfloat16 fast; AVX-512 BF16 alone has not been measured
    (0, ZEN3, "float32"),
    (0, frozenset(), "float32"),
])
def test_auto_picks_float16_on_a_gpu_bfloat16_with_amx_else_float32(gpus, flags, expected):
    precision, why = devices.choose_precision("auto", gpus=gpus, flags=flags)
    assert precision == expected and why.startswith("auto:")


@pytest.mark.parametrize("requested", ["float32", "bfloat16", "float16"])
def test_an_explicit_precision_is_kept_where_the_hardware_has_it(requested, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.base.devices"):
        assert devices.choose_precision(requested, gpus=1, flags=AMX) == (requested, "asked for")
    assert not caplog.records


def test_float16_without_a_gpu_is_refused_with_what_to_do_instead():
    with pytest.raises(UserError, match="float16 needs a GPU.*--precision auto"):
        devices.choose_precision("float16", gpus=0, flags=AMX)


def test_bfloat16_on_a_cpu_without_bfloat16_units_runs_with_a_warning_that_says_how_slow(caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.base.devices"):
        assert devices.choose_precision("bfloat16", gpus=0, flags=ZEN3)[0] == "bfloat16"
    message = " ".join(record.getMessage() for record in caplog.records)
    assert "no bfloat16 units" in message and f"{devices.EMULATED_BFLOAT16_SLOWDOWN}x slower" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipeline.base.devices"):
        devices.choose_precision("bfloat16", gpus=0, flags=AVX512_BF16)
    assert not caplog.records


def test_an_unknown_precision_is_refused():
    with pytest.raises(UserError, match="--precision 'float8' is unknown; choose one of auto, float32"):
        devices.choose_precision("float8", gpus=0, flags=AMX)


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
