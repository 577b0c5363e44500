"""--precision: the reduced-precision rebuild of a converted encoder, its accuracy bound, and where the choice is recorded."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import tensorflow as tf
from helpers import (
    AVX2_INT8,
    NO_AVX2,
    SAPPHIRE_RAPIDS,
    ZEN3,
    ZEN4,
    assert_run_and_export_predict_the_runs_test_probabilities,
    tiny_review_rows,
    write_tiny_csv,
)

from pipeline.encoders.encoder import load_encoder
from pipeline.features import cache
from pipeline.features.extraction import encode_texts, make_feature_function

TEXTS = [text for text, _ in tiny_review_rows(80)] + ["", "the story is not great and the film is bad " * 3]
# The bound for every text's feature vector against float32 (docs/quality.md has the demo's figures).
MIN_COSINE = 0.999


def cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return (first * second).sum(axis=1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
@pytest.mark.parametrize("pooling, layers", [("mean", (-2, -1)), ("cls", (-1,)), ("pooled", (-1,))])
def test_reduced_precision_features_stay_within_the_cosine_bound_of_float32(tiny_encoder_dir, precision, pooling, layers):
    options = {"pooling": pooling, "layers": layers, "max_seq_length": 32}
    full = encode_texts(TEXTS, load_encoder(str(tiny_encoder_dir)), **options)
    reduced = encode_texts(TEXTS, load_encoder(str(tiny_encoder_dir), precision=precision), **options)
    assert reduced.dtype == np.float32 and reduced.shape == full.shape
    similarity = cosines(full, reduced)
    assert similarity.min() >= MIN_COSINE, (similarity.min(), similarity.mean())
    assert not np.array_equal(full, reduced)  # it really computed in another precision


BATCH_MATMULS = ("BatchMatMulV2", "BatchMatMulV3")


def _graph_ops(encoder, pooling="mean", layers=(-1,)):
    function = make_feature_function(encoder, pooling, layers, "concat")
    graph = function.get_concrete_function().graph
    ops = list(graph.get_operations())
    for function_def in graph.as_graph_def().library.function:
        ops.extend(function_def.node_def)
    return ops


def _dtype_of(op) -> str:
    if hasattr(op, "get_attr"):
        return tf.as_dtype(op.get_attr("T")).name
    return tf.as_dtype(op.attr["T"].type).name


def _op_type(op) -> str:
    return op.type if hasattr(op, "type") else op.op


def _products_and_norms(encoder):
    ops = [op for op in _graph_ops(encoder) if _op_type(op) in ("MatMul", *BATCH_MATMULS, "Softmax", "Rsqrt")]
    return {(_op_type(op), _dtype_of(op)) for op in ops}, ops


def test_bfloat16_runs_every_large_product_in_bfloat16_and_keeps_norms_and_softmax_in_float32(tiny_encoder_dir):
    encoder = load_encoder(str(tiny_encoder_dir), precision="bfloat16")
    kinds, ops = _products_and_norms(encoder)
    layers = encoder.available_layers
    matmuls = [op for op in ops if _op_type(op) == "MatMul" and _dtype_of(op) == "bfloat16"]
    batch_matmuls = [op for op in ops if _op_type(op) in BATCH_MATMULS and _dtype_of(op) == "bfloat16"]
    assert len(matmuls) == 6 * layers and len(batch_matmuls) == 2 * layers  # q, k, v, output, intermediate, output
    assert ("Softmax", "float32") in kinds and ("Rsqrt", "float32") in kinds
    assert ("Softmax", "bfloat16") not in kinds and ("Rsqrt", "bfloat16") not in kinds
    float32_encoder = load_encoder(str(tiny_encoder_dir))
    assert {dtype for _, dtype in _products_and_norms(float32_encoder)[0]} == {"float32"}


def test_weights_are_converted_once_not_on_every_call(tiny_encoder_dir):
    encoder = load_encoder(str(tiny_encoder_dir), precision="bfloat16")
    assert load_encoder(str(tiny_encoder_dir), precision="bfloat16") is encoder
    kernels = [variable for variable in encoder.reduced_layer.variables if variable.name.endswith(
        ("query_kernel_bfloat16:0", "intermediate_kernel_bfloat16:0"))]
    assert kernels and all(variable.dtype == tf.bfloat16 for variable in kernels)
    # No cast in the graph reads a weight: the products read the converted variables directly.
    graph = make_feature_function(encoder, "mean").get_concrete_function().graph
    nodes = {node.name: node for function in graph.as_graph_def().library.function for node in function.node_def}
    casts_of_weights = [node for node in nodes.values() if node.op == "Cast"
                        and nodes.get(node.input[0].split(":")[0], node).op == "ReadVariableOp"]
    assert casts_of_weights == []


def test_the_precision_is_part_of_the_cache_key_and_float32_keys_are_unchanged():
    description = {"fingerprint": "f" * 64, "vocab_sha256": "v" * 64, "do_lower_case": True}
    settings = {"pooling": "mean", "layers": (-1,), "combine": "concat", "max_seq_length": 32, "sorted_digests": []}
    before = cache.cache_key(description, **settings)  # as an entry made before the precision existed
    assert cache.cache_key({**description, "precision": "float32"}, **settings) == before
    keys = {cache.cache_key({**description, "precision": precision}, **settings)
            for precision in ("float32", "bfloat16", "float16")}
    assert len(keys) == 3


def test_an_encoder_from_elsewhere_gets_the_graph_rewrite_with_a_warning(tmp_path, tiny_encoder_dir, caplog):
    from tiny_bert import save_old_signature_model

    foreign = save_old_signature_model(tiny_encoder_dir, tmp_path / "old-hub-bert")
    with caplog.at_level(logging.WARNING, logger="pipeline.encoders.encoder"):
        encoder = load_encoder(str(foreign), precision="bfloat16")
    assert encoder.precision_method == "graph rewrite" and encoder.reduced_layer is None
    assert encoder.graph_rewrite == "auto_mixed_precision_onednn_bfloat16"
    assert any("not converted by this pipeline" in record.getMessage() for record in caplog.records)
    features = encode_texts(TEXTS[:10], encoder, pooling="pooled", max_seq_length=32)
    full = encode_texts(TEXTS[:10], load_encoder(str(foreign)), pooling="pooled", max_seq_length=32)
    assert cosines(full, features).min() >= MIN_COSINE
    assert tf.config.optimizer.get_experimental_options().get("auto_mixed_precision_onednn_bfloat16") is not True


def _run_in_process(arguments, capsys, caplog) -> tuple[int, str, str]:
    """(exit status, stdout, log lines) of the command line, in this process (no TensorFlow start-up per run)."""
    from pipeline.commands.cli import main

    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pipeline"):
        status = main([str(argument) for argument in arguments])
    return status, capsys.readouterr().out, "\n".join(record.getMessage() for record in caplog.records)


def test_run_records_the_precision_everywhere_and_a_float32_run_does_not_reuse_bfloat16_features(
        tmp_path, tiny_encoder_dir, capsys, caplog):
    data = write_tiny_csv(tmp_path / "reviews.csv", 80)
    common = ["run", "--data", data, "--encoder", tiny_encoder_dir, "--max-seq-length", "32", "--epochs", "2",
              "--ensemble", "1", "--cache-dir", tmp_path / "cache"]  # one head: this test is about precision
    status, stdout, logged = _run_in_process([*common, "--precision", "bfloat16", "--output-dir", tmp_path / "bf16"],
                                             capsys, caplog)
    assert status == 0, logged
    assert "precision: bfloat16 (asked for)" in logged
    assert ", bfloat16), cache miss" in stdout
    config = json.loads((tmp_path / "bf16" / "config.json").read_text())
    metrics = json.loads((tmp_path / "bf16" / "metrics.json").read_text())
    assert config["precision"] == "bfloat16" and config["encoder_info"]["precision"] == "bfloat16"
    assert metrics["precision"] == {"used": "bfloat16", "why": "asked for", "method": "rebuilt"}
    entry = tmp_path / "cache" / metrics["features"]["cache_entry"].rsplit("/", 1)[-1]
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["encoder"]["precision"] == "bfloat16" and manifest["encoder"]["precision_method"] == "rebuilt"

    status, stdout, logged = _run_in_process([*common, "--precision", "float32", "--output-dir", tmp_path / "fp32"],
                                             capsys, caplog)
    assert status == 0, logged
    assert ", float32), cache miss" in stdout
    full_metrics = json.loads((tmp_path / "fp32" / "metrics.json").read_text())
    assert full_metrics["features"]["cache_entry"] != metrics["features"]["cache_entry"]
    status, stdout, logged = _run_in_process([*common, "--precision", "bfloat16", "--output-dir", tmp_path / "again"],
                                             capsys, caplog)
    assert status == 0 and ", bfloat16), cache hit" in stdout, logged


# An older x86 CPU (AVX, no AVX2): neither bfloat16 units nor the AVX2 int8 was measured on, so `auto` is float32.
NO_AVX2_CPU = frozenset({"sse4_2", "avx", "aes"})


def _on_machine(monkeypatch, *, gpus: int, flags: frozenset[str]) -> None:
    """Makes `run` see another machine: TensorFlow's start-up reports `gpus` GPUs, /proc/cpuinfo lists `flags`
    (the real work still runs on this CPU, emulating bfloat16 where it has no units)."""
    from pipeline.base import devices, precision

    monkeypatch.setattr(devices, "_STARTED", {"device": "GPU" if gpus else "CPU", "gpus": gpus})
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)


def _says_why(summary: str, precision: str, reason: str) -> bool:
    """True when one line of the run's summary names the precision used and why it was chosen."""
    return any(precision in line and reason in line for line in summary.splitlines())


