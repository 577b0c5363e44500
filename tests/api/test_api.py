"""The Python API (`from pipeline import FeatureExtractor, TextClassifier, load_run`) on the tiny encoder.

What it must share with the command line is checked against the command line itself, called in this process
through `pipeline.commands.cli.main` (a subprocess would add only a TensorFlow start-up): the same cache entry for
the same texts, the same metrics for the same data and seed, run folders that `export`, `predict` and `load_run`
take either way, and the same error messages.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import tiny_review_rows, write_csv

from pipeline import FeatureExtractor, TextClassifier, load_run
from pipeline.api.inputs import InvalidInput
from pipeline.base.errors import UserError
from pipeline.commands.cli import main as cli_main
from pipeline.features import cache

TINY_FEATURES = 64  # the tiny encoder's 2 layers x 32, mean-pooled side by side
HEAD_OPTIONS = {"epochs": 2, "ensemble": 1}  # --ensemble 1: one head is all these tests need


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_encoder_dir):
    """The tiny table as a DataFrame and as the CSV the command line reads, and the options both get."""
    folder = tmp_path_factory.mktemp("api")
    frame = pd.DataFrame(tiny_review_rows(60), columns=["text", "label"])
    csv_path = write_csv(folder / "reviews.csv", ["text", "label"], frame.itertuples(index=False))
    return {"folder": folder, "frame": frame, "csv": csv_path, "encoder": str(tiny_encoder_dir)}


def extractor(tiny, cache_dir, **options):
    return FeatureExtractor(tiny["encoder"], max_seq_length=16, cache_dir=cache_dir, progress=False, **options)


def classifier(tiny, cache_dir, **options):
    return TextClassifier(tiny["encoder"], max_seq_length=16, cache_dir=cache_dir, progress=False,
                          **{**HEAD_OPTIONS, **options})


def cli(*arguments) -> int:
    return cli_main([str(argument) for argument in arguments])


def cli_options(tiny, cache_dir) -> list[str]:
    return ["--encoder", tiny["encoder"], "--max-seq-length", "16", "--cache-dir", str(cache_dir), "--quiet"]


def manifests(cache_dir: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(Path(cache_dir).glob(f"*/{cache.MANIFEST_FILE}"))]


@pytest.fixture(scope="module")
def cli_run(tiny):
    """A run folder written by `python -m pipeline run` on the tiny CSV, and the cache it filled; in float32, so that
    its export (and the fitted classifier's, below) gives its probabilities exactly (an int8 run's export cannot)."""
    cache_dir, run_dir = tiny["folder"] / "cli-cache", tiny["folder"] / "cli-run"
    assert cli("run", "--data", tiny["csv"], *cli_options(tiny, cache_dir), "--epochs", 2, "--ensemble", 1,
               "--precision", "float32", "--output-dir", run_dir) == 0
    return {"run_dir": run_dir, "cache_dir": cache_dir}


@pytest.fixture(scope="module")
def fitted(tiny, cli_run):
    """A TextClassifier fitted on the DataFrame with the CLI run's options and cache."""
    frame = tiny["frame"]
    return classifier(tiny, cli_run["cache_dir"], precision="float32").fit(frame["text"], frame["label"])


# ----------------------------------------------------------------------------- FeatureExtractor


def test_every_kind_of_text_input_gives_the_same_float32_rows_in_order(tiny, tmp_path):
    frame, features = tiny["frame"], extractor(tiny, tmp_path / "cache")
    expected = features.transform(frame["text"])
    assert expected.dtype == np.float32 and expected.shape == (60, TINY_FEATURES)
    for texts in (frame["text"].tolist(), tuple(frame["text"]), frame[["text"]], frame["text"].to_numpy(),
                  np.array(frame["text"].tolist()), frame["text"].astype("string"), frame["text"].to_numpy()[:, None]):
        np.testing.assert_array_equal(features.transform(texts), expected)
    reversed_rows = features.transform(frame["text"][::-1])
    np.testing.assert_array_equal(reversed_rows, expected[::-1])
    np.testing.assert_array_equal(features.transform(["  " + frame["text"][0] + " "]), expected[:1])  # stripped, as a table's cells


