"""--precision int8: the TFLite dynamic-range route for our converter's encoders (pipeline.encoders.int8), its
cosine bound, the cached conversion, the fallback for encoders from elsewhere, and where the choice is recorded."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_review_rows, write_tiny_csv
from test_precision import _run_in_process, cosines

from pipeline.base.precision import check_request, choose_precision
from pipeline.encoders import int8
from pipeline.encoders.encoder import load_encoder
from pipeline.features import cache
from pipeline.features.extraction import encode_texts

TEXTS = [text for text, _ in tiny_review_rows(80)] + ["", "the story is not great and the film is bad " * 3]
# The tiny test encoder's random weights give int8 features a cosine of at least 0.997 (mean pooling 0.999); the
# demo encoder's bound is in docs/quality.md. 0.99 is the floor.
MIN_COSINE = 0.99


@pytest.fixture(scope="module")
def int8_encoder(tiny_encoder_dir):
    return load_encoder(str(tiny_encoder_dir), precision="int8")


@pytest.mark.parametrize("pooling, layers", [("mean", (-2, -1)), ("cls", (-1,)), ("pooled", (-1,))])
def test_int8_features_are_float32_and_within_the_cosine_bound_of_float32(tiny_encoder_dir, int8_encoder, pooling, layers):
    options = {"pooling": pooling, "layers": layers, "max_seq_length": 32}
    full = encode_texts(TEXTS, load_encoder(str(tiny_encoder_dir)), **options)
    quantized = encode_texts(TEXTS, int8_encoder, **options)
    assert quantized.dtype == np.float32 and quantized.shape == full.shape
    similarity = cosines(full, quantized)
    assert similarity.min() >= MIN_COSINE, (similarity.min(), similarity.mean())
    assert not np.array_equal(full, quantized)  # it really computed with int8 weights


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_the_dense_products_have_int8_weights_and_everything_else_stays_float32(tiny_encoder_dir, int8_encoder):
    path = int8.int8_model_path(tiny_encoder_dir)
    interpreter = tf.lite.Interpreter(model_path=str(path))
    ops = interpreter._get_ops_details()  # the op list, with each op's input tensor indices
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    products = [op for op in ops if op["op_name"] == "FULLY_CONNECTED"]
    layers = int8_encoder.available_layers
    # q, k, v, attention output, intermediate, output per layer, and the pooler
    assert len(products) == 6 * layers + 1
    assert all(tensors[op["inputs"][1]]["dtype"] == np.int8 for op in products)
    assert all(tensors[op["outputs"][0]]["dtype"] == np.float32 for op in products)
    for kind in ("SOFTMAX", "RSQRT", "GELU", "BATCH_MATMUL"):
        kind_ops = [op for op in ops if op["op_name"] == kind]
        assert kind_ops and all(tensors[op["outputs"][0]]["dtype"] == np.float32 for op in kind_ops), kind
    assert "FlexStridedSlice" not in {op["op_name"] for op in ops}  # no TF Select op: the wheel's interpreter runs it


def test_the_conversion_is_cached_beside_the_encoder_and_redone_only_for_other_weights(tmp_path, tiny_encoder_dir, caplog):
    import shutil

    folder = tmp_path / "encoder"
    shutil.copytree(tiny_encoder_dir, folder)
    with caplog.at_level(logging.INFO, logger="pipeline.encoders.int8"):
        load_encoder(str(folder), precision="int8")
        converted = int8.int8_model_path(folder)
        first = converted.stat().st_mtime_ns
        assert sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith(".")) == [
            "encoder", "encoder.int8.json", "encoder.int8.tflite"]
        load_encoder(str(folder), precision="int8", reload=True)
        assert converted.stat().st_mtime_ns == first
        assert sum("converting" in record.getMessage() for record in caplog.records) == 1
        record = json.loads(converted.with_name("encoder.int8.json").read_text())
        record["source_fingerprint"] = "0" * 64  # as if the folder's weights had changed since
        converted.with_name("encoder.int8.json").write_text(json.dumps(record))
        load_encoder(str(folder), precision="int8", reload=True)
    assert sum("converting" in record.getMessage() for record in caplog.records) == 2
    assert not list(tmp_path.glob(".*.partial"))


def test_an_explicit_int8_is_kept_and_an_unknown_precision_names_int8():
    assert choose_precision("int8", gpus=0, flags=frozenset()) == ("int8", "asked for")
    from pipeline.base.errors import UserError

    with pytest.raises(UserError, match="float16, int8"):
        check_request("int4", mixed_precision=False, fine_tune=False)


def test_an_encoder_from_elsewhere_asked_for_int8_gets_float32_and_one_line(tmp_path, tiny_encoder_dir, caplog):
    from tiny_bert import save_old_signature_model

    from pipeline.base.config import RunConfig
    from pipeline.runs.prepare import prepare

    foreign = save_old_signature_model(tiny_encoder_dir, tmp_path / "old-hub-bert")
    data = write_tiny_csv(tmp_path / "reviews.csv", 40)
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        prepared = prepare(RunConfig(data=str(data), encoder=str(foreign), max_seq_length=32, pooling="pooled",
                                     precision="int8"))
    assert (prepared.precision, prepared.encoder.precision, prepared.encoder.precision_method) == ("float32", "float32", None)
    assert prepared.precision_reason.startswith("int8 asked for, but int8 needs an encoder converted by this pipeline")
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "extracting in float32" in warnings[0]
    assert not int8.int8_model_path(foreign).exists()


def test_the_precision_is_part_of_the_cache_key():
    description = {"fingerprint": "f" * 64, "vocab_sha256": "v" * 64, "do_lower_case": True}
    settings = {"pooling": "mean", "layers": (-1,), "combine": "concat", "max_seq_length": 32, "sorted_digests": []}
    keys = {cache.cache_key({**description, "precision": precision}, **settings) for precision in ("float32", "int8")}
    assert len(keys) == 2


def test_an_int8_run_records_int8_everywhere_and_its_export_says_it_computes_float32(
        tmp_path, tiny_encoder_dir, capsys, caplog):
    data = write_tiny_csv(tmp_path / "reviews.csv", 80)
    common = ["run", "--data", data, "--encoder", tiny_encoder_dir, "--max-seq-length", "32", "--epochs", "2",
              "--ensemble", "1", "--cache-dir", tmp_path / "cache"]
    status, stdout, logged = _run_in_process([*common, "--precision", "int8", "--output-dir", tmp_path / "int8"],
                                             capsys, caplog)
    assert status == 0, logged
    assert "precision: int8 (asked for)" in logged and ", int8), cache miss" in stdout
    config = json.loads((tmp_path / "int8" / "config.json").read_text())
    metrics = json.loads((tmp_path / "int8" / "metrics.json").read_text())
    assert config["precision"] == "int8" and config["encoder_info"]["precision"] == "int8"
    assert metrics["precision"] == {"used": "int8", "why": "asked for", "method": int8.METHOD}
    entry = tmp_path / "cache" / metrics["features"]["cache_entry"].rsplit("/", 1)[-1]
    assert json.loads((entry / "manifest.json").read_text())["encoder"]["precision"] == "int8"
    status, stdout, logged = _run_in_process([*common, "--precision", "float32", "--output-dir", tmp_path / "fp32"],
                                             capsys, caplog)
    assert status == 0 and ", float32), cache miss" in stdout, logged

    status, _, logged = _run_in_process(["export", "--run", tmp_path / "int8", "--output", tmp_path / "exported"], capsys, caplog)
    assert status == 0, logged
    said = [record for record in caplog.records if "a SavedModel cannot carry" in record.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO  # documented behaviour, nothing to fix: no warning
    assert "the export computes them in float32" in said[0].getMessage()
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING and record.name.startswith("pipeline")]
    export_info = json.loads((tmp_path / "exported" / "export_info.json").read_text())
    assert (export_info["precision"], export_info["run_precision"]) == ("float32", "int8")


# The export of an int8 run computes float32 features, each within the quality guard's cosine of the run's int8 ones
# (MIN_COSINE above). Through the tiny test run's head such features moved a test probability by 0.021-0.046 in three
# tiny runs (its random weights are far rougher than the demo encoder's); 0.1 allows for other seeds and heads.
INT8_EXPORT_TOLERANCE = 0.1


def test_an_auto_int8_runs_export_agrees_with_the_run_within_the_quality_guard(tmp_path, tiny_encoder_dir, monkeypatch,
                                                                                caplog):
    """`auto` on an AVX2 CPU runs int8 and its export computes float32. The two differ only by the features: the
    export equals the run's head on float32 features (the export's own check), predict on the run folder gives the
    run's int8 test probabilities, and every test text's float32 features are within the guard of its int8 ones."""
    from helpers import AVX2_INT8, ZEN3, write_tiny_csv
    from test_precision import _on_machine

    from pipeline.base.config import RunConfig
    from pipeline.runs.explore import load_run_splits
    from pipeline.runs.export import PROBE_TOLERANCE, export_run
    from pipeline.runs.predict import load_model, predict_texts
    from pipeline.runs.run import run
    from pipeline.runs.run_folder import read_run_folder

    _on_machine(monkeypatch, gpus=0, flags=ZEN3)
    data = write_tiny_csv(tmp_path / "reviews.csv", 200)
    result = run(RunConfig(data=str(data), encoder=str(tiny_encoder_dir), max_seq_length=32, pooling="mean", epochs=2,
                           ensemble=1, output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache")),
                 show_progress=False)
    assert result.metrics["precision"] == {"used": "int8", "why": AVX2_INT8, "method": int8.METHOD}
    with caplog.at_level(logging.INFO, logger="pipeline"):
        exported = export_run(tmp_path / "run", tmp_path / "exported")
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING and record.name.startswith("pipeline")]
    assert json.loads((exported / "export_info.json").read_text())["precision"] == "float32"

    finished = read_run_folder(tmp_path / "run")
    _, recorded = finished.test_predictions()
    texts = load_run_splits(finished.config).test.texts
    from_run = predict_texts(load_model(tmp_path / "run"), texts, show_progress=False).probabilities
    from_export = predict_texts(load_model(exported), texts, show_progress=False).probabilities
    np.testing.assert_allclose(from_run, recorded, atol=PROBE_TOLERANCE)  # predict on the run computes int8, as it did
    settings = {"pooling": "mean", "layers": finished.layers, "max_seq_length": 32}
    float32 = encode_texts(texts, load_encoder(str(tiny_encoder_dir)), **settings)
    quantized = encode_texts(texts, load_encoder(str(tiny_encoder_dir), precision="int8"), **settings)
    assert cosines(float32, quantized).min() >= MIN_COSINE
    difference = np.abs(from_export - recorded).max()
    assert 0 < difference <= INT8_EXPORT_TOLERANCE, difference  # it differs (float32), and only as the guard allows


def test_beam_writes_the_local_int8_entry(tmp_path, tiny_encoder_dir, monkeypatch):
    """Beam's workers load the launcher's settled precision; the int8 model converted by the launcher serves them."""
    pytest.importorskip("apache_beam", reason="Apache Beam is not installed: run `make beam` (make test does)")
    from test_beam import assert_same_entry, entry_of

    from pipeline.base.config import RunConfig
    from pipeline.runs.beam_extract import extract_with_beam
    from pipeline.runs.prepare import extract, prepare

    monkeypatch.setattr(cache, "SHARD_ROWS", 7)
    data = write_tiny_csv(tmp_path / "reviews.csv")
    config = RunConfig(data=str(data), encoder=str(tiny_encoder_dir), max_seq_length=16, precision="int8",
                       cache_dir=str(tmp_path / "local"))
    local = extract(prepare(config), show_progress=False)
    assert json.loads((local.entry_dir / "manifest.json").read_text())["encoder"]["precision"] == "int8"
    result = extract_with_beam(config.replace(cache_dir=str(tmp_path / "beam")), [])
    assert result.cache_hit is False
    assert_same_entry(local.entry_dir, entry_of(tmp_path / "beam"))


def test_fine_tuning_with_int8_is_one_error_line(tmp_path, capsys):
    from pipeline.commands.cli import main

    status = main(["run", "--data", str(write_tiny_csv(tmp_path / "reviews.csv", 40)), "--fine-tune", "--precision", "int8"])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(error) == 1
    assert error[0].startswith("error: --precision int8 is for frozen features") and "drop one of the two" in error[0]


def test_an_int8_model_is_obtainable_when_cached_or_writable(tmp_path, tiny_encoder_dir, int8_encoder, monkeypatch):
    """Root may write anywhere, so the folder's permission is stood in for: with it denied, a cached, current model
    still serves, and a folder without one says why it cannot have one."""
    import os
    import shutil

    from pipeline.encoders.encoder import load_encoder as load

    fingerprint = load(str(tiny_encoder_dir)).fingerprint
    assert int8.int8_model_unobtainable(tiny_encoder_dir, fingerprint) is None
    copy = shutil.copytree(tiny_encoder_dir, tmp_path / "encoder")
    assert int8.int8_model_unobtainable(copy, fingerprint) is None  # writable: converted on first use
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert int8.int8_model_unobtainable(tiny_encoder_dir, fingerprint) is None  # converted already (the fixture)
    assert int8.int8_model_unobtainable(copy, fingerprint) == (
        f"its int8 model is converted once and written beside {copy}, and {tmp_path} is not writable")


def test_calls_from_several_threads_each_get_an_interpreter_made_on_demand(tiny_encoder_dir, int8_encoder):
    from concurrent.futures import ThreadPoolExecutor

    layer = int8.Int8Encoder(int8.int8_model_path(tiny_encoder_dir), int8_encoder.available_layers,
                             int8_encoder.hidden_size, copies=2)
    assert layer._runners_made == 0  # a run whose features are all cached makes none
    rng = np.random.default_rng(0)
    batches = [rng.integers(5, 100, size=(rows, width), dtype=np.int32) for rows, width in [(3, 7), (5, 12), (1, 4)] * 4]
    one_at_a_time = [layer.run(ids, np.ones_like(ids), np.zeros_like(ids)) for ids in batches]
    assert layer._runners_made == 1  # a caller that never overlaps its calls makes one
    with ThreadPoolExecutor(4) as pool:
        side_by_side = list(pool.map(lambda ids: layer.run(ids, np.ones_like(ids), np.zeros_like(ids)), batches))
    assert layer._runners_made == 2  # never more than `copies`, however many threads call
    for expected, got in zip(one_at_a_time, side_by_side):
        assert len(got) == 1 + int8_encoder.available_layers
        for expected_array, got_array in zip(expected, got):
            np.testing.assert_array_equal(got_array, expected_array)


def test_an_int8_encoder_extracts_two_batches_at_a_time_with_the_same_features(tiny_encoder_dir, int8_encoder,
                                                                                monkeypatch):
    from pipeline.encoders.encoder import Encoder

    assert int8_encoder.concurrent_batches == int8.INTERPRETER_COPIES == 2
    assert load_encoder(str(tiny_encoder_dir)).concurrent_batches == 1  # TensorFlow's kernels use every core already
    options = {"pooling": "mean", "layers": (-1,), "max_seq_length": 32, "batch_size": 4}
    two_at_a_time = encode_texts(TEXTS, int8_encoder, **options)
    monkeypatch.setattr(Encoder, "concurrent_batches", property(lambda self: 1))
    np.testing.assert_array_equal(two_at_a_time, encode_texts(TEXTS, int8_encoder, **options))


def test_an_int8_encoder_already_converted_loads_no_saved_model_until_asked_to_train(tmp_path, tiny_encoder_dir,
                                                                                    int8_encoder, monkeypatch):
    import shutil

    from pipeline.encoders import encoder as encoder_module

    folder = tmp_path / "encoder"
    shutil.copytree(tiny_encoder_dir, folder)
    for suffix in (int8.INT8_SUFFIX, int8.RECORD_SUFFIX):  # converted before, beside the folder
        shutil.copy(tiny_encoder_dir.with_name(tiny_encoder_dir.name + suffix), folder.with_name(folder.name + suffix))
    loads, load = [], encoder_module._load_layer
    monkeypatch.setattr(encoder_module, "_load_layer", lambda model_dir: loads.append(model_dir) or load(model_dir))
    copied = load_encoder(str(folder), precision="int8")
    options = {"pooling": "mean", "layers": (-2, -1), "max_seq_length": 32}
    np.testing.assert_array_equal(encode_texts(TEXTS, copied, **options), encode_texts(TEXTS, int8_encoder, **options))
    assert loads == []
    assert copied.layer is copied.layer and loads == [folder]  # the float32 model, for whoever asks for it
