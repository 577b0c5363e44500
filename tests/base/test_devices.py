"""GPU configuration and grappler's rewrites, checked on a CPU machine through a stand-in TensorFlow that records
what is asked of it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipeline.base import devices


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


def test_every_gpu_gets_memory_growth():
    fake = FakeTensorFlow(["gpu:0", "gpu:1"])
    assert devices.configure_devices(tf_module=fake) == {"device": "GPU", "gpus": 2}
    assert fake.memory_growth == {"gpu:0": True, "gpu:1": True}
    assert fake.option_history == []  # nothing global: the head's training graphs stay float32


def test_no_gpu_means_no_memory_settings():
    fake = FakeTensorFlow([])
    assert devices.configure_devices(tf_module=fake) == {"device": "CPU", "gpus": 0}
    assert fake.memory_growth == {}


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


