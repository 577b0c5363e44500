"""GPU configuration, checked on a CPU machine through a stand-in TensorFlow that records what is asked of it."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from pipeline import devices


class FakeTensorFlow:
    """The few tf.config calls configure_devices and extraction_precision make, recorded."""

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


@pytest.fixture(autouse=True)
def restore_precision_choice(monkeypatch):
    monkeypatch.setattr(devices, "_EXTRACTION_MIXED_PRECISION", False)


def test_every_gpu_gets_memory_growth_and_extraction_runs_in_float32_by_default():
    fake = FakeTensorFlow(["gpu:0", "gpu:1"])
    assert devices.configure_devices(tf_module=fake) == {"device": "GPU", "gpus": 2, "policy": "float32"}
    assert fake.memory_growth == {"gpu:0": True, "gpu:1": True}
    with devices.extraction_precision(tf_module=fake):
        assert fake.optimizer_options["auto_mixed_precision"] is False
    assert fake.option_history == []


def test_mixed_precision_on_a_gpu_rewrites_only_what_runs_during_extraction():
    fake = FakeTensorFlow(["gpu:0"])
    assert devices.configure_devices(mixed_precision=True, tf_module=fake)["policy"] == "mixed_float16"
    assert fake.option_history == []  # nothing global: the head's training graphs stay float32
    with devices.extraction_precision(tf_module=fake):
        assert fake.optimizer_options["auto_mixed_precision"] is True
    assert fake.optimizer_options["auto_mixed_precision"] is False
    assert fake.option_history == [{"auto_mixed_precision": True}, {"auto_mixed_precision": False}]


def test_the_rewrite_is_switched_back_off_when_extraction_fails():
    fake = FakeTensorFlow(["gpu:0"])
    devices.configure_devices(mixed_precision=True, tf_module=fake)
    with pytest.raises(KeyboardInterrupt), devices.extraction_precision(tf_module=fake):
        raise KeyboardInterrupt
    assert fake.optimizer_options["auto_mixed_precision"] is False


def test_mixed_precision_without_a_gpu_warns_and_stays_float32(caplog):
    fake = FakeTensorFlow([])
    with caplog.at_level(logging.WARNING, logger="pipeline.devices"):
        result = devices.configure_devices(mixed_precision=True, tf_module=fake)
    assert result == {"device": "CPU", "gpus": 0, "policy": "float32"}
    assert fake.memory_growth == {}
    assert any("--mixed-precision" in record.getMessage() and "none" in record.getMessage() for record in caplog.records)
    with devices.extraction_precision(tf_module=fake):
        pass
    assert fake.option_history == []
