"""TensorBoard's evaluation summaries of a multi-label run (issue 39): a PR curve per label in TensorBoard's own PR
Curves plugin, ROC and PR images with a line per label, the per-label table, macro AUROC and the other final metrics
as scalars for the HParams view, and the projector's labels joined by ",". Tiny arrays (3 labels, a few rows), the
event files read back with TensorBoard's EventAccumulator, then the real `tensorboard` server on them; the
single-label path is checked to write what it wrote before.
"""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
from test_tensorboard import running_tensorboard

from pipeline.evaluation import plots
from pipeline.evaluation import tensorboard_logging as tb
from pipeline.evaluation.metrics import classification_metrics, report_text
from pipeline.evaluation.multi_label import multi_label_metrics

NAMES = ["sport", "politics", "tech"]
THRESHOLDS = [0.4, 0.5, 0.3]
# The test split: every label has positives and negatives; no probability sits near 0.5 or a multiple of 1/200.
TEST_INDICATORS = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0], [1, 0, 1], [0, 1, 1]], np.int8)
TEST_PROBABILITIES = np.array([[0.913, 0.127, 0.652], [0.232, 0.811, 0.143], [0.768, 0.347, 0.221],
                               [0.102, 0.263, 0.383], [0.437, 0.092, 0.871], [0.611, 0.722, 0.418]], np.float32)
VALIDATION_INDICATORS = np.array([[1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1]], np.int8)
VALIDATION_PROBABILITIES = np.array([[0.83, 0.64, 0.21], [0.31, 0.22, 0.77], [0.58, 0.49, 0.12],
                                     [0.41, 0.93, 0.66]], np.float32)
TRAIN_INDICATORS = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 1], [0, 0, 1]], np.int8)
MULTI_LABEL_SCALARS = ("macro_auroc", "micro_auroc", "macro_f1", "micro_f1", "subset_accuracy", "hamming_loss")
CONFIG = {"encoder": "tiny-encoder", "pooling": "mean", "epochs": 2, "batch_size": 4, "seed": 7}


# ============================================================================ a tiny run's inputs

def _split(name, labels):
    return SimpleNamespace(texts=[f"{name} text {row}" for row in range(len(labels))], labels=labels)


def _features(rows):
    """Column 0 is +1 on even rows and -1 on odd ones: what the fake head's predictions follow."""
    sign = np.where(np.arange(rows) % 2 == 0, 1.0, -1.0)
    return np.column_stack([sign, np.arange(rows), np.ones(rows), np.zeros(rows)]).astype(np.float32)


def _predict_multi_label(features):
    """Even rows: sport 0.9 (>= 0.4) and politics exactly 0.5 (>= 0.5, counted); odd rows: no label reaches its
    threshold."""
    return np.where(features[:, :1] > 0, [[0.9, 0.5, 0.1]], [[0.1, 0.2, 0.29]]).astype(np.float32)


def multi_label_inputs():
    splits = SimpleNamespace(train=_split("train", TRAIN_INDICATORS), validation=_split("validation", VALIDATION_INDICATORS),
                             test=_split("test", TEST_INDICATORS))
    features = {name: _features(len(getattr(splits, name).texts)) for name in ("train", "validation", "test")}
    metrics = {
        "test": multi_label_metrics(TEST_INDICATORS, TEST_PROBABILITIES, THRESHOLDS, NAMES),
        "val": multi_label_metrics(VALIDATION_INDICATORS, VALIDATION_PROBABILITIES, THRESHOLDS, NAMES),
        "labels": NAMES, "config": CONFIG, "training": {"epochs_run": 2},
        "target": {"kind": "multi-label", "names": NAMES, "thresholds": THRESHOLDS},
    }
    return metrics, splits, features


def single_label_inputs():
    labels = {"train": np.array([0, 1, 2, 0, 1], np.int64), "validation": np.array([2, 1, 0, 1], np.int64),
              "test": np.array([0, 1, 2, 0, 2, 1], np.int64)}
    splits = SimpleNamespace(**{name: _split(name, value) for name, value in labels.items()})
    features = {name: _features(len(value)) for name, value in labels.items()}
    test_probabilities = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.3, 0.4, 0.3],
                                   [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]], np.float32)
    val_probabilities = test_probabilities[[2, 1, 0, 3]]
    metrics = {"test": classification_metrics(labels["test"], test_probabilities, 3),
               "val": classification_metrics(labels["validation"], val_probabilities, 3),
               "labels": ["neg", "neutral", "pos"], "config": CONFIG, "training": {"epochs_run": 2}}
    return metrics, splits, features, test_probabilities


