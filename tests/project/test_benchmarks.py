"""benchmarks/extract.py: its counting and text sets on known inputs, and one tiny run of the real thing."""

import importlib.util
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import needs_embedded_assets
from helpers import REPO_ROOT, child_environment

SCRIPT = REPO_ROOT / "benchmarks" / "extract.py"


@pytest.fixture(scope="module")
def extract():
    """The script as a module (benchmarks/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("benchmark_extract", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_useful_flops_counts_the_products_of_real_tokens_only(extract):
    shape = {"layers": 2, "hidden": 4, "intermediate": 8}
    # One text of 10 tokens, per layer: 2*10*(4*16 + 2*4*8) = 2,560 for the six dense products,
    # 4*10*10*4 = 1,600 for the attention scores and the weighted values; two layers: 8,320.
    assert extract.useful_flops(np.array([10]), shape) == 8320.0
    # The count is per text, so two texts of 5 tokens cost less than one of 10 (attention is quadratic).
    assert extract.useful_flops(np.array([5, 5]), shape) == 2 * (2 * 5 * 128 + 4 * 25 * 4) * 2


def test_review_texts_are_unique_whole_snippets_of_at_least_forty_words_and_repeatable(extract):
    snippets = [f"snippet {index} has five words" for index in range(50)]
    reviews = extract.review_texts(snippets, 30, seed=3)
    assert len(reviews) == 30 and len(set(reviews)) == 30
    assert all(set(re.findall(r"snippet \d+ has five words", review)) <= set(snippets) for review in reviews)
    # Snippets are joined until a text has at least 40 words: eight of five words, exactly 40.
    assert [len(review.split()) for review in reviews] == [extract.REVIEW_WORDS] * 30
    assert extract.review_texts(snippets, 30, seed=3) == reviews
    assert extract.review_texts(snippets, 30, seed=4) != reviews


def test_pytorch_is_skipped_with_a_message_when_its_environment_is_missing(extract, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(extract, "PEERS_PYTHON", tmp_path / "no-venv" / "bin" / "python")
    assert extract.run_peer([], repeats=1, threads=2, batch_size=32) is None
    message = capsys.readouterr().out
    assert "c (PyTorch) skipped" in message and "make benchmark" in message


@needs_embedded_assets
def test_a_tiny_run_measures_a_and_b_on_the_embedded_encoder_and_they_agree():
    # The subprocess is given PIPELINE_MODELS and PIPELINE_ARTIFACTS as the fixtures in conftest.py set them.
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--short", "24", "--reviews", "8", "--repeats", "1", "--skip-peers"],
        capture_output=True, text=True, timeout=600, check=False, cwd=REPO_ROOT, env=child_environment(),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    output = completed.stdout
    assert re.search(r"^short: 24 texts, [\d.]+ tokens on average", output, re.MULTILINE)
    assert re.search(r"^reviews: 8 texts, [\d.]+ tokens on average", output, re.MULTILINE)
    for dtype in ("float32", "bfloat16"):
        assert re.search(rf"^d  matmul 2048x2048 {dtype}: [\d.]+ GFLOP/s", output, re.MULTILINE)
    a_b_difference = {}
    for name in ("short", "reviews"):
        for way in ("a tutorial", "b pipeline float32", "b pipeline bfloat16"):
            row = re.search(rf"^{name}\s+{way}\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+([\d.]+)$", output, re.MULTILINE)
            assert row, f"no {name} {way} row in:\n{output}"
            assert float(row.group(2)) > 0 and float(row.group(4)) > 0
        ratios = re.search(rf"^{name}\s+b32/a ([\d.]+)x\s+b16/b32 ([\d.]+)x$", output, re.MULTILINE)
        assert ratios, f"no {name} ratio line in:\n{output}"
        assert float(ratios.group(1)) > 0 and float(ratios.group(2)) > 0
        peaks = re.search(rf"^{name}\s+b32/d32 (\d+)% of the float32 matmul peak, b16/d16 (\d+)% of the bfloat16 one;"
                          rf"\s+cosine b16 vs b32 min ([\d.]+) mean ([\d.]+)\s+\(max \|b32-a\| ([\d.e+-]+)\)$",
                          output, re.MULTILINE)
        assert peaks, f"no {name} peak line in:\n{output}"
        assert int(peaks.group(1)) > 0 and int(peaks.group(2)) > 0
        assert float(peaks.group(3)) >= 0.999  # the bfloat16 bound of docs/quality.md, on the real encoder
        a_b_difference[name] = float(peaks.group(5))
    # Reviews fit a's fixed 128 tokens, so the tutorial way and the pipeline give the same vectors.
    assert a_b_difference["reviews"] < 1e-4
    assert "c pytorch" not in output


@needs_embedded_assets
def test_demo_documents_hide_one_labelled_snippet_among_plot_summaries(tmp_path):
    import pandas as pd

    from pipeline.data.presets import embedded_demo_path

    spec = importlib.util.spec_from_file_location("benchmark_long_texts", REPO_ROOT / "benchmarks" / "long_texts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    documents = pd.read_csv(module.demo_documents(tmp_path, 30, seed=1))
    corpus = pd.read_csv(embedded_demo_path())
    plots = {" ".join(text.split()) for text in corpus.loc[corpus["category"] == "plot", "text"].dropna()}
    assert sorted(documents["label"].value_counts().items()) == [("fresh", 15), ("rotten", 15)]
    assert sorted(documents["place"].value_counts().items()) == [("end", 10), ("middle", 10), ("start", 10)]
    for text, label, place in documents[["text", "label", "place"]].itertuples(index=False):
        snippets = corpus.loc[corpus["category"] == label, "text"].dropna().map(lambda value: " ".join(value.split()))
        found = [snippet for snippet in snippets if snippet in text and snippet not in plots]
        assert found, text[:80]
        position = text.index(found[0]) / len(text)
        assert {"start": position == 0, "middle": 0 < position < 0.9, "end": text.endswith(found[0])}[place]
    assert pd.read_csv(module.demo_documents(tmp_path, 30, seed=1)).equals(documents)


def test_the_int8_table_sets_ours_against_both_onnx_runtime_int8_ways_with_each_ones_cosine(extract, capsys):
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(4, 8)).astype(np.float32)
    ours = {"b float32": reference, "b int8": reference + 0.01, "b bfloat16": reference}
    result = {"texts": 4, "tokens": 40, "vectors": ours,
              "runs": {"b float32": [2.0, 3.0], "b bfloat16": [2.5], "b int8": [1.0, 1.5]},
              "cpu": {"b float32": [4.0], "b bfloat16": [5.0], "b int8": [2.0]}}
    onnx_sets = {"short-onnx": {"seconds": [2.0], "cpu_seconds": [4.0], "vectors": reference},
                 "short-onnx-int8": {"seconds": [0.8], "cpu_seconds": [1.6], "vectors": -reference},
                 "short-onnx-int8-pc": {"seconds": [1.25], "cpu_seconds": [2.4], "vectors": reference * 2}}
    extract.print_int8_table({"short": result}, {"sets": onnx_sets})
    printed = capsys.readouterr().out
    assert "e onnx int8-pc" in printed and "b8/e8 0.80x   b8/e8pc 1.25x   e8/b32 2.50x" in printed
    assert "e int8 -1.00000 / -1.00000, e int8-pc 1.00000 / 1.00000" in printed


@pytest.fixture(scope="module")
def head_epoch():
    spec = importlib.util.spec_from_file_location("benchmark_head_epoch", REPO_ROOT / "benchmarks" / "head_epoch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_head_epoch_benchmark_compares_like_with_like_and_prints_every_way(head_epoch, monkeypatch, capsys):
    features = np.random.default_rng(0).standard_normal((256, 48)).astype(np.float32)
    # The XLA way trains the pipeline's very head, only compiled: on full batches both epochs give the same loss.
    (graph,), (compiled,) = head_epoch.epoch_runners(features, 1, xla=False), head_epoch.epoch_runners(features, 1, xla=True)
    (graph_loss, graph_outputs), (xla_loss, xla_outputs) = graph(), compiled()
    assert graph_outputs.shape == xla_outputs.shape == (256, 1)
    assert abs(graph_loss - xla_loss) < 1e-4 and np.allclose(graph_outputs, xla_outputs, atol=1e-4)
    monkeypatch.setattr(sys, "argv", ["head_epoch.py", "--rows", "200", "--width", "48", "--rounds", "1", "--xla"])
    head_epoch.main()
    output = capsys.readouterr().out
    rows = dict(re.findall(r"^(products\+adam|products|epoch x3|epoch|xla x3|xla)\s+[\d.]+\s+[\d.]+\s+([\d.]+)x$",
                           output, re.MULTILINE))
    assert set(rows) == {"products", "products+adam", "epoch", "epoch x3", "xla", "xla x3"}, output
    assert rows["products+adam"] == "1.00"
    # 200 rows are 3 full batches of 64: per batch, 64 x 48 x 256 multiply-adds forward and as many for the weight
    # gradient, 2 FLOP each. The demo's 10,246 x 2,304: the 24 GFLOP an epoch docs/benchmarks.md counts.
    assert head_epoch.epoch_flops(200, 48) == 3 * 2 * (64 * 48 * 256) * 2
    assert round(head_epoch.epoch_flops(10246, 2304) / 1e9, 1) == 24.2
