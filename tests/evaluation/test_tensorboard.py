"""TensorBoard for a run: the files the pipeline writes, then the real `tensorboard` server reading them.

The server tests start .venv/bin/tensorboard on 127.0.0.1 with a port the OS picks and read its HTTP
API (the routes of TensorBoard 2.21's core, scalars, histograms, images, text, hparams and projector
plugins). The screenshot test needs Debian's `chromium` (`apt-get install chromium`) and is skipped
without it; run it alone with `make tensorboard-screenshot-test`.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import child_environment, write_tiny_csv

from pipeline.evaluation import tensorboard_logging as tb

SERVER_START_SECONDS = 60
TINY_ROWS = 60
TINY_FEATURES = 64  # the tiny encoder's 2 layers x 32 wide, side by side (the default --layers all)


# ============================================================================ pieces, without a server

def _split(texts, labels):
    return SimpleNamespace(texts=list(texts), labels=np.array(labels, dtype=np.int64))


def _splits(sizes):
    """Splits whose texts name their split and row, and features whose first column is the row."""
    splits, features = {}, {}
    for name, size in sizes.items():
        splits[name] = _split([f"{name}-{i}" for i in range(size)], [i % 2 for i in range(size)])
        features[name] = np.column_stack([np.arange(size), np.full(size, len(name))]).astype(np.float32)
    return SimpleNamespace(**splits), features


def test_projector_sample_takes_whole_splits_test_first_then_a_seeded_part_of_the_next():
    splits, features = _splits({"train": 50, "validation": 8, "test": 5})
    sample, texts, labels, split_names = tb.projector_sample(splits, features, max_rows=20, seed=3)
    assert split_names == ["test"] * 5 + ["validation"] * 8 + ["train"] * 7
    assert texts[:13] == [f"test-{i}" for i in range(5)] + [f"validation-{i}" for i in range(8)]
    train_rows = [int(text.split("-")[1]) for text in texts[13:]]
    assert len(set(train_rows)) == 7 and train_rows == sorted(train_rows) and max(train_rows) < 50
    assert train_rows != list(range(7))  # a random part, not the first rows
    assert sample[:, 0].tolist() == [float(int(text.split("-")[1])) for text in texts]  # features follow texts
    assert labels.tolist() == [row % 2 for row in range(5)] + [row % 2 for row in range(8)] + [r % 2 for r in train_rows]
    again = tb.projector_sample(splits, features, max_rows=20, seed=3)[1]
    assert again == texts


def test_projector_sample_stops_inside_the_test_split_when_it_alone_is_larger():
    splits, features = _splits({"train": 50, "validation": 8, "test": 30})
    sample, texts, _, split_names = tb.projector_sample(splits, features, max_rows=10, seed=0)
    assert split_names == ["test"] * 10 and sample.shape == (10, 2) and len(set(texts)) == 10


def test_metadata_has_a_header_and_escapes_tabs_and_line_breaks():
    tsv = tb.metadata_tsv(["plain", "a\tb\nc\\d\r"], np.array([1, 0]), ["neg", "pos"], ["test", "train"],
                          predicted=np.array([0, 0]))
    assert tsv.splitlines() == ["label\tpredicted\tsplit\ttext", "pos\tneg\ttest\tplain", "neg\tneg\ttrain\ta\\tb\\nc\\\\d\\r"]
    without_predictions = tb.metadata_tsv(["x"], np.array([0]), ["neg", "pos"], ["validation"])
    assert without_predictions == "label\tsplit\ttext\nneg\tvalidation\tx\n"
    assert len(tb.metadata_field("w" * 2000)) == tb.MAX_METADATA_TEXT_CHARS


def test_hparams_and_final_metrics_are_plain_values():
    config = {"encoder": "/some/where/tiny-encoder/", "pooling": "mean", "max_seq_length": 16, "learning_rate": 0.001,
              "batch_size": 16, "epochs": 3, "hidden_units": [50, 30, 30], "dropout_rate": 0.0,
              "class_weights": None, "seed": 42, "data": "ignored.csv", "layers": "-2,-1", "combine": "mean",
              "head": "mlp", "weight_decay": 0.01, "fine_tune": False, "precision": "bfloat16", "ensemble": 3,
              "long_texts": "windows", "head_tokens": None, "window_overlap": 31, "max_windows": 8}
    assert tb.hparam_values(config) == {
        "encoder": "tiny-encoder", "pooling": "mean", "max_seq_length": 16, "learning_rate": 0.001, "batch_size": 16,
        "epochs": 3, "hidden_units": "50,30,30", "dropout_rate": 0.0, "class_weights": "none", "seed": 42,
        "layers": "-2,-1", "combine": "mean", "head": "mlp", "weight_decay": 0.01, "fine_tune": False,
        "precision": "bfloat16", "ensemble": 3, "long_texts": "windows", "head_tokens": "none", "window_overlap": 31,
        "max_windows": 8,
    }
    assert tb.hparam_values({**config, "encoder": "all-MiniLM-L6-v2"})["encoder"] == "all-MiniLM-L6-v2"
    metrics = {"test": {"accuracy": 0.5, "auroc": None, "pr_auc": 0.25, "f1": 0.0, "rows": 6},
               "val": {"accuracy": 1.0, "auroc": 0.75, "pr_auc": 0.5, "f1": 1.0}}
    assert tb.final_metric_scalars(metrics) == {
        "test/accuracy": 0.5, "test/pr_auc": 0.25, "test/f1": 0.0,
        "val/accuracy": 1.0, "val/auroc": 0.75, "val/pr_auc": 0.5, "val/f1": 1.0,
    }


def test_evaluation_images_are_pngs_for_two_and_three_classes():
    from PIL import Image

    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    probabilities = np.eye(3)[[0, 1, 2, 1, 1, 0, 0, 2]] * 0.7 + 0.1
    for names, probs in ((["a", "b", "c"], probabilities), (["neg", "pos"], probabilities[:, :2] / probabilities[:, :2].sum(1, keepdims=True))):
        images = tb.evaluation_images(labels % len(names), probs, names)
        assert set(images) == {"roc_curve", "pr_curve", "confusion_matrix"}
        for png in images.values():
            image = Image.open(io.BytesIO(png))
            assert image.format == "PNG" and image.size == (400, 336)
            assert len(image.getcolors(maxcolors=100_000)) > 20  # drawn, not blank


def test_preformatted_text_is_indented_markdown():
    assert tb.as_preformatted("a\n  b") == "    a\n      b"


# ============================================================================ a real run and the real server

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_encoder_dir):
    """A run of pipeline.runs.run.run on the 60-row CSV with the tiny encoder; every path it writes is in tmp."""
    from pipeline.base.config import RunConfig
    from pipeline.runs.run import run

    folder = tmp_path_factory.mktemp("tensorboard-run")
    config = RunConfig(
        data=str(write_tiny_csv(folder / "reviews.csv", TINY_ROWS)), encoder=str(tiny_encoder_dir), max_seq_length=16,
        epochs=3, batch_size=16, output_dir=str(folder / "run"), cache_dir=str(folder / "cache"),
    )
    with pytest.MonkeyPatch.context() as patch:  # module scope comes before the autouse per-test isolation
        patch.setenv("PIPELINE_ARTIFACTS", str(folder / "artifacts"))
        return run(config, show_progress=False)


def test_a_run_writes_the_evaluation_folder(tiny_run):
    folder = tiny_run.run_dir / "logs" / "evaluation"
    assert list(folder.glob("events.out.tfevents.*"))
    lines = (folder / "metadata.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "label\tpredicted\tsplit\ttext" and len(lines) == TINY_ROWS + 1
    assert [line.split("\t")[2] for line in lines[1:7]] == ["test"] * 6  # the test split comes first
    config_text = (folder / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "embedding/.ATTRIBUTES/VARIABLE_VALUE"' in config_text
    assert 'metadata_path: "metadata.tsv"' in config_text
    assert "/" not in (folder / "checkpoint").read_text()  # relative paths: the run folder can move
    import tensorflow as tf

    embedding = tf.train.load_checkpoint(str(folder)).get_tensor(tb.PROJECTOR_TENSOR_NAME)
    assert embedding.shape == (TINY_ROWS, TINY_FEATURES) and embedding.dtype == np.float32


class TensorBoardServer:
    """A running tensorboard process and its base URL; `get` reads one route."""

    def __init__(self, process, url, log_path):
        self.process, self.url, self.log_path = process, url, log_path

    def get(self, route, data=None, raw=False):
        request = urllib.request.Request(self.url + route, data=data,
                                         headers={"Content-Type": "application/json"} if data else {})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return body if raw else json.loads(body)

    def wait_for(self, route, condition, what):
        """Polls `route` until `condition(answer)` holds; TensorBoard loads event files in the background."""
        deadline = time.monotonic() + SERVER_START_SECONDS
        answer = None
        while time.monotonic() < deadline:
            answer = self.get(route)
            if condition(answer):
                return answer
            time.sleep(0.5)
        pytest.fail(f"TensorBoard did not serve {what} within {SERVER_START_SECONDS} s; last answer: {answer}")


def tensorboard_program() -> str:
    beside_python = Path(sys.executable).parent / "tensorboard"
    return str(beside_python) if beside_python.exists() else shutil.which("tensorboard")


@contextlib.contextmanager
def running_tensorboard(logdir: Path, log_path: Path) -> Iterator[TensorBoardServer]:
    """`tensorboard --logdir logdir` on 127.0.0.1, port chosen by the OS (--port 0), its output in `log_path`;
    always stopped."""
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [tensorboard_program(), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0"],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_environment(),
        )
    try:
        yield TensorBoardServer(process, _wait_for_address(process, log_path), log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def tensorboard_server(tiny_run, tmp_path_factory):
    """TensorBoard on the tiny run's folder."""
    with running_tensorboard(tiny_run.run_dir, tmp_path_factory.mktemp("tensorboard-log") / "tensorboard.log") as server:
        yield server


