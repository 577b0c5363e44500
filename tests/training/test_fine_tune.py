"""Fine-tuning on the tiny BERT: the encoder learns, a frozen run's does not, a killed run resumes to the
same result, the run exports like a frozen one, and its tuned encoder serves `--encoder`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO_ROOT, child_environment, run_cli, write_csv, write_tiny_csv

TINY_OPTIONS = ("--fine-tune", "--epochs", "3", "--learning-rate", "1e-3", "--batch-size", "16", "--max-seq-length", "16",
                "--quiet")


def encoder_variables(model_dir: Path) -> dict[str, np.ndarray]:
    """The trainable variables of a SavedModel encoder, by name."""
    import tensorflow_hub as hub

    layer = hub.KerasLayer(str(model_dir), trainable=True)
    return {variable.name: variable.numpy() for variable in layer.trainable_weights}


def training_log(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "training_log.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_csv(tmp_path_factory.mktemp("data") / "reviews.csv", 200)


@pytest.fixture(scope="module")
def fine_tuned_run(tmp_path_factory, tiny_encoder_dir, tiny_data) -> Path:
    """One uninterrupted fine-tuning run through the command line."""
    folder = tmp_path_factory.mktemp("fine-tuned")
    result = run_cli("run", "--data", tiny_data, "--encoder", tiny_encoder_dir, *TINY_OPTIONS,
                     "--output-dir", folder / "run", "--cache-dir", folder / "cache", artifacts=folder / "artifacts")
    assert result.returncode == 0, result.stderr
    return folder / "run"


# ---------------------------------------------------------------------------- batches, schedule, dropout


def test_epoch_batches_hold_every_row_once_depend_only_on_seed_and_epoch_and_pad_little():
    from pipeline.training.token_batches import epoch_batches, padding_fraction

    lengths = np.random.default_rng(0).integers(3, 60, size=5000)
    first = epoch_batches(lengths, 32, seed=1, epoch=0)
    assert sorted(np.concatenate(first).tolist()) == list(range(5000))
    assert all(len(batch) <= 32 for batch in first)
    assert [b.tolist() for b in first] == [b.tolist() for b in epoch_batches(lengths, 32, seed=1, epoch=0)]
    assert [b.tolist() for b in first] != [b.tolist() for b in epoch_batches(lengths, 32, seed=1, epoch=1)]
    random_batches = [np.random.default_rng(0).permutation(5000)[start : start + 32] for start in range(0, 5000, 32)]
    assert padding_fraction(lengths, first) < 0.05 < 0.3 < padding_fraction(lengths, random_batches)


def test_sorted_batches_cover_every_row_shortest_first():
    from pipeline.training.token_batches import sorted_batches

    lengths = [5, 3, 9, 3, 7]
    batches = sorted_batches(lengths, 2)
    assert [b.tolist() for b in batches] == [[1, 3], [0, 4], [2]]


def test_training_batches_are_packed_as_extraction_packs_them():
    from pipeline.training.fine_tune import TokenizedSplit
    from tokenization.packing import pack_inputs

    generator = np.random.default_rng(0)
    token_ids = [generator.integers(5, 100, generator.integers(0, 10)).tolist() for _ in range(50)]
    split = TokenizedSplit(token_ids, np.arange(50) % 2, max_seq_length=12, cls_id=2, sep_id=3,
                           sample_weights=np.arange(50) / 10)
    batches = [np.array([3, 1, 4]), np.array([10, 20]), np.array([0])]
    for (inputs, labels, weights), rows in zip(split.dataset(batches, with_labels=True), batches, strict=True):
        expected = pack_inputs([token_ids[row] for row in rows], max_seq_length=12, cls_id=2, sep_id=3)
        for tensor, name in zip(inputs, ("input_word_ids", "input_mask", "input_type_ids")):
            assert np.array_equal(tensor.numpy(), expected[name])
        assert np.array_equal(labels.numpy(), rows % 2) and np.allclose(weights.numpy(), rows / 10)
    (only_inputs,) = next(iter(split.dataset(batches, with_labels=False)))
    assert only_inputs[0].shape == (3, max(len(token_ids[row]) for row in batches[0]) + 2)


def test_learning_rate_warms_up_linearly_then_decays_to_zero():
    import tensorflow as tf

    from pipeline.training.fine_tune import WarmupLinearDecay

    schedule = WarmupLinearDecay(1e-4, total_steps=100, warmup_steps=10)
    values = [schedule.value(step) for step in range(101)]
    assert values[0] == pytest.approx(1e-5) and values[9] == pytest.approx(1e-4)
    assert values[10] == pytest.approx(1e-4) and values[55] == pytest.approx(0.5e-4) and values[100] == 0.0
    assert all(a <= b for a, b in zip(values[:10], values[1:10]))
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    in_graph = [float(schedule(tf.constant(step))) for step in (0, 9, 10, 55, 100)]
    assert in_graph == pytest.approx([values[step] for step in (0, 9, 10, 55, 100)], rel=1e-5)


def test_dropout_masks_follow_the_step_counter_and_inference_is_untouched():
    import tensorflow as tf

    from pipeline.training.fine_tune import StepSeededDropout

    inputs = tf.ones([4, 64])
    first, second = StepSeededDropout(0.5, seed=3), StepSeededDropout(0.5, seed=3)
    masks = [first(inputs, training=True).numpy() for _ in range(2)]
    assert not np.array_equal(masks[0], masks[1])  # a new mask every step
    assert np.array_equal(second(inputs, training=True).numpy(), masks[0])  # same seed and step, same mask
    second.step.assign(1)
    assert np.array_equal(second(inputs, training=True).numpy(), masks[1])  # a restored step draws the same mask
    assert np.array_equal(first(inputs, training=False).numpy(), inputs.numpy())


# ---------------------------------------------------------------------------- the run


def test_fine_tuning_trains_the_encoder_and_writes_a_complete_run_folder(fine_tuned_run, tiny_encoder_dir):
    metrics = json.loads((fine_tuned_run / "metrics.json").read_text())
    config = json.loads((fine_tuned_run / "config.json").read_text())
    assert metrics["mode"] == "fine-tune" and config["fine_tune"] is True and config["head"] == "fine-tune"
    assert config["layers"] == "-1" and config["pooling"] == "mean"
    assert metrics["training"]["texts_per_second"] > 0 and 0 <= metrics["fine_tune"]["padding_fraction"] < 0.5
    assert set(metrics["baseline"]["test"]) >= {"auroc", "accuracy"}  # the probe on frozen features, beside it
    assert metrics["test"]["auroc"] > 0.9
    log = training_log(fine_tuned_run)
    assert [row["epoch"] for row in log] == ["0", "1", "2"]
    assert float(log[-1]["loss"]) < float(log[0]["loss"])
    assert {"val_auroc", "val_pr_auc", "auroc", "pr_auc"} <= set(log[0])
    tuned, original = encoder_variables(fine_tuned_run / "encoder"), encoder_variables(tiny_encoder_dir)
    assert tuned.keys() == original.keys()
    changed = [name for name in tuned if not np.array_equal(tuned[name], original[name])]
    assert len(changed) > len(tuned) // 2
    assert not (fine_tuned_run / "checkpoints").exists() and not (fine_tuned_run / "INCOMPLETE").exists()
    assert (fine_tuned_run / "head.keras").is_file() and (fine_tuned_run / "encoder" / "assets" / "vocab.txt").is_file()


def test_learning_rate_of_every_step_and_hparams_reach_tensorboard(fine_tuned_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train = EventAccumulator(str(fine_tuned_run / "logs" / "train"), size_guidance={"tensors": 0})
    train.Reload()
    rates = [(event.step, float(np.asarray(tensor_value(event)))) for event in train.Tensors("learning_rate")]
    steps_per_epoch = -(-160 // 16)  # 200 rows: 160 train, 20 validation, 20 test
    assert [step for step, _ in rates] == list(range(3 * steps_per_epoch))
    peak = max(rate for _, rate in rates)
    assert peak == pytest.approx(1e-3) and rates[0][1] < peak and rates[-1][1] < peak / 10
    hparams = (fine_tuned_run / "logs" / "evaluation").glob("events.out.tfevents.*")
    assert any(b"fine_tune" in path.read_bytes() for path in hparams)


def tensor_value(event):
    import tensorflow as tf

    return tf.make_ndarray(event.tensor_proto)


def test_a_frozen_run_leaves_the_encoder_untouched(tmp_path, tiny_encoder_dir, tiny_data):
    from pipeline.encoders.encoder import model_fingerprint

    before = model_fingerprint(tiny_encoder_dir)
    result = run_cli("run", "--data", tiny_data, "--encoder", tiny_encoder_dir, "--epochs", "2", "--max-seq-length", "16",
                     "--quiet", "--output-dir", tmp_path / "run", artifacts=tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["mode"] == "frozen"
    assert not (tmp_path / "run" / "encoder").exists()
    assert model_fingerprint(tiny_encoder_dir) == before


def test_a_run_killed_mid_epoch_resumes_and_ends_as_the_uninterrupted_run(tmp_path, fine_tuned_run, tiny_encoder_dir,
                                                                          tiny_data):
    arguments = ["run", "--data", tiny_data, "--encoder", tiny_encoder_dir, *TINY_OPTIONS, "--output-dir", tmp_path / "run",
                 "--cache-dir", tmp_path / "cache"]
    environment = {"PIPELINE_ARTIFACTS": str(tmp_path / "artifacts"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    steps_per_epoch = 10
    killed = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "kill_during_fine_tuning.py"),
                             str(steps_per_epoch + 4), *map(str, arguments)], cwd=REPO_ROOT,
                            env=child_environment(env=environment), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    assert (tmp_path / "run" / "INCOMPLETE").exists() and len(training_log(tmp_path / "run")) == 1
    resumed = run_cli(*arguments, artifacts=tmp_path / "artifacts")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed after epoch 1" in resumed.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    reference = json.loads((fine_tuned_run / "metrics.json").read_text())
    assert metrics["fine_tune"]["resumed_after_epoch"] == 1
    assert (metrics["test"], metrics["val"]) == (reference["test"], reference["val"])
    with np.load(tmp_path / "run" / "test_predictions.npz") as ours, np.load(fine_tuned_run / "test_predictions.npz") as theirs:
        assert np.array_equal(ours["probabilities"], theirs["probabilities"])  # bit-identical on this machine
    assert training_log(tmp_path / "run") == training_log(fine_tuned_run)


def test_an_interrupted_run_with_other_settings_is_refused_and_kept(tmp_path, tiny_encoder_dir, tiny_data):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / "backup").mkdir(parents=True)
    (run_dir / "checkpoints" / "backup" / "checkpoint").write_text("model_checkpoint_path: \"ckpt-1\"\n")
    (run_dir / "INCOMPLETE").write_text("")
    (run_dir / "config.json").write_text(json.dumps({"learning_rate": 0.5}))
    result = run_cli("run", "--data", tiny_data, "--encoder", tiny_encoder_dir, *TINY_OPTIONS, "--output-dir", run_dir,
                     artifacts=tmp_path / "artifacts")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --output-dir") and "learning_rate" in result.stderr
    assert result.stderr.count("\n") == 1
    assert (run_dir / "checkpoints" / "backup" / "checkpoint").is_file()


# ---------------------------------------------------------------------------- export and predict


def test_export_and_predict_use_the_tuned_encoder(tmp_path, fine_tuned_run, tiny_data):
    from test_export import split_texts

    exported = run_cli("export", "--run", fine_tuned_run, "--output", tmp_path / "exported")
    assert exported.returncode == 0, exported.stderr
    info = json.loads((tmp_path / "exported" / "export_info.json").read_text())
    assert info["probe_max_difference"] <= 1e-4
    test_texts = split_texts(tiny_data).test.texts
    write_csv(tmp_path / "texts.csv", ["text"], [(text,) for text in test_texts])
    outputs = {}
    for name, model in (("run", fine_tuned_run), ("export", tmp_path / "exported")):
        result = run_cli("predict", "--model", model, "--input", tmp_path / "texts.csv", "--output", tmp_path / f"{name}.csv",
                         "--quiet")
        assert result.returncode == 0, result.stderr
        with open(tmp_path / f"{name}.csv", newline="", encoding="utf-8") as handle:
            outputs[name] = np.array([[float(row["probability_neg"]), float(row["probability_pos"])]
                                      for row in csv.DictReader(handle)])
    with np.load(fine_tuned_run / "test_predictions.npz") as stored:
        np.testing.assert_allclose(outputs["run"], stored["probabilities"], atol=1e-5)
    np.testing.assert_allclose(outputs["export"], outputs["run"], atol=1e-4)


def test_the_tuned_encoder_exports_alone_and_serves_frozen_extraction(tmp_path, fine_tuned_run, tiny_data, tiny_encoder_dir):
    result = run_cli("export", "--run", fine_tuned_run, "--output", tmp_path / "tuned", "--encoder-only")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tuned" / "saved_model.pb").is_file() and not list(tmp_path.glob(".tuned.*"))
    frozen = run_cli("run", "--data", tiny_data, "--encoder", tmp_path / "tuned", "--epochs", "2", "--max-seq-length", "16",
                     "--quiet", "--output-dir", tmp_path / "frozen", "--cache-dir", tmp_path / "cache",
                     artifacts=tmp_path / "artifacts")
    assert frozen.returncode == 0, frozen.stderr
    config = json.loads((tmp_path / "frozen" / "config.json").read_text())
    assert config["encoder_info"]["signature"] == "dict"
    assert config["encoder_info"]["fingerprint"] == json.loads(
        (fine_tuned_run / "metrics.json").read_text())["fine_tune"]["encoder_fingerprint"]


def test_encoder_only_export_of_a_frozen_run_is_refused(tmp_path, tiny_encoder_dir, tiny_data):
    run = run_cli("run", "--data", tiny_data, "--encoder", tiny_encoder_dir, "--epochs", "1", "--max-seq-length", "16",
                  "--quiet", "--output-dir", tmp_path / "run", artifacts=tmp_path / "artifacts")
    assert run.returncode == 0, run.stderr
    result = run_cli("export", "--run", tmp_path / "run", "--output", tmp_path / "tuned", "--encoder-only")
    assert result.returncode == 2 and result.stderr.startswith("error: run ") and "not fine-tuned" in result.stderr
    assert not (tmp_path / "tuned").exists()


# ---------------------------------------------------------------------------- more classes, float16, bad input


def test_three_classes_with_balanced_weights_fine_tune(tmp_path, tiny_encoder_dir):
    words = {"pos": ["good", "great"], "neg": ["bad", "dull"], "mixed": ["slow", "long"]}
    rows = [(f"the movie is {words[label][index % 2]}", label)
            for index in range(150) for label in (["pos"] * 2 + ["neg", "mixed"])[index % 4 : index % 4 + 1]]
    data = write_csv(tmp_path / "three.csv", ["text", "label"], rows)
    result = run_cli("run", "--data", data, "--encoder", tiny_encoder_dir, *TINY_OPTIONS, "--class-weights", "balanced",
                     "--output-dir", tmp_path / "run", artifacts=tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["labels"]) == 3 and metrics["config"]["class_weight"] is not None
    assert all(row["val_auroc"] not in ("", "nan") for row in training_log(tmp_path / "run"))
    assert metrics["test"]["auroc"] > 0.8


def test_float16_on_a_gpu_scales_the_loss_and_rewrites_the_training_graph(tmp_path, tiny_encoder_dir, tiny_data, monkeypatch):
    """The fake-GPU approach of test_devices: start-up reports a GPU, then the real code runs on the CPU (where
    grappler's float16 rewrite leaves the graph alone) with Keras's loss scaling; the old --mixed-precision flag
    asks for it."""
    from pipeline.base import devices
    from pipeline.base.config import RunConfig
    from pipeline.runs.run import run
    from pipeline.training import fine_tune

    monkeypatch.setattr(devices, "_STARTED", {"device": "GPU", "gpus": 1})
    seen = []
    original = fine_tune.make_optimizer

    def spy(*arguments, **options):
        import tensorflow as tf

        optimizer = original(*arguments, **options)
        seen.append((type(optimizer).__name__, tf.config.optimizer.get_experimental_options().get("auto_mixed_precision")))
        return optimizer

    monkeypatch.setattr(fine_tune, "make_optimizer", spy)
    config = RunConfig(data=str(tiny_data), encoder=str(tiny_encoder_dir), fine_tune=True, epochs=1, batch_size=16,
                       learning_rate=1e-3, max_seq_length=16, output_dir=str(tmp_path / "run"), mixed_precision=True)
    metrics = run(config, show_progress=False).metrics
    assert seen and seen[0][0].startswith("LossScaleOptimizer") and seen[0][1] is True
    assert metrics["mode"] == "fine-tune" and metrics["test"]["auroc"] is not None
    assert metrics["precision"] == {"used": "float16", "why": "asked for", "method": "rebuilt"}
    assert metrics["config"]["precision"] == "float16" and metrics["config"]["mixed_precision"] is False


@pytest.mark.parametrize("options, message", [
    (("--learning-rate", "0"), "error: --learning-rate must be positive"),
    (("--head", "paperspace"), "error: --head paperspace trains on cached frozen features"),
])
def test_bad_fine_tuning_options_fail_in_one_line(tmp_path, tiny_encoder_dir, tiny_data, options, message):
    result = run_cli("run", "--data", tiny_data, "--encoder", tiny_encoder_dir, "--fine-tune", *options,
                     "--output-dir", tmp_path / "run", artifacts=tmp_path / "artifacts")
    assert result.returncode == 2 and result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command, message", [
    ("sweep", "error: --fine-tune cannot be swept"),
    ("extract", "error: --fine-tune trains the encoder, and `extract` only fills"),
])
def test_fine_tuning_is_refused_where_only_cached_features_make_sense(tmp_path, tiny_encoder_dir, tiny_data, command, message):
    result = run_cli(command, "--data", tiny_data, "--encoder", tiny_encoder_dir, "--fine-tune", "--max-seq-length", "16",
                     "--output-dir", tmp_path / "run", artifacts=tmp_path / "artifacts")
    assert result.returncode == 2 and result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_encoders_that_cannot_be_trained_are_refused(tmp_path, tiny_encoder_dir, tiny_data):
    from tiny_bert import save_frozen_model, save_old_signature_model

    old = save_old_signature_model(tiny_encoder_dir, tmp_path / "old")
    frozen = save_frozen_model(tiny_encoder_dir, tmp_path / "frozen")
    for encoder, message in ((old, "has the old list signature"), (frozen, "has no trainable variables")):
        result = run_cli("run", "--data", tiny_data, "--encoder", encoder, "--fine-tune", "--max-seq-length", "16",
                         "--layers", "last", "--output-dir", tmp_path / "run", artifacts=tmp_path / "artifacts")
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: --fine-tune: encoder") and message in result.stderr
        assert result.stderr.count("\n") == 1 and not (tmp_path / "run").exists()