@pytest.mark.parametrize("flags, reason", [
    (SAPPHIRE_RAPIDS, "auto: this CPU has AMX (amx_bf16)"),
    (ZEN4, "auto: this CPU has AVX512_BF16 (avx512_bf16)"),
], ids=["sapphire-rapids", "zen4"])
@pytest.mark.parametrize("foreign", [False, True], ids=["ours", "foreign"])
def test_auto_on_a_cpu_with_bfloat16_units_is_bfloat16_for_our_encoders_and_float32_for_others(
        tmp_path, tiny_encoder_dir, monkeypatch, flags, reason, foreign):
    """An encoder the pipeline cannot rebuild would get grappler's bfloat16 rewrite, slower than float32 on
    AMX and on Zen 4 (docs/benchmarks.md), so `auto` keeps it in float32 on both."""
    from tiny_bert import save_old_signature_model

    from pipeline.base.config import RunConfig
    from pipeline.runs.prepare import prepare

    _on_machine(monkeypatch, gpus=0, flags=flags)
    encoder_dir = save_old_signature_model(tiny_encoder_dir, tmp_path / "old-hub-bert") if foreign else tiny_encoder_dir
    data = write_tiny_csv(tmp_path / "reviews.csv", 40)
    prepared = prepare(RunConfig(data=str(data), encoder=str(encoder_dir), max_seq_length=32, pooling="pooled"))
    if foreign:
        assert (prepared.precision, prepared.encoder.precision_method) == ("float32", None)
        assert prepared.precision_reason.startswith("auto: TensorFlow's bfloat16 rewrite")
        assert prepared.precision_reason.endswith("is slower than float32")
    else:
        assert (prepared.precision, prepared.encoder.precision_method) == ("bfloat16", "rebuilt")
        assert prepared.precision_reason == reason
    assert prepared.encoder.precision == prepared.precision and prepared.config.precision == prepared.precision


