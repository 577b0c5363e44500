"""The real embedded encoder (all-MiniLM-L6-v2) on a few hundred demo snippets, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import needs_embedded_assets
from helpers import write_csv

pytestmark = needs_embedded_assets


@pytest.fixture(scope="module")
def demo_subset(tmp_path_factory):
    """Two disjoint balanced samples of the embedded demo as plain CSVs: 400 to train on, 400 to test on.

    A separate 400-row test file keeps the AUROC estimate steady enough to assert on.
    """
    from pipeline.data.tables import load_labeled_texts

    demo = load_labeled_texts(None, preset="rotten-tomatoes")
    generator = np.random.default_rng(0)
    chosen = [generator.choice(np.flatnonzero(demo.labels == label), 400, replace=False) for label in (0, 1)]
    folder = tmp_path_factory.mktemp("demo")
    return [write_csv(folder / f"{name}.csv", ["text", "label"],
                      [(demo.texts[row], demo.label_names[demo.labels[row]]) for rows in chosen for row in rows[part]])
            for name, part in (("train", slice(0, 200)), ("test", slice(200, 400)))]


def test_embedded_encoder_end_to_end_on_demo_snippets(demo_subset, tmp_path):
    from pipeline.base.config import RunConfig
    from pipeline.runs.run import run

    train_path, test_path = demo_subset
    config = RunConfig(data=str(train_path), test_data=str(test_path), epochs=10, batch_size=32, output_dir=str(tmp_path / "run"),
                       cache_dir=str(tmp_path / "cache"))
    first = run(config, show_progress=False)
    metrics = first.metrics
    assert metrics["config"]["pooling"] == "mean"  # recorded at conversion from 1_Pooling/config.json
    assert metrics["config"]["encoder_info"]["hidden_size"] == 384
    assert metrics["features"]["cache_hit"] is False and metrics["features"]["texts"] == 800
    # Sentence embeddings separate fresh from rotten well above chance even with 320 training rows.
    assert metrics["test"]["rows"] == 400
    print("integration AUROC: head", metrics["test"]["auroc"], "baseline", metrics["baseline"]["test"]["auroc"])
    assert metrics["baseline"]["test"]["auroc"] > 0.7
    assert metrics["test"]["auroc"] > 0.7
    second = run(config.replace(output_dir=str(tmp_path / "run2"), seed=7), show_progress=False)
    assert second.metrics["features"]["cache_hit"] is True
    assert json.loads((tmp_path / "run2" / "metrics.json").read_text())["config"]["seed"] == 7


def test_embedded_encoder_fine_tunes_a_few_steps_on_demo_snippets(demo_subset, tmp_path):
    """A few steps of the real recipe: the loss falls, the run folder is complete, and the probe on the frozen
    encoder's features sits beside the fine-tuned model's scores."""
    from pipeline.base.config import RunConfig
    from pipeline.runs.run import run

    train_path, test_path = demo_subset
    config = RunConfig(data=str(train_path), test_data=str(test_path), fine_tune=True, epochs=1, batch_size=16,
                       learning_rate=1e-4, output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"))
    metrics = run(config, show_progress=False).metrics
    assert metrics["mode"] == "fine-tune" and metrics["training"]["epochs_run"] == 1
    assert metrics["config"]["layers"] == "-1" and metrics["config"]["pooling"] == "mean"
    assert metrics["fine_tune"]["encoder_fingerprint"] != metrics["config"]["encoder_info"]["fingerprint"]
    print("fine-tuned integration AUROC", metrics["test"]["auroc"], "probe", metrics["baseline"]["test"]["auroc"],
          "texts/s", metrics["training"]["texts_per_second"])
    assert metrics["test"]["auroc"] > 0.7 and metrics["baseline"]["test"]["auroc"] > 0.7
    assert (tmp_path / "run" / "encoder" / "saved_model.pb").is_file()
