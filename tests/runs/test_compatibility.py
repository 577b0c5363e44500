"""What users already have on disk keeps working: a feature-cache entry and a run folder written by the code
before `pipeline/` was split into one folder per stage (tests/fixtures/before_layout, made by
tests/fixtures/make_layout_fixture.py at that commit) load, hit and predict as they did."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import FIXTURES, REPO_ROOT, assert_run_and_export_predict_the_runs_test_probabilities

FIXTURE = FIXTURES / "before_layout"
CACHE_KEY = "34e617554794a08abfe19bffddc7fb0c"


@pytest.fixture
def in_repository_root(monkeypatch):
    """The fixture's run recorded its data and encoder relative to the repository root, as a user's would be."""
    monkeypatch.chdir(REPO_ROOT)


def test_an_old_cache_entry_is_a_hit_with_the_same_features(tmp_path, in_repository_root, capsys):
    from pipeline.commands.cli import main

    cache = shutil.copytree(FIXTURE / "cache", tmp_path / "cache")
    stored = np.load(cache / CACHE_KEY / "shard-00000.npy", allow_pickle=False)
    manifest_before = (cache / CACHE_KEY / "manifest.json").read_bytes()
    code = main(["extract", "--data", "tests/fixtures/before_layout/texts.csv", "--encoder", "tests/fixtures/before_layout/encoder",
                 "--cache-dir", str(cache), "--max-seq-length", "16", "--quiet",
                 "--precision", "float32"])  # the entry's precision; `auto` may choose another on this CPU
    assert code == 0
    assert "cache hit" in capsys.readouterr().out
    assert sorted(path.name for path in cache.iterdir() if not path.name.startswith(".")) == [CACHE_KEY]
    assert (cache / CACHE_KEY / "manifest.json").read_bytes() == manifest_before
    np.testing.assert_array_equal(np.load(cache / CACHE_KEY / "shard-00000.npy", allow_pickle=False), stored)


def test_an_old_run_folder_predicts_its_test_probabilities_directly_and_exported(tmp_path, in_repository_root):
    from pipeline.runs.export import export_run

    run_dir = shutil.copytree(FIXTURE / "run", tmp_path / "run")
    assert json.loads((run_dir / "metrics.json").read_text())["mode"] == "frozen"
    export_run(run_dir, tmp_path / "exported")
    assert_run_and_export_predict_the_runs_test_probabilities(run_dir, tmp_path / "exported")