def test_auto_on_a_zen4_computes_bfloat16_features_of_its_own_and_leaves_the_float32_ones_to_float32(
        tmp_path, tiny_encoder_dir, monkeypatch, capsys, caplog):
    """A cache filled by `auto` on a CPU without AVX2 (or on a Zen 4 before `auto` chose bfloat16 there) holds
    float32 features: `auto` on a Zen 4 must not read them as bfloat16, and they must still serve float32 afterwards.
    Each run's summary says which precision `auto` chose and why."""
    data = write_tiny_csv(tmp_path / "reviews.csv", 80)
    common = ["run", "--data", data, "--encoder", tiny_encoder_dir, "--max-seq-length", "32", "--epochs", "2",
              "--ensemble", "1", "--cache-dir", tmp_path / "cache"]
    zen4_reason = "auto: this CPU has AVX512_BF16 (avx512_bf16)"
    runs = {}
    for name, flags, precision, reason, cache_state in [
        ("no-avx2", NO_AVX2_CPU, "float32", NO_AVX2, "miss"),
        ("zen4", ZEN4, "bfloat16", zen4_reason, "miss"),
        ("no-avx2-again", NO_AVX2_CPU, "float32", NO_AVX2, "hit"),
    ]:
        _on_machine(monkeypatch, gpus=0, flags=flags)
        status, stdout, logged = _run_in_process([*common, "--output-dir", tmp_path / name], capsys, caplog)
        assert status == 0, logged
        assert f"precision: {precision} ({reason})" in logged
        assert f", {precision}), cache {cache_state}" in stdout, stdout
        assert _says_why(stdout, precision, reason), stdout
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())

    zen4 = runs["zen4"]
    assert zen4["precision"] == {"used": "bfloat16", "why": zen4_reason, "method": "rebuilt"}
    assert json.loads((tmp_path / "zen4" / "config.json").read_text())["precision"] == "bfloat16"
    entries = {name: metrics["features"]["cache_entry"] for name, metrics in runs.items()}
    assert entries["zen4"] != entries["no-avx2"] and entries["no-avx2-again"] == entries["no-avx2"]
    manifest = json.loads((tmp_path / "cache" / entries["zen4"].rsplit("/", 1)[-1] / "manifest.json").read_text())
    assert manifest["encoder"]["precision"] == "bfloat16"