def test_a_second_transform_and_a_subset_come_from_the_cache(tiny, tmp_path):
    texts = tiny["frame"]["text"].tolist()
    features = extractor(tiny, tmp_path / "cache")
    first = features.transform(texts)
    assert features.cache_info_["extracted"] == features.cache_info_["texts"] == len(set(texts))
    np.testing.assert_array_equal(features.transform(texts), first)
    assert features.cache_info_["cache_hit"] and features.cache_info_["extracted"] == 0
    subset = [texts[index] for index in (7, 3, 3, 0)]
    np.testing.assert_array_equal(features.transform(subset), first[[7, 3, 3, 0]])
    assert features.cache_info_ | {"seconds": 0} == {"texts": 3, "from_cache": 3, "extracted": 0, "cache_hit": True,
                                                     "entries": features.cache_info_["entries"], "seconds": 0}
    assert len(manifests(tmp_path / "cache")) == 1


def test_texts_held_by_two_entries_are_served_together_and_only_new_ones_are_extracted(tiny, tmp_path):
    texts = list(dict.fromkeys(tiny["frame"]["text"]))
    features = extractor(tiny, tmp_path / "cache")
    whole = features.transform(texts)
    cache_dir = tmp_path / "cache-in-parts"
    parts = extractor(tiny, cache_dir)
    parts.transform(texts[:20])
    parts.transform(texts[20:30])
    np.testing.assert_allclose(parts.transform(texts[10:30]), whole[10:30], atol=1e-6)
    assert parts.cache_info_["extracted"] == 0 and len(parts.cache_info_["entries"]) == 2
    np.testing.assert_allclose(parts.transform(texts), whole, atol=1e-6)
    assert parts.cache_info_["extracted"] == 10  # only the texts no entry held
    assert sorted(manifest["texts"] for manifest in manifests(cache_dir)) == [10, 10, 20]


def test_other_settings_never_borrow_an_entry(tiny, tmp_path):
    texts = tiny["frame"]["text"].tolist()
    extractor(tiny, tmp_path / "cache").transform(texts)
    last_layer = extractor(tiny, tmp_path / "cache", layers="last")
    assert last_layer.transform(texts[:5]).shape == (5, 32)
    assert last_layer.cache_info_["extracted"] == 5


def test_the_api_and_the_extract_command_share_one_cache_entry(tiny, tmp_path, capsys):
    cache_dir = tmp_path / "cache"
    extractor(tiny, cache_dir).transform(tiny["frame"]["text"])  # the table's texts, as `extract` reads them
    capsys.readouterr()
    assert cli("extract", "--data", tiny["csv"], *cli_options(tiny, cache_dir)) == 0
    assert "cache hit" in capsys.readouterr().out
    assert len(manifests(cache_dir)) == 1


def test_a_run_of_the_command_line_fills_the_entry_the_api_reads(tiny, cli_run):
    features = extractor(tiny, cli_run["cache_dir"], precision="float32")  # the run's
    features.transform(tiny["frame"]["text"])
    assert features.cache_info_["cache_hit"]
    assert features.cache_info_["entries"] == [str(Path(cli_run["cache_dir"]) / manifests(cli_run["cache_dir"])[0]["key"][:32])]


def test_get_params_set_params_and_clone_keep_the_options_as_given(tiny, tmp_path):
    from sklearn.base import clone

    features = extractor(tiny, tmp_path / "cache", layers=[0, -1])
    assert features.get_params()["layers"] == [0, -1] and features.get_params()["max_seq_length"] == 16
    features.fit(["the movie is good"])
    copy = clone(features)
    assert copy.get_params() == features.get_params() and not hasattr(copy, "settings_")
    assert features.settings_.layers == (-2, -1)
    features.set_params(layers="last")
    assert features.transform(["the movie is good"]).shape == (1, 32)  # settled again for the new options
    with pytest.raises(ValueError, match="Invalid parameter"):
        features.set_params(poolng="mean")
    model = classifier(tiny, tmp_path / "cache", hidden_units=(8,))
    assert clone(model).get_params() == model.get_params()
    assert model.set_params(epochs=3).epochs == 3


@pytest.mark.parametrize("estimator", [FeatureExtractor, TextClassifier])
@pytest.mark.parametrize("check", ["check_parameters_default_constructible", "check_no_attributes_set_in_init",
                                   "check_get_params_invariance", "check_set_params", "check_estimator_cloneable",
                                   "check_estimator_repr", "check_valid_tag_types",
                                   "check_do_not_raise_errors_in_init_or_set_params", "check_estimator_sparse_tag"])
def test_scikit_learns_own_checks_that_need_no_numeric_data(estimator, check):
    from sklearn.utils import estimator_checks

    getattr(estimator_checks, check)(estimator.__name__, estimator())