def read_summaries(folder):
    """{tag: (plugin name, value as a numpy array)} of the last step written to `folder`'s event file."""
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    return {tag: (accumulator.SummaryMetadata(tag).plugin_data.plugin_name,
                  tf.make_ndarray(accumulator.Tensors(tag)[-1].tensor_proto))
            for tag in accumulator.Tags()["tensors"]}


def tags_of(summaries, plugin):
    return {tag for tag, (plugin_name, _) in summaries.items() if plugin_name == plugin}


def text_of(summaries, tag):
    return summaries[tag][1].item().decode("utf-8")


@pytest.fixture(scope="module")
def multi_label_folder(tmp_path_factory):
    """logs/evaluation/ of a tiny multi-label run, written by write_run_summaries."""
    metrics, splits, features = multi_label_inputs()
    return tb.write_run_summaries(tmp_path_factory.mktemp("multi-label") / "logs", run_name="tiny-multi-label",
                                  metrics=metrics, report="label report\nsport 0.8", splits=splits,
                                  split_features=features, test_probabilities=TEST_PROBABILITIES,
                                  predict=_predict_multi_label, seed=3)


@pytest.fixture(scope="module")
def multi_label_summaries(multi_label_folder):
    return read_summaries(multi_label_folder)


# ============================================================================ pieces

def test_final_scalars_of_a_multi_label_run_are_its_own_metrics_without_the_missing_ones():
    metrics, _, _ = multi_label_inputs()
    metrics["val"]["micro_auroc"] = None
    scalars = tb.final_metric_scalars(metrics)
    expected = {f"{part}/{key}" for part in ("test", "val") for key in MULTI_LABEL_SCALARS} - {"val/micro_auroc"}
    assert set(scalars) == expected
    assert scalars["test/macro_auroc"] == pytest.approx(metrics["test"]["macro_auroc"])
    assert scalars["val/hamming_loss"] == pytest.approx(metrics["val"]["hamming_loss"])
    assert all(isinstance(value, float) for value in scalars.values())


def test_final_scalars_of_a_single_label_target_are_as_without_a_target():
    metrics = {"test": {"accuracy": 0.5, "auroc": 0.75, "pr_auc": 0.25, "f1": 0.0, "rows": 6},
               "val": {"accuracy": 1.0, "auroc": None, "pr_auc": 0.5, "f1": 1.0}}
    without_target = tb.final_metric_scalars(metrics)
    assert set(without_target) == {"test/accuracy", "test/auroc", "test/pr_auc", "test/f1", "val/accuracy",
                                   "val/pr_auc", "val/f1"}
    single_label = {**metrics, "target": {"kind": "single-label", "names": ["neg", "pos"], "thresholds": None}}
    assert tb.final_metric_scalars(single_label) == without_target


def test_per_label_table_is_markdown_in_label_order_for_test_then_validation():
    per_label = {"b|c": {"auroc": 0.75, "pr_auc": 0.5, "f1": 2 / 3, "threshold": 0.35, "support": 2},
                 "a": {"auroc": None, "pr_auc": None, "f1": 0.0, "threshold": 0.5, "support": 0}}
    table = tb.per_label_table({"test": {"per_label": per_label}, "val": {"per_label": per_label}})
    test_part, validation_part = table.split("\n\n**validation**\n\n")
    assert test_part.splitlines() == [
        "**test**", "",
        "| label | AUROC | PR-AUC | F1 | threshold | support |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        "| b\\|c | 0.7500 | 0.5000 | 0.6667 | 0.3500 | 2 |",
        "| a | n/a | n/a | 0.0000 | 0.5000 | 0 |",
    ]
    assert validation_part == "\n".join(test_part.splitlines()[2:])
    assert tb.per_label_table({"test": {"per_label": per_label}, "val": {}}) == test_part


