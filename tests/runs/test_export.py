"""The end-to-end export: a run becomes one SavedModel (strings in, probabilities out) that gives the
pipeline's probabilities and the cache's token ids, and loads in a process without this package."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_embedded_assets
from helpers import child_environment, run_cli, write_tiny_csv

TOLERANCE = 1e-5
# Texts the tiny run never saw: empty, blank, accents and capitals, emoji and CJK, deleted
# characters, literal special tokens, and one far longer than max_seq_length (16).
AWKWARD_TEXTS = [
    "",
    "   ",
    "Café crème — très BON!!",
    "THE MOVIE IS GOOD",
    "🙂 emoji and 中文 characters",
    "control\x00char and zero\u200bwidth",
    "[CLS] the film [SEP] is bad",
    "the movie is good and the story is great but the acting is not " * 8,
]


def make_tiny_run(folder: Path, encoder_dir: Path, csv_path: Path, epochs: int = 2) -> Path:
    """A complete run of the real pipeline on a tiny CSV with the tiny encoder (max_seq_length 16), in float32: these
    tests hold the export to the run exactly, which an int8 run (`auto` on an AVX2 CPU) cannot give (test_int8.py)."""
    from pipeline.base.config import RunConfig
    from pipeline.runs.run import run

    config = RunConfig(data=str(csv_path), encoder=str(encoder_dir), epochs=epochs, batch_size=16,
                       max_seq_length=16, precision="float32", output_dir=str(folder / "run"),
                       cache_dir=str(folder / "cache"))
    return run(config, show_progress=False).run_dir


def split_texts(csv_path: Path, seed: int = 42):
    """The run's splits, recomputed the way the run made them (the run folder stores no texts)."""
    from pipeline.data.tables import load_labeled_texts, split_labeled_texts

    return split_labeled_texts(load_labeled_texts(str(csv_path)), seed=seed)


@functools.cache
def _load_exported(export_dir: str):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    return tf.saved_model.load(export_dir)


def load_exported(export_dir: Path):
    """The exported model, loaded once per folder (loading takes seconds and the tests only read it)."""
    return _load_exported(str(export_dir))


def exported_probabilities(model, texts) -> np.ndarray:
    import tensorflow as tf

    return model.signatures["serving_default"](texts=tf.constant(texts, dtype=tf.string))["probabilities"].numpy()


def pipeline_probabilities(run_dir: Path, texts) -> np.ndarray:
    """encode_texts (FullTokenizer, the cache's code) + the run's head, through export.RunModel."""
    from pipeline.runs.run_folder import read_run_folder
    from pipeline.runs.run_model import load_run_model

    return load_run_model(read_run_folder(run_dir)).predict(list(texts))


def cache_token_ids(run_dir: Path, texts) -> dict:
    """The packed ids the feature cache would encode for these texts."""
    from pipeline.features.encoder_io import token_ids
    from pipeline.runs.run_folder import read_run_folder
    from pipeline.runs.run_model import load_run_model
    from tokenization.packing import pack_inputs

    run_model = load_run_model(read_run_folder(run_dir))
    encoder, max_seq_length = run_model.encoder, run_model.run.max_seq_length
    vocab = encoder.tokenizer.vocab
    return pack_inputs([token_ids(encoder.tokenizer, text, max_seq_length) for text in texts], max_seq_length=max_seq_length,
                       cls_id=vocab["[CLS]"], sep_id=vocab["[SEP]"], pad_id=vocab["[PAD]"])


@dataclass(frozen=True)
class TinyExport:
    folder: Path
    run_dir: Path
    csv_path: Path
    export_dir: Path


_SHARED: dict[str, TinyExport] = {}


def shared_tiny_export(tmp_path_factory, tiny_encoder_dir) -> TinyExport:
    """A tiny run and its export, built once per session and also used by test_predict.py (a run and
    an export are the slowest part of both files; in-process, to spare a TensorFlow start-up).

    The run's encoder is a private copy so that one test can move it away."""
    if "tiny" not in _SHARED:
        from pipeline.runs.export import export_run

        folder = tmp_path_factory.mktemp("export")
        encoder_copy = shutil.copytree(tiny_encoder_dir, folder / "encoder")
        csv_path = write_tiny_csv(folder / "reviews.csv", count=80)
        run_dir = make_tiny_run(folder, encoder_copy, csv_path)
        export_dir = export_run(run_dir, folder / "exports" / "model")
        _SHARED["tiny"] = TinyExport(folder, run_dir, csv_path, export_dir)
    return _SHARED["tiny"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_encoder_dir):
    """(folder, run_dir, csv_path) of the shared tiny run."""
    shared = shared_tiny_export(tmp_path_factory, tiny_encoder_dir)
    return shared.folder, shared.run_dir, shared.csv_path