def test_a_pipeline_with_cross_validation_and_a_grid_search_extracts_each_text_once(tiny, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline

    frame, cache_dir = tiny["frame"], tmp_path / "cache"
    model = make_pipeline(extractor(tiny, cache_dir), LogisticRegression(max_iter=1000))
    scores = cross_val_score(model, frame["text"], frame["label"], cv=3)
    assert scores.shape == (3,) and np.all((0 <= scores) & (scores <= 1))
    search = GridSearchCV(model, {"logisticregression__C": [0.1, 1.0, 10.0]}, cv=3).fit(frame["text"], frame["label"])
    assert search.best_params_["logisticregression__C"] in (0.1, 1.0, 10.0)
    assert set(search.predict(frame["text"][:4])) <= {"neg", "pos"}
    # 3 folds x (fit + score) x 4 settings, and a refit: every text went through the encoder exactly once.
    assert sum(manifest["texts"] for manifest in manifests(cache_dir)) == frame["text"].nunique()


def test_a_fitted_extractor_pickles_without_its_encoder_and_loads_it_again(tiny, tmp_path):
    features = extractor(tiny, tmp_path / "cache").fit()
    expected = features.transform(["the film is great"])
    copy = pickle.loads(pickle.dumps(features))
    assert not hasattr(copy, "settings_") and copy.get_params() == features.get_params()
    np.testing.assert_array_equal(copy.transform(["the film is great"]), expected)


def test_count_tokens_counts_wordpieces_with_cls_and_sep(tiny, tmp_path):
    counts = extractor(tiny, tmp_path / "cache").count_tokens(["the movie is good", "the film"])
    np.testing.assert_array_equal(counts, [6, 4])


# ----------------------------------------------------------------------------- TextClassifier


def test_fit_gives_the_metrics_run_gives_on_the_same_table_and_seed(tiny, cli_run, fitted):
    cli_metrics = json.loads((cli_run["run_dir"] / "metrics.json").read_text())
    for part in ("test", "val"):
        assert fitted.metrics_[part] == cli_metrics[part]
    assert fitted.metrics_["baseline"] == cli_metrics["baseline"]
    assert fitted.metrics_["features"]["cache_hit"]  # the run's entry: same texts, same settings
    assert fitted.metrics_["config"]["data"] == "in-memory"
    assert json.loads((fitted.run_dir_ / "config.json").read_text())["split_sizes"] == cli_metrics["config"]["split_sizes"]


def test_cross_val_score_fits_one_private_run_per_fold_and_leaves_none_behind(tiny, tmp_path, cli_run):
    from sklearn.model_selection import cross_val_score

    before = private_run_folders()
    scores = cross_val_score(classifier(tiny, cli_run["cache_dir"], epochs=1), tiny["frame"]["text"],
                             tiny["frame"]["label"], cv=2)
    assert scores.shape == (2,) and np.all((0 <= scores) & (scores <= 1))
    assert private_run_folders() == before  # each fold's classifier was dropped, and its folder with it


def test_predict_predict_proba_score_and_classes(tiny, fitted):
    texts = tiny["frame"]["text"][:6]
    probabilities = fitted.predict_proba(texts)
    assert probabilities.shape == (6, 2) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-6)
    assert list(fitted.classes_) == ["neg", "pos"]
    assert list(fitted.predict(texts)) == [fitted.classes_[index] for index in probabilities.argmax(axis=1)]
    expected = float(np.mean(fitted.predict(tiny["frame"]["text"]) == tiny["frame"]["label"]))
    assert fitted.score(tiny["frame"]["text"], tiny["frame"]["label"]) == pytest.approx(expected)
    assert "Test set (6 texts):" in fitted.summary()


def test_labels_keep_their_type_output_dir_and_test_data(tiny, tmp_path):
    frame = tiny["frame"]
    numbers = (frame["label"] == "pos").astype(int)
    model = classifier(tiny, tmp_path / "cache", epochs=1, output_dir=tmp_path / "chosen")
    model.fit(frame["text"][:50], numbers[:50], test_data=(frame["text"][50:], numbers[50:]))
    assert model.classes_.tolist() == [0, 1] and model.predict(frame["text"][:3]).dtype == model.classes_.dtype
    assert model.score(frame["text"], numbers) == model.score(frame["text"], numbers.astype(str))
    assert model.run_dir_ == tmp_path / "chosen" and (tmp_path / "chosen" / "head.keras").is_file()
    assert model.save(tmp_path / "chosen") == tmp_path / "chosen"  # already there
    config = json.loads((tmp_path / "chosen" / "config.json").read_text())
    assert config["output_dir"] == str(tmp_path / "chosen") and config["labels"] == ["0", "1"]
    assert config["split_sizes"] == {"train": 44, "validation": 6, "test": 10}  # --test-data's 8:1 of the rest