@pytest.mark.parametrize("gpus, flags, precision, reason", [
    (0, SAPPHIRE_RAPIDS, "bfloat16", "auto: this CPU has AMX (amx_bf16)"),
    (0, ZEN3, "int8", AVX2_INT8),
    (1, ZEN4, "float16", "auto: a GPU"),
], ids=["sapphire-rapids", "zen3", "gpu"])
def test_the_run_summary_says_why_auto_chose_its_precision(tmp_path, tiny_encoder_dir, monkeypatch, capsys, caplog,
                                                           gpus, flags, precision, reason):
    """The other machines of the issue (Zen 4 and a CPU without AVX2 are in the cache test above)."""
    _on_machine(monkeypatch, gpus=gpus, flags=flags)
    data = write_tiny_csv(tmp_path / "reviews.csv", 40)
    status, stdout, logged = _run_in_process(["run", "--data", data, "--encoder", tiny_encoder_dir, "--max-seq-length",
                                              "32", "--epochs", "1", "--ensemble", "1", "--cache-dir", tmp_path / "cache",
                                              "--output-dir", tmp_path / "run"], capsys, caplog)
    assert status == 0, logged
    assert _says_why(stdout, precision, reason), stdout
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["precision"]["why"] == reason


def test_a_bfloat16_run_exports_and_predicts_in_bfloat16_as_the_run_did(tmp_path, tiny_encoder_dir):
    from pipeline.base.config import RunConfig
    from pipeline.runs.export import export_run
    from pipeline.runs.run import run

    data = write_tiny_csv(tmp_path / "reviews.csv", 80)
    run(RunConfig(data=str(data), encoder=str(tiny_encoder_dir), max_seq_length=32, pooling="mean", epochs=2,
                  ensemble=1, precision="bfloat16", output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache")),
        show_progress=False)
    exported = export_run(tmp_path / "run", tmp_path / "exported")
    assert json.loads((exported / "export_info.json").read_text())["precision"] == "bfloat16"
    assert_run_and_export_predict_the_runs_test_probabilities(tmp_path / "run", exported)