@pytest.fixture(scope="module")
def exported_dir(tmp_path_factory, tiny_encoder_dir):
    """The export of the shared tiny run."""
    return shared_tiny_export(tmp_path_factory, tiny_encoder_dir).export_dir


def test_export_writes_one_saved_model_and_nothing_else(exported_dir, tiny_run):
    export_dir = exported_dir
    assert (export_dir / "saved_model.pb").is_file() and (export_dir / "variables").is_dir()
    assert (export_dir / "assets" / "vocab.txt").is_file()
    info = json.loads((export_dir / "export_info.json").read_text())
    assert info["labels"] == ["neg", "pos"]
    assert info["pooling"] == "mean" and info["max_seq_length"] == 16
    assert info["probe_max_difference"] <= 1e-4
    assert info["run_dir"] == str(tiny_run[1].resolve())
    # Readable by others, as the user's umask allows (the temporary folder was owner-only).
    umask = os.umask(0)
    os.umask(umask)
    assert export_dir.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (export_dir / "export_info.json").stat().st_mode & 0o777 == 0o666 & ~umask
    # The temporary folder was renamed, not copied: the exports folder holds the model only.
    assert sorted(path.name for path in export_dir.parent.iterdir()) == ["model"]


def test_exported_probabilities_equal_the_pipelines(exported_dir, tiny_run):
    export_dir = exported_dir
    _, run_dir, csv_path = tiny_run
    splits = split_texts(csv_path)
    config = json.loads((run_dir / "config.json").read_text())
    assert len(splits.test.texts) == config["split_sizes"]["test"]
    model = load_exported(export_dir)

    # 1. The run's own test predictions, written when it finished (same split order).
    stored = np.load(run_dir / "test_predictions.npz", allow_pickle=False)
    exported_test = exported_probabilities(model, splits.test.texts)
    np.testing.assert_array_equal(stored["labels"], splits.test.labels)
    np.testing.assert_allclose(exported_test, stored["probabilities"], rtol=0, atol=TOLERANCE)

    # 2. encode_texts + head on every text of the run and the awkward ones, in one batch.
    texts = splits.train.texts + splits.validation.texts + splits.test.texts + AWKWARD_TEXTS
    exported = exported_probabilities(model, texts)
    expected = pipeline_probabilities(run_dir, texts)
    assert exported.dtype == np.float32 and exported.shape == (len(texts), 2)
    np.testing.assert_allclose(exported.sum(axis=1), 1.0, atol=1e-6)
    difference = float(np.max(np.abs(exported - expected)))
    print(f"tiny encoder: max |exported - pipeline| = {difference:.3g} over {len(texts)} texts")
    assert difference <= TOLERANCE
    # The head is not constant, so equality above says something.
    assert np.ptp(expected[:, 1]) > 1e-3


def test_exported_model_tokenizes_like_the_cache(exported_dir, tiny_run):
    export_dir = exported_dir
    _, run_dir, csv_path = tiny_run
    import tensorflow as tf

    texts = split_texts(csv_path).test.texts + AWKWARD_TEXTS
    packed = load_exported(export_dir).signatures["tokenize"](texts=tf.constant(texts))
    expected = cache_token_ids(run_dir, texts)
    for name in ("input_word_ids", "input_mask", "input_type_ids"):
        np.testing.assert_array_equal(packed[name].numpy(), expected[name], err_msg=name)
    # The long text is cut to max_seq_length, [SEP] (id 3) last, as the cache cut it.
    long_row = packed["input_word_ids"].numpy()[-1]
    assert packed["input_mask"].numpy()[-1].sum() == 16 and long_row[15] == 3


def test_labels_signature_names_the_probability_columns(exported_dir):
    labels = load_exported(exported_dir).signatures["labels"]()["labels"].numpy()
    assert [label.decode() for label in labels] == ["neg", "pos"]


