"""pipeline.runs.explore: what the notebooks compute, on small inputs with known answers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from helpers import write_tiny_csv

from pipeline.base.config import EMBEDDED_ENCODER, RunConfig
from pipeline.evaluation import plots
from pipeline.runs import explore, run_folder


def _split(labels, prefix="t"):
    return SimpleNamespace(texts=[f"{prefix}{i}" for i in range(len(labels))], labels=np.array(labels, dtype=np.int64))


# ============================================================================ notebook settings and data

def test_notebook_config_is_the_demo_unless_the_environment_names_data_and_encoder():
    demo = explore.notebook_config({})
    assert (demo.data, demo.encoder, demo.max_seq_length, demo.epochs) == (None, EMBEDDED_ENCODER, None, None)
    assert demo.head_settings() == RunConfig().head_settings()  # the demo's own head and its defaults
    tiny = explore.notebook_config({
        "PIPELINE_NOTEBOOK_DATA": "tiny.csv", "PIPELINE_NOTEBOOK_ENCODER": "/enc",
        "PIPELINE_NOTEBOOK_MAX_SEQ_LENGTH": "16", "PIPELINE_NOTEBOOK_EPOCHS": "2",
    })
    assert (tiny.data, tiny.encoder, tiny.max_seq_length, tiny.epochs) == ("tiny.csv", "/enc", 16, 2)
    assert explore.notebook_config({"PIPELINE_NOTEBOOK_DATA": ""}).data is None  # empty means unset


def test_the_notebooks_table_and_options_for_the_public_api(tmp_path):
    environment = {"PIPELINE_NOTEBOOK_DATA": str(write_tiny_csv(tmp_path / "tiny.csv", 60)),
                   "PIPELINE_NOTEBOOK_ENCODER": "/enc", "PIPELINE_NOTEBOOK_MAX_SEQ_LENGTH": "16",
                   "PIPELINE_NOTEBOOK_EPOCHS": "2"}
    table = explore.notebook_table(environment)
    assert list(table.columns) == ["text", "label"] and len(table) == 60
    assert list(table["label"].cat.categories) == ["neg", "pos"] and table["label"][0] == "pos"
    assert explore.notebook_feature_options(environment) == {"encoder": "/enc", "max_seq_length": 16}
    assert explore.notebook_head_options(environment) == {"epochs": 2}
    assert explore.notebook_feature_options({}) == {"encoder": EMBEDDED_ENCODER} and explore.notebook_head_options({}) == {}


def test_notebook_run_dir_is_a_new_folder_under_the_runs_folder(isolated_artifacts):
    first = explore.notebook_run_dir("notebook")
    assert first.parent == isolated_artifacts / "runs" and first.name.endswith("-notebook") and not first.exists()


def test_compare_on_test_matches_each_models_columns_to_the_classes_by_name():
    labels = pd.Series(pd.Categorical(["b", "a", "b", "a"], categories=["b", "a"]))
    in_order = SimpleNamespace(classes_=np.array(["b", "a"]),
                               predict_proba=lambda texts: np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]]))
    swapped = SimpleNamespace(classes_=np.array(["a", "b"]),
                              predict_proba=lambda texts: in_order.predict_proba(texts)[:, ::-1])
    table = explore.compare_on_test({"in order": in_order, "swapped": swapped}, ["t"] * 4, labels)
    assert list(table.index) == ["accuracy", "auroc", "pr_auc", "f1"]
    assert table["in order"].tolist() == table["swapped"].tolist() and table.loc["accuracy", "in order"] == 1.0


def test_class_balance_counts_each_split_and_the_share():
    splits = SimpleNamespace(train=_split([0, 0, 1, 1, 1, 2]), validation=_split([0, 1]), test=_split([1, 1]))
    table = explore.class_balance(splits, ["a", "b", "c"])
    assert table["train"].tolist() == [2, 3, 1]
    assert table["validation"].tolist() == [1, 1, 0]
    assert table["test"].tolist() == [0, 2, 0]
    assert table["total"].tolist() == [3, 6, 1]
    assert table["share"].tolist() == pytest.approx([0.3, 0.6, 0.1])
    assert table.index.tolist() == ["a", "b", "c"]


def test_all_texts_and_labels_follow_the_feature_order_of_extract():
    splits = SimpleNamespace(train=_split([0, 1], "tr"), validation=_split([1], "va"), test=_split([0, 0], "te"))
    texts, labels = explore.all_texts_and_labels(splits)
    assert texts == ["tr0", "tr1", "va0", "te0", "te1"] and labels.tolist() == [0, 1, 1, 0, 0]


def test_token_lengths_count_wordpieces_plus_cls_and_sep(tmp_path):
    from tokenization import FullTokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "movie", "##s", "good", ",", "!", "a"]) + "\n")
    tokenizer = FullTokenizer(str(vocab), do_lower_case=True)
    lengths = explore.token_lengths(["The movies, good!", "a", "", "zzz good"], tokenizer)
    # the movie ##s , good ! -> 6; a -> 1; nothing -> 0; [UNK] good -> 2; each plus [CLS] and [SEP]
    assert lengths.tolist() == [8, 3, 2, 4]


def test_length_summary_gives_the_share_cut_by_max_seq_length():
    summary = explore.length_summary(np.array([3, 5, 8, 10, 12, 20]), max_seq_length=10)
    assert summary["texts"] == 6 and summary["max"] == 20 and summary["max_seq_length"] == 10
    assert summary["mean"] == pytest.approx(58 / 6)
    assert summary["median"] == 9.0
    assert summary["truncated"] == 2  # 12 and 20; a text of exactly 10 tokens fits
    assert summary["truncated_share"] == pytest.approx(2 / 6)
    assert summary["p95"] == pytest.approx(18.0)


def test_examples_per_class_are_seeded_and_of_their_class():
    texts = [f"text {i}" for i in range(30)]
    labels = np.array([i % 3 for i in range(30)])
    table = explore.examples_per_class(texts, labels, ["a", "b", "c"], per_class=4, seed=1)
    assert table.groupby("label").size().to_dict() == {"a": 4, "b": 4, "c": 4}
    for label, text in zip(table["label"], table["text"]):
        assert "abc"[int(text.split()[1]) % 3] == label
    assert table.equals(explore.examples_per_class(texts, labels, ["a", "b", "c"], per_class=4, seed=1))
    assert not table.equals(explore.examples_per_class(texts, labels, ["a", "b", "c"], per_class=4, seed=2))
    few = explore.examples_per_class(["x", "y", "z"], np.array([0, 0, 1]), ["a", "b"], per_class=5)
    assert few.groupby("label").size().to_dict() == {"a": 2, "b": 1}


# ============================================================================ run folders

def _fake_run(folder, labels, probabilities, label_names=("neg", "pos")):
    metrics = {"labels": list(label_names), "config": {"seed": 1},
               "test": {"accuracy": 0.8, "auroc": 0.9, "pr_auc": 0.85, "f1": 0.7},
               "baseline": {"test": {"accuracy": 0.75, "auroc": None, "pr_auc": 0.8, "f1": 0.6}}}
    config = {"seed": 1, "labels": list(label_names), "encoder": "tiny", "encoder_info": {}, "pooling": "mean",
              "max_seq_length": 16}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "head.keras").write_bytes(b"")
    np.savez(folder / "test_predictions.npz", labels=np.array(labels), probabilities=np.array(probabilities))
    return folder


def test_read_run_and_head_against_baseline(tmp_path):
    run_dir = _fake_run(tmp_path / "run", [0, 1], [[0.9, 0.1], [0.2, 0.8]])
    record = run_folder.read_run_folder(run_dir)
    assert record.label_names == ["neg", "pos"] and record.config["seed"] == 1
    labels, probabilities = record.test_predictions()
    assert labels.tolist() == [0, 1] and probabilities.shape == (2, 2)
    table = explore.head_against_baseline(record.metrics)
    assert table.loc["accuracy"].tolist() == [0.8, 0.75]
    assert table.loc["f1"].tolist() == [0.7, 0.6]
    assert pd.isna(table.loc["auroc", "baseline"])


def test_load_run_splits_reads_and_splits_as_the_run_did(tmp_path):
    from pipeline.data import tables as data_module

    csv_path = write_tiny_csv(tmp_path / "reviews.csv", 60)
    record = {"data": str(csv_path), "test_data": None, "text_column": None, "label_column": None, "preset": None,
              "seed": 5}
    expected = data_module.split_labeled_texts(data_module.load_labeled_texts(csv_path, seed=5), seed=5)
    splits = explore.load_run_splits({**record, "split_sizes": {"train": 48, "validation": 6, "test": 6}})
    assert splits.test.texts == expected.test.texts and splits.train.texts == expected.train.texts
    assert splits.test.labels.tolist() == expected.test.labels.tolist()
    with pytest.raises(ValueError, match="the data changed since the run"):
        explore.load_run_splits({**record, "split_sizes": {"train": 40, "validation": 10, "test": 10}})
    with pytest.raises(ValueError, match="fitted on texts held in memory"):
        explore.load_run_splits({**record, "data": "in-memory"})


def test_training_curves_from_logs_match_training_log_csv_and_fall_back_to_it(tmp_path):
    from pipeline.training.head import build_head, compile_head
    from pipeline.training.train import make_deterministic, train_head

    generator = np.random.default_rng(0)
    labels = np.arange(200) % 2
    features = (generator.normal(size=(200, 8)) + labels[:, None]).astype(np.float32)
    make_deterministic(1)
    model = compile_head(build_head(8, 2, hidden_units=(8,), seed=1), 2)
    train_head(model, train_features=features[:150], train_labels=labels[:150], val_features=features[150:],
               val_labels=labels[150:], num_classes=2, best_weights_path=tmp_path / "checkpoints" / "best.weights.h5",
               tensorboard_dir=tmp_path / "logs", csv_log_path=tmp_path / "training_log.csv", epochs=3, batch_size=32, verbose=0)
    from_logs = explore.training_curves(tmp_path)
    from_csv = pd.read_csv(tmp_path / "training_log.csv").set_index("epoch")
    assert from_logs.index.tolist() == [0, 1, 2]
    assert {"loss", "val_loss", "auroc", "val_auroc", "accuracy", "val_accuracy", "pr_auc", "val_pr_auc", "lr"} \
        <= set(from_logs.columns)
    for column in from_csv.columns:
        np.testing.assert_allclose(from_logs[column].to_numpy(), from_csv[column].to_numpy(), rtol=1e-6)
    import shutil

    shutil.rmtree(tmp_path / "logs")
    assert explore.training_curves(tmp_path).equals(from_csv)


# ============================================================================ evaluation

def test_roc_and_pr_points_for_two_classes_follow_the_positive_class():
    labels = np.array([0, 0, 1, 1])
    positive = np.array([0.1, 0.4, 0.35, 0.8])
    probabilities = np.column_stack([1 - positive, positive])
    [(name, (fpr, tpr))] = plots.roc_points(labels, probabilities, ["neg", "pos"]).items()
    assert name == "pos"
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0] and tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    [(name, (recall, precision))] = plots.pr_points(labels, probabilities, ["neg", "pos"]).items()
    assert name == "pos"
    assert recall.tolist() == [1.0, 1.0, 0.5, 0.5, 0.0]
    assert precision.tolist() == pytest.approx([0.5, 2 / 3, 0.5, 1.0, 1.0])


def test_curves_for_more_classes_are_one_vs_rest_and_skip_absent_classes():
    labels = np.array([0, 1, 0, 1])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    roc = plots.roc_points(labels, probabilities, ["a", "b", "c"])
    assert list(roc) == ["a", "b"]  # no text of class c: its ROC curve is undefined
    assert roc["a"][1].tolist()[-1] == 1.0
    assert list(plots.pr_points(labels, probabilities, ["a", "b", "c"])) == ["a", "b"]


def test_confusion_table_rows_are_true_classes():
    table = plots.confusion_table(np.array([0, 0, 1, 2, 2, 2]), np.eye(3)[[0, 1, 1, 2, 0, 2]], ["a", "b", "c"])
    assert table.to_numpy().tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert table.index.name == "true" and table.columns.name == "predicted"


def test_most_confidently_wrong_sorts_the_mistakes_by_confidence():
    texts = ["right", "wrong a little", "wrong a lot", "also right", "wrong most"]
    labels = np.array([1, 0, 1, 0, 0])
    probabilities = np.array([[0.1, 0.9], [0.4, 0.6], [0.8, 0.2], [0.7, 0.3], [0.05, 0.95]])
    table = explore.most_confidently_wrong(texts, labels, probabilities, ["neg", "pos"], count=2)
    assert table["text"].tolist() == ["wrong most", "wrong a lot"]
    assert table["label"].tolist() == ["neg", "pos"] and table["predicted"].tolist() == ["pos", "neg"]
    assert table["confidence"].tolist() == [0.95, 0.8]
    assert len(explore.most_confidently_wrong(texts, labels, probabilities, ["neg", "pos"])) == 3


# ============================================================================ feature space

def test_sample_rows_is_seeded_sorted_and_whole_when_small():
    assert plots.sample_rows(5, 10).tolist() == [0, 1, 2, 3, 4]
    rows = plots.sample_rows(100, 10, seed=4)
    assert len(set(rows.tolist())) == 10 and rows.tolist() == sorted(rows.tolist()) and rows.max() < 100
    assert rows.tolist() == plots.sample_rows(100, 10, seed=4).tolist()
    assert rows.tolist() != plots.sample_rows(100, 10, seed=5).tolist()


def test_pca_projection_keeps_distances_of_points_on_a_plane():
    generator = np.random.default_rng(0)
    plane = generator.normal(size=(40, 2)) * [5.0, 1.0]
    basis = np.linalg.qr(generator.normal(size=(6, 2)))[0]  # two orthonormal directions in 6-D
    points = explore.project_2d(plane @ basis.T + 3.0, method="pca")
    assert points.shape == (40, 2)

    def distances(array):
        return np.linalg.norm(array[:, None] - array[None], axis=-1)

    np.testing.assert_allclose(distances(points), distances(plane), atol=1e-9)


def test_tsne_projection_is_seeded_and_separates_clusters():
    generator = np.random.default_rng(1)
    labels = np.arange(40) % 2
    features = generator.normal(size=(40, 10)) + labels[:, None] * 20
    first = explore.project_2d(features, method="tsne", seed=3)
    assert first.shape == (40, 2)
    np.testing.assert_allclose(first, explore.project_2d(features, method="tsne", seed=3))
    centre_gap = np.linalg.norm(first[labels == 0].mean(0) - first[labels == 1].mean(0))
    assert centre_gap > 3 * first[labels == 0].std(0).max()
    with pytest.raises(ValueError, match="'pca' or 'tsne'"):
        explore.project_2d(features, method="umap")


def test_nearest_neighbours_rank_by_cosine_similarity():
    features = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.0], [2.0, 0.1]])
    table = explore.nearest_neighbours(np.array([5.0, 0.0]), features, ["x", "y", "diag", "minus x", "almost x"],
                                       np.array([0, 1, 1, 0, 1]), ["neg", "pos"], count=3)
    assert table["text"].tolist() == ["x", "almost x", "diag"]
    assert table["label"].tolist() == ["neg", "pos", "pos"]
    assert table["cosine_similarity"].tolist() == pytest.approx([1.0, 2 / np.hypot(2, 0.1), np.sqrt(0.5)])


# ============================================================================ drawing

def test_drawing_functions_draw_what_they_are_given():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    plots.draw_confusion(ax, plots.confusion_table(np.array([0, 1, 1]), np.eye(2)[[0, 0, 1]], ["neg", "pos"]))
    assert [text.get_text() for text in ax.texts] == ["1", "0", "1", "1"]
    ax = Figure().add_subplot()
    curves = pd.DataFrame({"loss": [0.9, 0.5], "val_loss": [1.0, 0.7]}, index=pd.Index([0, 1], name="epoch"))
    plots.draw_training_curve(ax, curves, "loss")
    assert [line.get_label() for line in ax.lines] == ["train", "validation"]
    assert ax.lines[1].get_ydata().tolist() == [1.0, 0.7]
    ax = Figure().add_subplot()
    plots.draw_projection(ax, np.array([[0, 0], [1, 1], [2, 2]]), np.array([0, 1, 1]), ["neg", "pos"], title="t")
    assert [len(collection.get_offsets()) for collection in ax.collections] == [1, 2]
    ax = Figure().add_subplot()
    plots.draw_length_histogram(ax, np.array([3, 4, 4, 12]), 8)
    assert [patch.get_height() for patch in ax.patches] == [1, 2] + [0] * 7 + [1]  # one bin per token count
    assert ax.lines[0].get_xdata()[0] == 8  # the max_seq_length marker


def test_a_query_encoded_like_the_cache_finds_its_own_text_first(tmp_path, tiny_encoder_dir):
    from pipeline.base.config import RunConfig
    from pipeline.runs.prepare import extract, prepare

    config = RunConfig(data=str(write_tiny_csv(tmp_path / "reviews.csv", 60)), encoder=str(tiny_encoder_dir),
                       max_seq_length=16, cache_dir=str(tmp_path / "cache"))
    prepared = prepare(config)
    features = extract(prepared, show_progress=False).features
    texts, labels = explore.all_texts_and_labels(prepared.splits)
    query = texts[7]
    vector = explore.encode_query(query, prepared)
    np.testing.assert_allclose(vector, features[7], rtol=1e-4, atol=1e-5)
    table = explore.nearest_neighbours(vector, features, texts, labels, prepared.label_names, count=3)
    assert table["text"].iloc[0] == query and table["cosine_similarity"].iloc[0] == pytest.approx(1.0, abs=1e-5)


def test_the_notebooks_long_text_line_is_the_run_summarys(tiny_encoder_dir, tmp_path):
    from pipeline import FeatureExtractor
    from pipeline.features.long_texts import TRUNCATE, length_report, summary_line

    texts = ["good", "the movie is good and the story is great", "good"]
    truncating = FeatureExtractor(str(tiny_encoder_dir), max_seq_length=8, long_texts="truncate", cache_dir=tmp_path,
                                  progress=False).fit()
    tokenizer = truncating.settings_.encoder.tokenizer
    expected = summary_line(length_report([len(tokenizer.encode(text)) for text in texts[:2]], 8, TRUNCATE))
    assert explore.long_text_line(texts, truncating) == expected
    assert expected.startswith("Long texts: 1 of 2 texts (50.0%) longer than 6 tokens were cut (truncate)")
    by_default = FeatureExtractor(str(tiny_encoder_dir), max_seq_length=8, cache_dir=tmp_path, progress=False).fit()
    # Windows of 6 tokens overlapping by 1, at most 8 of them, read 41 tokens.
    assert explore.long_text_line(texts, by_default).startswith(
        "Long texts: 0 of 2 texts (0.0%) longer than 41 tokens were cut (windows)")