def test_projector_metadata_joins_the_labels_and_predicts_at_or_above_each_threshold():
    labels = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], np.int8)
    probabilities = np.array([[0.4, 0.49, 0.3], [0.1, 0.2, 0.2], [0.9, 0.9, 0.9]], np.float32)
    predicted = tb.predicted_labels(probabilities, THRESHOLDS)
    assert predicted.tolist() == [[1, 0, 1], [0, 0, 0], [1, 1, 1]]
    tsv = tb.metadata_tsv(["a", "b", "c"], labels, NAMES, ["test", "test", "train"], predicted=predicted)
    assert tsv.splitlines() == ["label\tpredicted\tsplit\ttext", "sport,tech\tsport,tech\ttest\ta",
                                "(none)\t(none)\ttest\tb", "politics\tsport,politics,tech\ttrain\tc"]
    assert tb.predicted_labels(probabilities).tolist() == [1, 1, 0]  # no thresholds: the most probable class


def test_curves_of_an_indicator_matrix_are_one_per_label_and_each_labels_own():
    from sklearn.metrics import precision_recall_curve, roc_curve

    roc = plots.roc_points(TEST_INDICATORS, TEST_PROBABILITIES, NAMES)
    pr = plots.pr_points(TEST_INDICATORS, TEST_PROBABILITIES, NAMES)
    assert list(roc) == list(pr) == NAMES
    false_positive_rate, true_positive_rate, _ = roc_curve(TEST_INDICATORS[:, 1], TEST_PROBABILITIES[:, 1])
    assert np.array_equal(roc["politics"][0], false_positive_rate) and np.array_equal(roc["politics"][1], true_positive_rate)
    precision, recall, _ = precision_recall_curve(TEST_INDICATORS[:, 2], TEST_PROBABILITIES[:, 2])
    assert np.array_equal(pr["tech"][0], recall) and np.array_equal(pr["tech"][1], precision)
    two_labels = plots.roc_points(TEST_INDICATORS[:, :2], TEST_PROBABILITIES[:, :2], NAMES[:2])
    assert list(two_labels) == ["sport", "politics"]  # both labels, not the "positive class" of two classes
    no_positive = TEST_INDICATORS.copy()
    no_positive[:, 0] = 0
    assert list(plots.roc_points(no_positive, TEST_PROBABILITIES, NAMES)) == ["politics", "tech"]
    assert list(plots.pr_points(no_positive, TEST_PROBABILITIES, NAMES)) == ["politics", "tech"]


def test_multi_label_images_are_roc_and_pr_pngs_without_a_confusion_matrix():
    from PIL import Image

    images = tb.evaluation_images(TEST_INDICATORS, TEST_PROBABILITIES, NAMES, multi_label=True)
    assert set(images) == {"roc_curve", "pr_curve"}
    for png in images.values():
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and len(image.getcolors(maxcolors=100_000)) > 20


# ============================================================================ the event file of a multi-label run

def test_a_pr_curve_per_label_in_tensorboards_pr_curves_plugin(multi_label_summaries):
    assert tags_of(multi_label_summaries, "pr_curves") == {f"pr_curve/{name}" for name in NAMES}
    for index, name in enumerate(NAMES):
        data = multi_label_summaries[f"pr_curve/{name}"][1]
        assert data.shape == (6, tb.PR_CURVE_THRESHOLDS)
        true_positives, false_positives, true_negatives, false_negatives, precision, recall = data
        positive = TEST_INDICATORS[:, index] == 1
        at_half = TEST_PROBABILITIES[:, index] >= 0.5  # threshold index 100 of 0, 0.005, ..., 1
        assert (true_positives[0], false_positives[0]) == (positive.sum(), (~positive).sum())
        assert (true_positives[100], false_positives[100]) == ((positive & at_half).sum(), (~positive & at_half).sum())
        assert (true_negatives[100], false_negatives[100]) == ((~positive & ~at_half).sum(), (positive & ~at_half).sum())
        assert recall[100] == pytest.approx((positive & at_half).sum() / positive.sum())
        assert precision[100] == pytest.approx((positive & at_half).sum() / max(at_half.sum(), 1))


def test_images_texts_and_per_label_table_of_a_multi_label_run(multi_label_summaries):
    assert tags_of(multi_label_summaries, "images") == {"roc_curve", "pr_curve"}
    assert tags_of(multi_label_summaries, "text") == {"config", "classification_report", "per_label"}
    assert "sport 0.8" in text_of(multi_label_summaries, "classification_report")
    table = text_of(multi_label_summaries, "per_label")
    metrics, _, _ = multi_label_inputs()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith(("| label", "| ---"))]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == NAMES * 2  # test, then validation, label order
    sport = metrics["test"]["per_label"]["sport"]
    assert rows[0] == f"| sport | {sport['auroc']:.4f} | {sport['pr_auc']:.4f} | {sport['f1']:.4f} | 0.4000 | 3 |"