FRESH_PROCESS_SCRIPT = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the tokenizer's ops
model = tf.saved_model.load(sys.argv[1])
texts = json.loads(sys.argv[2])
probabilities = model.signatures["serving_default"](texts=tf.constant(texts))["probabilities"].numpy()
labels = [label.decode() for label in model.signatures["labels"]()["labels"].numpy()]
ours = sorted({name.split(".")[0] for name in sys.modules} & {"pipeline", "tokenization", "tf_keras", "tensorflow_hub"})
print(json.dumps({"probabilities": probabilities.tolist(), "labels": labels, "imported": ours}))
"""


def test_loads_in_a_fresh_process_with_only_tensorflow_and_tensorflow_text(exported_dir, tiny_run, tmp_path):
    """Isolated mode (-I), run elsewhere, with the encoder and the run folder moved away."""
    export_dir = exported_dir
    folder, run_dir, _ = tiny_run
    texts = ["the movie is good", "the film is bad", ""]
    expected = exported_probabilities(load_exported(export_dir), texts)
    moved = [(folder / "encoder", folder / "encoder-hidden"), (run_dir, folder / "run-hidden")]
    for source, target in moved:
        os.rename(source, target)
    try:
        result = subprocess.run([sys.executable, "-I", "-c", FRESH_PROCESS_SCRIPT, str(export_dir), json.dumps(texts)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=120,
                                env=child_environment())
    finally:
        for source, target in moved:
            os.rename(target, source)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["imported"] == []
    assert output["labels"] == ["neg", "pos"]
    np.testing.assert_allclose(np.array(output["probabilities"]), expected, rtol=0, atol=1e-6)


def test_three_classes_give_the_softmax_columns(tiny_run, tmp_path):
    """A softmax head's K columns pass through as they are. The graph is called in memory (saving
    it is what the two-class tests check) from a run folder made by hand, to skip training."""
    import tensorflow as tf

    from pipeline.runs.export import build_end_to_end_module
    from pipeline.runs.run_folder import read_run_folder
    from pipeline.runs.run_model import load_run_model
    from pipeline.training.head import build_head

    _, run_dir, _ = tiny_run
    three = tmp_path / "three-class-run"
    three.mkdir()
    config = json.loads((run_dir / "config.json").read_text())
    config["labels"] = ["bad", "good", "meh"]
    (three / "config.json").write_text(json.dumps(config))
    (three / "metrics.json").write_text("{}")
    width = config["encoder_info"]["hidden_size"] * len(config["layers"].split(","))  # the run's layers, side by side
    build_head(width, 3, hidden_units=(8,), seed=3).save(str(three / "head.keras"))
    run_model = load_run_model(read_run_folder(three))
    module = build_end_to_end_module(run_model)
    texts = ["the movie is good", "the plot is dull and slow", "the film is bad"] + AWKWARD_TEXTS
    exported = module.classify(tf.constant(texts))["probabilities"].numpy()
    assert exported.shape == (len(texts), 3)
    np.testing.assert_allclose(exported.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(exported, run_model.predict(texts), rtol=0, atol=TOLERANCE)
    assert [label.decode() for label in module.labels()["labels"].numpy()] == ["bad", "good", "meh"]


# ----------------------------------------------------------------------------- refusals


def make_fake_run(folder: Path, *, metrics=True, incomplete=False) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "head.keras").write_bytes(b"")
    if metrics:
        (folder / "metrics.json").write_text("{}")
    if incomplete:
        (folder / "INCOMPLETE").write_text("")
    return folder


@pytest.mark.parametrize(
    "make_run, fragment",
    [
        (lambda root: root / "no-such-run", "not found"),
        (lambda root: make_fake_run(root / "interrupted", incomplete=True), "incomplete"),
        (lambda root: make_fake_run(root / "unfinished", metrics=False), "no metrics.json"),
        (lambda root: make_fake_run(root / "old"), "config.json"),
    ],
    ids=["missing", "incomplete", "no-metrics", "bad-config"],
)
def test_export_refuses_a_run_folder_that_is_not_finished(tmp_path, make_run, fragment):
    from pipeline.base.errors import UserError
    from pipeline.runs.export import export_run

    run_dir = make_run(tmp_path)
    with pytest.raises(UserError, match=fragment) as raised:
        export_run(run_dir, tmp_path / "out")
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_export_refuses_an_existing_output_folder(tiny_run, tmp_path):
    from pipeline.base.errors import UserError
    from pipeline.runs.export import export_run

    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(UserError, match="already exists; choose a new folder"):
        export_run(tiny_run[1], existing)
    assert list(existing.iterdir()) == []


def test_cli_export_of_an_interrupted_run_is_one_error_line(tmp_path):
    run_dir = make_fake_run(tmp_path / "interrupted", incomplete=True)
    result = run_cli("export", "--run", run_dir, "--output", tmp_path / "new")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "incomplete" in lines[0], result.stderr
    assert "run it again" in lines[0]
    assert not (tmp_path / "new").exists()


def test_an_interrupted_export_leaves_nothing_behind(tiny_run, tmp_path, monkeypatch):
    """Whatever the save had written goes with the temporary folder; the output never appears."""
    import tensorflow as tf

    from pipeline.runs.export import export_run

    def interrupted_save(module, export_dir, signatures=None):
        (Path(export_dir) / "saved_model.pb").write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(tf.saved_model, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        export_run(tiny_run[1], tmp_path / "out" / "model")
    assert list((tmp_path / "out").iterdir()) == []


# ----------------------------------------------------------------------------- the real encoder

@needs_embedded_assets
def test_embedded_encoder_export_equals_the_pipeline_on_200_demo_texts(tmp_path):
    """all-MiniLM-L6-v2, mean pooling, max_seq_length 128, on 200 Rotten Tomatoes snippets.

    The run folder is written here (config.json as a run writes it, an untrained head) rather than
    trained: the tiny tests cover run -> export, this one the real encoder's graph and vocabulary."""
    import tensorflow as tf

    from pipeline.data.tables import load_labeled_texts
    from pipeline.encoders.encoder import load_encoder
    from pipeline.features.encoder_io import token_ids
    from pipeline.runs.export import export_run
    from pipeline.runs.run_folder import read_run_folder
    from pipeline.runs.run_model import load_run_model
    from pipeline.training.head import build_head
    from tokenization.packing import pack_inputs

    demo = load_labeled_texts(None, preset="rotten-tomatoes")
    texts = [demo.texts[row] for row in np.random.default_rng(1).choice(len(demo.texts), 200, replace=False)]
    texts[:3] = ["", "Café crème, très BON!", " ".join(demo.texts[:40])]  # the last is cut at 128 tokens
    encoder = load_encoder("all-MiniLM-L6-v2")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = {"encoder": "all-MiniLM-L6-v2", "encoder_info": encoder.describe(), "labels": demo.label_names,
              "pooling": "mean", "max_seq_length": 128}
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "metrics.json").write_text("{}")
    build_head(encoder.hidden_size, 2, seed=5).save(str(run_dir / "head.keras"))

    model = load_exported(export_run(run_dir, tmp_path / "exported"))
    run_model = load_run_model(read_run_folder(run_dir))
    exported = exported_probabilities(model, texts)
    expected = run_model.predict(texts)
    difference = float(np.max(np.abs(exported - expected)))
    print(f"all-MiniLM-L6-v2: max |exported - pipeline| = {difference:.3g} over {len(texts)} texts")
    assert difference <= TOLERANCE
    assert np.ptp(expected[:, 1]) > 1e-3

    packed = model.signatures["tokenize"](texts=tf.constant(texts))
    vocab = encoder.tokenizer.vocab
    expected_ids = pack_inputs([token_ids(encoder.tokenizer, text, 128) for text in texts], max_seq_length=128,
                               cls_id=vocab["[CLS]"], sep_id=vocab["[SEP]"], pad_id=vocab["[PAD]"])
    for name in ("input_word_ids", "input_mask", "input_type_ids"):
        np.testing.assert_array_equal(packed[name].numpy(), expected_ids[name], err_msg=name)
    assert packed["input_mask"].numpy()[2].sum() == 128