def test_validation_data_is_the_validation_set_and_a_categorical_fixes_the_class_order(tiny, tmp_path):
    frame = tiny["frame"]
    ordered = pd.Categorical(frame["label"], categories=["pos", "neg"])
    model = classifier(tiny, tmp_path / "cache", epochs=1).fit(frame["text"][:50], ordered[:50],
                                                               validation_data=(frame["text"][50:], ordered[50:]))
    assert model.classes_.tolist() == ["pos", "neg"]
    config = json.loads((model.run_dir_ / "config.json").read_text())
    assert config["labels"] == ["pos", "neg"]
    assert config["split_sizes"] == {"train": 45, "validation": 10, "test": 5}  # run's 10% test split, the rest train


def test_save_writes_a_run_folder_that_export_and_predict_take(tiny, tmp_path, fitted, capsys):
    saved = fitted.save(tmp_path / "saved")
    assert (saved / "metrics.json").is_file() and not (saved / "INCOMPLETE").exists()
    assert sorted(path.name for path in saved.iterdir()) == sorted(path.name for path in fitted.run_dir_.iterdir())
    with pytest.raises(InvalidInput, match="already holds files"):
        fitted.save(saved)
    assert cli("export", "--run", saved, "--output", tmp_path / "exported", "--quiet") == 0
    texts = ["the movie is good", "a film is bad and not great"]
    assert cli("predict", "--model", tmp_path / "exported", "--output", tmp_path / "predicted.csv", "--quiet", *texts) == 0
    predicted = pd.read_csv(tmp_path / "predicted.csv")
    np.testing.assert_allclose(predicted[["probability_neg", "probability_pos"]].to_numpy(), fitted.predict_proba(texts), atol=1e-4)
    np.testing.assert_allclose(load_run(saved).predict_proba(texts), fitted.predict_proba(texts), atol=1e-6)


def test_load_run_of_a_command_line_run_predicts_its_test_probabilities(cli_run):
    from pipeline.runs.explore import load_run_splits

    model = load_run(cli_run["run_dir"])
    config = json.loads((cli_run["run_dir"] / "config.json").read_text())
    test_texts = load_run_splits(config).test.texts
    with np.load(cli_run["run_dir"] / "test_predictions.npz") as recorded:
        np.testing.assert_allclose(model.predict_proba(test_texts), recorded["probabilities"], atol=1e-5)
    assert model.classes_.tolist() == config["labels"]
    assert model.get_params()["layers"] == config["layers"] and model.get_params()["epochs"] == 2
    assert model.metrics_["config"] == config


def test_a_fitted_classifier_pickles_without_tensorflow_and_predicts_the_same(tiny, tmp_path, fitted):
    import joblib

    texts = tiny["frame"]["text"].tolist()[:6]
    expected = fitted.predict_proba(texts)
    joblib.dump(fitted, tmp_path / "model.joblib")
    # What the pickle holds needs no TensorFlow to load: the run folder's bytes, not its models.
    import subprocess
    import sys

    loaded = subprocess.run([sys.executable, "-c", "import joblib, sys; joblib.load(sys.argv[1]); "
                             "print(sorted({name.split('.')[0] for name in sys.modules} & {'tensorflow', 'tf_keras'}))",
                             str(tmp_path / "model.joblib")], capture_output=True, text=True, timeout=120,
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
    restored = joblib.load(tmp_path / "model.joblib")
    assert "_model" not in restored.__dict__ and restored.run_dir_ != fitted.run_dir_
    np.testing.assert_allclose(restored.predict_proba(texts), expected, atol=1e-6)
    assert restored.classes_.tolist() == fitted.classes_.tolist() and restored.metrics_ == fitted.metrics_
    saved = restored.save(tmp_path / "saved")
    np.testing.assert_allclose(load_run(saved).predict_proba(texts), expected, atol=1e-6)
    unfitted = pickle.loads(pickle.dumps(classifier(tiny, tmp_path / "cache")))
    assert unfitted.get_params()["epochs"] == 2


def test_fine_tune_fits_through_the_same_run_and_loads_its_tuned_encoder(tiny, tmp_path):
    frame = tiny["frame"]
    model = TextClassifier(tiny["encoder"], max_seq_length=16, cache_dir=tmp_path / "cache", progress=False,
                           fine_tune=True, epochs=1, batch_size=16).fit(frame["text"], frame["label"])
    assert model.metrics_["mode"] == "fine-tune" and (model.run_dir_ / "encoder" / "saved_model.pb").is_file()
    loaded = load_run(model.save(tmp_path / "tuned"))
    assert loaded.fine_tune and loaded.head == "mlp"
    np.testing.assert_allclose(loaded.predict_proba(frame["text"][:4]), model.predict_proba(frame["text"][:4]), atol=1e-5)


# ----------------------------------------------------------------------------- bad input


def private_run_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("pipeline-text-classifier-*"))