def _wait_for_address(process, log_path: Path) -> str:
    """The URL TensorBoard prints once it listens ('TensorBoard 2.21.0 at http://127.0.0.1:PORT/')."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/", log_path.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            pytest.fail(f"tensorboard exited with {process.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.25)
    pytest.fail(f"tensorboard did not start listening within {SERVER_START_SECONDS} s:\n"
                f"{log_path.read_text(errors='replace')[-3000:]}")


# The default head is an ensemble of three: heads 2 and 3 log beside the first, under logs/member-N/.
MEMBER_RUNS = ("logs/member-2/train", "logs/member-2/validation", "logs/member-3/train", "logs/member-3/validation")
RUNS = ("logs/train", "logs/validation", "logs/evaluation", *MEMBER_RUNS)


def test_server_lists_the_runs_and_the_plugins(tensorboard_server):
    runs = tensorboard_server.wait_for("/data/runs", lambda runs: set(RUNS) <= set(runs), "the three runs")
    assert sorted(runs) == sorted(RUNS)
    plugins = tensorboard_server.wait_for(
        "/data/plugins_listing", lambda listing: listing.get("projector", {}).get("enabled"), "the projector plugin")
    for plugin in ("scalars", "histograms", "images", "text", "hparams", "projector"):
        assert plugins[plugin]["enabled"], plugin


def test_server_serves_the_scalars_of_training_and_evaluation(tensorboard_server):
    tags = tensorboard_server.wait_for("/data/plugin/scalars/tags", lambda tags: set(RUNS) <= set(tags), "scalar tags")
    epoch_tags = {"epoch_loss", "epoch_accuracy", "epoch_auroc", "epoch_pr_auc"}
    assert epoch_tags | {"epoch_lr"} <= set(tags["logs/train"])
    assert epoch_tags <= set(tags["logs/validation"])
    assert all(epoch_tags <= set(tags[run]) for run in MEMBER_RUNS)
    assert {"test/accuracy", "test/auroc", "test/pr_auc", "val/accuracy", "val/auroc"} <= set(tags["logs/evaluation"])
    points = tensorboard_server.get("/data/plugin/scalars/scalars?run=logs/train&tag=epoch_lr")
    assert [step for _, step, _ in points] == [0, 1, 2] and points[0][2] == pytest.approx(1e-3)
    histograms = tensorboard_server.get("/data/plugin/histograms/tags")
    assert {"dense_0/kernel_0/histogram", "probabilities/kernel_0/histogram"} <= set(histograms["logs/train"])


def test_server_serves_the_evaluation_images_and_texts(tensorboard_server):
    tags = tensorboard_server.wait_for("/data/plugin/images/tags", lambda tags: "logs/evaluation" in tags, "image tags")
    assert set(tags["logs/evaluation"]) == {"roc_curve", "pr_curve", "confusion_matrix"}
    [image] = tensorboard_server.get("/data/plugin/images/images?run=logs/evaluation&tag=roc_curve")
    png = tensorboard_server.get("/data/plugin/images/individualImage?" + image["query"], raw=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    texts = tensorboard_server.get("/data/plugin/text/tags")
    assert set(texts["logs/evaluation"]) == {"config", "classification_report"}
    [report] = tensorboard_server.get("/data/plugin/text/text?run=logs/evaluation&tag=classification_report")
    assert "precision" in report["text"] and "neg" in report["text"] and "pos" in report["text"]


def test_server_compares_runs_by_hparams(tensorboard_server):
    experiment = tensorboard_server.get("/data/plugin/hparams/experiment", data=b'{"experimentName": ""}')
    names = {info["name"] for info in experiment["hparamInfos"]}
    assert {"pooling", "max_seq_length", "learning_rate", "batch_size", "epochs", "hidden_units", "dropout_rate",
            "encoder"} <= names
    metrics = {info["name"]["tag"] for info in experiment["metricInfos"]}
    assert {"test/auroc", "test/accuracy", "val/auroc", "val/accuracy"} <= metrics


def test_server_serves_the_projector_with_metadata(tensorboard_server):
    runs = tensorboard_server.wait_for("/data/plugin/projector/runs", lambda runs: "logs/evaluation" in runs,
                                       "the projector run")
    assert runs == ["logs/evaluation"]
    info = tensorboard_server.get("/data/plugin/projector/info?run=logs/evaluation")
    [embedding] = info["embeddings"]
    assert embedding["tensorName"] == tb.PROJECTOR_TENSOR_NAME
    assert embedding["tensorShape"] == [TINY_ROWS, TINY_FEATURES]
    query = f"run=logs/evaluation&name={tb.PROJECTOR_TENSOR_NAME}"
    metadata = tensorboard_server.get(f"/data/plugin/projector/metadata?{query}", raw=True).decode("utf-8")
    assert metadata.splitlines()[0] == "label\tpredicted\tsplit\ttext" and len(metadata.splitlines()) == TINY_ROWS + 1
    tensor = tensorboard_server.get(f"/data/plugin/projector/tensor?{query}", raw=True)
    assert len(tensor) == TINY_ROWS * TINY_FEATURES * 4  # float32 rows, as the projector's front end reads them


# ============================================================================ headless screenshot (chromium)

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,900", "--virtual-time-budget=15000",
)


def take_screenshot(url: str, output: Path, profile_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    chromium = shutil.which("chromium")
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", f"--screenshot={output}", url],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=child_environment(),
    )


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (apt-get install chromium) to take a headless screenshot")
def test_headless_screenshot_of_the_scalars_page_is_not_blank(tensorboard_server, tmp_path):
    from PIL import Image

    tensorboard_server.wait_for("/data/plugin/scalars/tags", lambda tags: "logs/train" in tags, "scalar tags")
    output = tmp_path / "scalars.png"
    result = take_screenshot(tensorboard_server.url + "/#scalars", output, tmp_path / "chromium-profile")
    assert output.is_file(), f"chromium wrote no screenshot (exit {result.returncode}):\n{result.stderr[-3000:]}"
    image = Image.open(output).convert("RGB")
    assert image.size == (1280, 900)
    colours = image.getcolors(maxcolors=1_000_000)
    assert len(colours) > 50, f"the page looks blank: {len(colours)} distinct colours"
    most_common_share = max(count for count, _ in colours) / (image.width * image.height)
    assert most_common_share < 0.97, "the page is almost one colour"