def test_a_run_on_every_layer_with_the_mlp_head_exports_and_predicts_as_the_run_does(tmp_path, tiny_encoder_dir):
    """Three classes, class weights, every layer averaged, the mlp head: the export pools and standardises in-graph
    exactly as the run did (export_run checks that), and predict gives the run's own test probabilities."""
    from helpers import assert_run_and_export_predict_the_runs_test_probabilities, write_csv

    from pipeline.base.config import RunConfig
    from pipeline.runs.export import export_run
    from pipeline.runs.run import run

    words = ["good", "bad", "not"]
    rows = [(f"the movie is {words[index % 3]} {'and the film' if index % 4 else ''}".strip(), f"c{index % 3}")
            for index in range(150)]
    data = write_csv(tmp_path / "three.csv", ["text", "label"], rows)
    result = run(RunConfig(data=str(data), encoder=str(tiny_encoder_dir), max_seq_length=16, pooling="mean",
                           layers="all", combine="mean", head="mlp", epochs=3, class_weights="balanced",
                           precision="float32",  # exact agreement: an int8 run's export computes float32
                           output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache")), show_progress=False)
    assert (result.metrics["config"]["layers"], result.metrics["config"]["combine"]) == ("-2,-1", "mean")
    exported = export_run(tmp_path / "run", tmp_path / "exported")
    info = json.loads((exported / "export_info.json").read_text())
    assert (info["layers"], info["combine"]) == ([-2, -1], "mean")
    assert_run_and_export_predict_the_runs_test_probabilities(tmp_path / "run", exported)