@pytest.mark.parametrize("texts, labels, message", [
    ([], [], "the training data has no data rows; add at least one row of text and label"),
    (["good", 7, "bad"], ["a", "b", "a"], "text 1 of the training data is a int (7), not a string"),
    (["good", None, "bad"], ["a", "b", "a"], "text 1 of the training data is missing (None)"),
    (pd.Series(["good", np.nan]), ["a", "b"], "text 1 of the training data is missing (nan)"),
    (["good", "   "], ["a", "b"], "text 1 of the training data is blank"),
    ("the movie is good", ["a"], "the training data is one str ('the movie is good'), not a list of texts"),
    (["good", "bad", "fine"], ["a", "b"], "the training data has 3 texts but 2 labels; pass one label per text"),
    (["good", "bad"], ["a", None], "label 1 of the training data is missing (None)"),
])
def test_bad_input_to_fit_is_one_error_and_writes_nothing(tiny, tmp_path, isolated_artifacts, texts, labels, message):
    before = private_run_folders()
    model = classifier(tiny, tmp_path / "cache", output_dir=tmp_path / "run")
    with pytest.raises(InvalidInput) as raised:
        model.fit(texts, labels)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert isinstance(raised.value, UserError) and isinstance(raised.value, ValueError)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists() and not isolated_artifacts.exists()
    assert private_run_folders() == before


def test_one_class_and_a_bad_option_give_the_command_lines_message(tiny, tmp_path, isolated_artifacts, capsys):
    one_class = tiny["frame"][tiny["frame"]["label"] == "pos"]
    csv_path = write_csv(tmp_path / "one-class.csv", ["text", "label"], one_class.itertuples(index=False))
    cache_dir = tmp_path / "cache"
    capsys.readouterr()
    assert cli("run", "--data", csv_path, *cli_options(tiny, cache_dir)) == 2
    cli_line = capsys.readouterr().err.strip()
    with pytest.raises(InvalidInput) as raised:
        classifier(tiny, cache_dir).fit(one_class["text"], one_class["label"])
    assert f"error: {raised.value}" == cli_line.replace(str(csv_path), "the training data")

    assert cli("run", "--data", tiny["csv"], *cli_options(tiny, cache_dir), "--epochs", 0) == 2
    cli_line = capsys.readouterr().err.strip()
    with pytest.raises(InvalidInput) as raised:
        classifier(tiny, cache_dir, epochs=0).fit(tiny["frame"]["text"], tiny["frame"]["label"])
    assert f"error: {raised.value}" == cli_line == "error: --epochs must be a positive whole number, got 0"
    with pytest.raises(InvalidInput, match="--pooling 'max' is unknown; choose one of pooled, cls, mean"):
        extractor(tiny, cache_dir, pooling="max").transform(["good"])
    with pytest.raises(InvalidInput, match="--epochs must be a positive whole number, got 'two'"):
        classifier(tiny, cache_dir, epochs="two").fit(tiny["frame"]["text"], tiny["frame"]["label"])
    with pytest.raises(InvalidInput, match="--seed must be a whole number, got None"):
        classifier(tiny, cache_dir, seed=None).fit(tiny["frame"]["text"], tiny["frame"]["label"])
    assert not cache_dir.exists() and not isolated_artifacts.exists()


def test_bad_texts_to_transform_and_predict_are_one_error(tiny, tmp_path, fitted):
    features = extractor(tiny, tmp_path / "cache")
    for call in (features.transform, fitted.predict_proba, fitted.predict):
        with pytest.raises(InvalidInput, match="the input has no data rows; add at least one text"):
            call([])
        with pytest.raises(InvalidInput, match=r"text 0 of the input is a bytes \(b'good'\), not a string"):
            call([b"good"])
    with pytest.raises(InvalidInput, match="the validation data has label 'maybe' not among the training labels"):
        classifier(tiny, tmp_path / "cache").fit(tiny["frame"]["text"], tiny["frame"]["label"],
                                                 validation_data=(["the film"], ["maybe"]))
    assert not (tmp_path / "cache").exists()
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        classifier(tiny, tmp_path / "cache").predict(["good"])