def test_final_metrics_of_a_multi_label_run_are_scalars_for_the_hparams_view(multi_label_summaries):
    metrics, _, _ = multi_label_inputs()
    expected = {f"{part}/{key}" for part in ("test", "val") for key in MULTI_LABEL_SCALARS}
    assert tags_of(multi_label_summaries, "scalars") == expected
    assert multi_label_summaries["test/macro_auroc"][1] == pytest.approx(metrics["test"]["macro_auroc"])
    assert multi_label_summaries["val/subset_accuracy"][1] == pytest.approx(metrics["val"]["subset_accuracy"])
    assert tags_of(multi_label_summaries, "hparams") == {"_hparams_/session_start_info"}


def test_projector_metadata_of_a_multi_label_run(multi_label_folder):
    lines = (multi_label_folder / tb.PROJECTOR_METADATA).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "label\tpredicted\tsplit\ttext" and len(lines) == 1 + 6 + 4 + 5
    assert lines[1:5] == ["sport,tech\tsport,politics\ttest\ttest text 0", "politics\t(none)\ttest\ttest text 1",
                          "sport,politics\tsport,politics\ttest\ttest text 2", "(none)\t(none)\ttest\ttest text 3"]
    assert lines[7] == "sport,politics\tsport,politics\tvalidation\tvalidation text 0"


# ============================================================================ the single-label path, as before

def test_a_single_label_run_writes_what_it_wrote(tmp_path):
    metrics, splits, features, test_probabilities = single_label_inputs()
    report = report_text(splits.test.labels, test_probabilities, metrics["labels"])
    predict = lambda rows: np.where(rows[:, :1] > 0, [[0.1, 0.2, 0.7]], [[0.6, 0.3, 0.1]])  # noqa: E731
    folder = tb.write_run_summaries(tmp_path / "logs", run_name="tiny-single-label", metrics=metrics, report=report,
                                    splits=splits, split_features=features, test_probabilities=test_probabilities,
                                    predict=predict)
    summaries = read_summaries(folder)
    assert tags_of(summaries, "images") == {"roc_curve", "pr_curve", "confusion_matrix"}
    assert tags_of(summaries, "text") == {"config", "classification_report"}
    assert tags_of(summaries, "scalars") == {f"{part}/{key}" for part in ("test", "val")
                                             for key in ("accuracy", "auroc", "pr_auc", "f1")}
    assert tags_of(summaries, "pr_curves") == set()
    assert summaries["test/accuracy"][1] == pytest.approx(metrics["test"]["accuracy"])
    assert json.loads(text_of(summaries, "config").replace("\n    ", "\n")) == CONFIG
    lines = (folder / tb.PROJECTOR_METADATA).read_text(encoding="utf-8").splitlines()
    assert lines[:3] == ["label\tpredicted\tsplit\ttext", "neg\tpos\ttest\ttest text 0", "neutral\tneg\ttest\ttest text 1"]


# ============================================================================ the real server

@pytest.fixture(scope="module")
def multi_label_server(multi_label_folder, tmp_path_factory):
    """TensorBoard on the logs/ folder of the tiny multi-label run."""
    log_path = tmp_path_factory.mktemp("tensorboard-multi-label-log") / "tensorboard.log"
    with running_tensorboard(multi_label_folder.parent, log_path) as server:
        yield server


def test_server_shows_a_pr_curve_per_label_and_compares_runs_by_macro_auroc(multi_label_server):
    tags = multi_label_server.wait_for("/data/plugin/pr_curves/tags", lambda tags: "evaluation" in tags, "PR curve tags")
    assert {tag: info["displayName"] for tag, info in tags["evaluation"].items()} == {
        f"pr_curve/{name}": name for name in NAMES}
    curves = multi_label_server.get("/data/plugin/pr_curves/pr_curves?run=evaluation&tag=pr_curve/sport")
    [entry] = curves["evaluation"]
    assert entry["step"] == 2 and entry["true_positives"][0] == 3 and entry["false_positives"][0] == 3
    experiment = multi_label_server.get("/data/plugin/hparams/experiment", data=b'{"experimentName": ""}')
    metrics = {info["name"]["tag"] for info in experiment["metricInfos"]}
    assert {"test/macro_auroc", "val/macro_auroc", "test/micro_f1", "test/hamming_loss"} <= metrics
