"""Writes tests/data/before_layout/: a feature-cache entry and a run folder made by the code as it stood
before `pipeline/` was split into one folder per stage (commit b88e1f5), for tests/test_compatibility.py.

What it holds, all made by `python -m pipeline run` at that commit:

    encoder/   the tiny 2-layer BERT of tests/tiny_bert.py, converted (the run's encoder)
    texts.csv  80 labelled texts (tests/helpers.tiny_review_rows)
    cache/     the feature cache that run filled (one entry)
    run/       the run folder, without its TensorBoard logs and checkpoints (loading never reads them)

Paths are recorded relative to the repository root (`--encoder tests/data/before_layout/encoder`), so the
run loads from any checkout. Run from the repository root: `.venv/bin/python tests/data/make_layout_fixture.py`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import REPO_ROOT, tiny_review_rows, write_csv  # noqa: E402
from tiny_bert import write_tiny_checkpoint  # noqa: E402

FIXTURE = Path("tests/data/before_layout")


def main() -> None:
    os.chdir(REPO_ROOT)
    if FIXTURE.exists():
        shutil.rmtree(FIXTURE)
    FIXTURE.mkdir(parents=True)
    scratch = FIXTURE / "scratch"
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PIPELINE_ARTIFACTS=str(scratch / "artifacts"))
    environment.pop("TF_USE_LEGACY_KERAS", None)
    checkpoint = write_tiny_checkpoint(scratch / "checkpoint")
    subprocess.run([sys.executable, "-m", "pipeline", "convert", "--checkpoint", str(checkpoint),
                    "--output", str(FIXTURE / "encoder")], check=True, env=environment)
    write_csv(FIXTURE / "texts.csv", ["text", "label"], tiny_review_rows(80))
    subprocess.run([sys.executable, "-m", "pipeline", "run", "--data", str(FIXTURE / "texts.csv"),
                    "--encoder", str(FIXTURE / "encoder"), "--cache-dir", str(FIXTURE / "cache"),
                    "--output-dir", str(FIXTURE / "run"), "--max-seq-length", "16", "--epochs", "2",
                    "--ensemble", "1", "--hidden-units", "8", "--seed", "7"], check=True, env=environment)
    for bulky in ("logs", "checkpoints"):
        shutil.rmtree(FIXTURE / "run" / bulky, ignore_errors=True)
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
