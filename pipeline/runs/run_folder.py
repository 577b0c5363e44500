"""The run folder's on-disk format: its file names, the INCOMPLETE marker, and reading a finished run.

    <run>/INCOMPLETE            present from the start of training until metrics.json is written
    <run>/config.json           the settings, labels, split sizes and encoder identity
    <run>/metrics.json          written last: test, val, baseline, features, training, config
    <run>/report.txt            the classification report
    <run>/head.keras            the head at its best validation-AUROC epoch
    <run>/checkpoints/best.weights.h5, training_log.csv, test_predictions.npz
    <run>/logs/                 TensorBoard: train/, validation/ (Keras), evaluation/ (ours)
    <run>/encoder/              --fine-tune only: the tuned encoder, a TF-Hub SavedModel `--encoder` accepts
    <run>/checkpoints/backup/, checkpoints/best/   --fine-tune only, while it runs: what resuming needs

`run` writes it; `export`, `predict`, the notebooks and TensorBoard read it. No TensorFlow here, so a
bad folder is refused in a second.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.base.errors import UserError
from pipeline.base.files import check_creatable, ensure_writable_dir, require_folder, write_json_atomic
from pipeline.data.targets import SINGLE_LABEL, Target
from pipeline.features.long_texts import LongTexts

log = logging.getLogger(__name__)

INCOMPLETE_MARKER = "INCOMPLETE"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.txt"
HEAD_FILE = "head.keras"
PREDICTIONS_FILE = "test_predictions.npz"
TRAINING_LOG_FILE = "training_log.csv"
BEST_WEIGHTS_FILE = "checkpoints/best.weights.h5"
LOGS_DIR = "logs"
TUNED_ENCODER_DIR = "encoder"
BACKUP_DIR = "checkpoints/backup"
BEST_CHECKPOINT_DIR = "checkpoints/best"
RUN_HINT = "pass a run folder written by `python -m pipeline run` (artifacts/runs/<time>-<name>)"


# ============================================================================ writing


def choose_run_dir(output_dir: str | None, *, runs_dir: Path, name: str) -> Path:
    """`output_dir`, or <runs_dir>/<time>-<name>; checked before any work so a bad folder fails fast."""
    if output_dir:
        run_dir = Path(output_dir)
        if run_dir.exists() and any(run_dir.iterdir()) and not (run_dir / INCOMPLETE_MARKER).exists():
            raise UserError(f"--output-dir {run_dir} already holds files; choose a new folder (runs never overwrite each other)")
        check_creatable(run_dir, "--output-dir")
        return run_dir
    check_creatable(runs_dir, "the runs folder")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = runs_dir / f"{stamp}-{name}"
    suffix = 2
    while run_dir.exists():
        run_dir = runs_dir / f"{stamp}-{name}-{suffix}"
        suffix += 1
    return run_dir


def resumable(run_dir: Path, config_record: dict[str, Any]) -> bool:
    """True when `run_dir` holds an interrupted fine-tuning run with this very config and a backup to resume
    from; UserError when it holds one with other settings (resuming it would mix two runs)."""
    if not (run_dir / INCOMPLETE_MARKER).exists() or not (run_dir / BACKUP_DIR / "checkpoint").is_file():
        return False
    try:
        recorded = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # interrupted before its config was written: nothing worth resuming
    differing = sorted(key for key in set(recorded) | set(config_record) if recorded.get(key) != config_record.get(key))
    if differing:
        raise UserError(f"--output-dir {run_dir} holds an interrupted fine-tuning run with other settings "
                        f"({', '.join(differing)} differ); pass the same options to resume it, or a new --output-dir")
    return True


def start_run_dir(run_dir: Path, *, resume: bool = False) -> None:
    """An interrupted run leaves INCOMPLETE behind; such a folder may be reused (or resumed when `resume`),
    a complete one never."""
    if resume:
        log.info("resuming the interrupted run in %s", run_dir)
        return
    if (run_dir / INCOMPLETE_MARKER).exists():
        log.info("reusing the incomplete run folder %s", run_dir)
        shutil.rmtree(run_dir)
    ensure_writable_dir(run_dir, "--output-dir")
    (run_dir / INCOMPLETE_MARKER).write_text("this run has not finished; delete the folder or run again\n")


def write_test_predictions(run_dir: Path, labels: np.ndarray, probabilities: np.ndarray) -> None:
    np.savez(run_dir / PREDICTIONS_FILE, labels=labels, probabilities=probabilities)


def finish_run_dir(run_dir: Path, metrics: dict[str, Any]) -> None:
    """metrics.json goes last: its presence, with INCOMPLETE gone, marks a complete run. A fine-tuning
    run's backups go first (hundreds of MB; the tuned encoder and head.keras hold the best epoch)."""
    for folder in (BACKUP_DIR, BEST_CHECKPOINT_DIR):
        shutil.rmtree(run_dir / folder, ignore_errors=True)
    checkpoints = (run_dir / BACKUP_DIR).parent
    if checkpoints.is_dir() and not any(checkpoints.iterdir()):
        checkpoints.rmdir()
    write_json_atomic(run_dir / METRICS_FILE, metrics)
    (run_dir / INCOMPLETE_MARKER).unlink(missing_ok=True)


# ============================================================================ reading


@dataclass(frozen=True)
class FinishedRun:
    """What a complete run folder records; reading it needs no TensorFlow."""

    run_dir: Path
    label_names: list[str]
    encoder_handle: str
    encoder_info: dict[str, Any]
    pooling: str
    layers: tuple[int, ...]
    combine: str
    max_seq_length: int
    config: dict[str, Any]  # config.json as written
    metrics: dict[str, Any]  # metrics.json as written

    @property
    def head_path(self) -> Path:
        return self.run_dir / HEAD_FILE

    @property
    def precision(self) -> str:
        """The encoder's compute precision during the run (runs from before --precision existed: float32)."""
        return str(self.config.get("precision") or "float32")

    @property
    def long_texts(self) -> LongTexts:
        """What the run read of long texts (runs from before --long-texts existed truncated them)."""
        return LongTexts(strategy=str(self.config.get("long_texts") or "truncate"),
                         head_tokens=int(self.config.get("head_tokens") or 0),
                         window_overlap=int(self.config.get("window_overlap") or 0),
                         max_windows=int(self.config.get("max_windows") or 1))

    @property
    def target(self) -> Target:
        """What the run predicts, with each label's threshold when it has several per text (runs from before
        targets were recorded: one class per text)."""
        recorded = self.metrics.get("target")
        return Target.from_record(recorded) if recorded else Target(kind=SINGLE_LABEL, names=tuple(self.label_names))

    @property
    def fine_tuned(self) -> bool:
        return bool(self.config.get("fine_tune"))

    @property
    def tuned_encoder_dir(self) -> Path:
        """Where a fine-tuned run keeps its encoder (inside the run folder, so the folder moves as one)."""
        return self.run_dir / TUNED_ENCODER_DIR

    def test_predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """(labels [N] or indicators [N, L], probabilities [N, K or L]) of the run's test split."""
        with np.load(self.run_dir / PREDICTIONS_FILE, allow_pickle=False) as predictions:
            return predictions["labels"], predictions["probabilities"]


def looks_like_run_folder(folder: Path) -> bool:
    return (folder / HEAD_FILE).is_file() or (folder / METRICS_FILE).is_file()


def read_run_folder(run_dir: str | os.PathLike[str]) -> FinishedRun:
    """Checks that `run_dir` holds a finished run and reads its settings; UserError otherwise."""
    run_dir = Path(run_dir)
    require_folder(run_dir, "run folder", RUN_HINT)
    if (run_dir / INCOMPLETE_MARKER).exists():
        raise UserError(f"run folder {run_dir} is incomplete (the run was interrupted); run it again, then export the finished run")
    if not (run_dir / METRICS_FILE).is_file():
        raise UserError(f"run folder {run_dir} has no {METRICS_FILE}, so its run did not finish; {RUN_HINT}")
    for name in (CONFIG_FILE, HEAD_FILE):
        if not (run_dir / name).is_file():
            raise UserError(f"run folder {run_dir} has no {name}; {RUN_HINT}")
    try:
        config = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
        run = FinishedRun(
            run_dir=run_dir,
            label_names=[str(name) for name in config["labels"]],
            encoder_handle=str(config["encoder"]),
            encoder_info=dict(config["encoder_info"]),
            pooling=str(config["pooling"]),
            # Runs made before layers could be chosen used the last layer alone.
            layers=tuple(int(index) for index in str(config.get("layers") or "-1").split(",")),
            combine=str(config.get("combine") or "concat"),
            max_seq_length=int(config["max_seq_length"]),
            config=dict(config),
            metrics=dict(metrics),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"config.json or metrics.json of run folder {run_dir} is unreadable or lacks {error}; "
                        f"run again to write a complete one") from None
    if run.fine_tuned and not (run.tuned_encoder_dir / "saved_model.pb").is_file():
        raise UserError(f"run folder {run_dir} was fine-tuned but has no {TUNED_ENCODER_DIR}/saved_model.pb; "
                        f"copy the whole run folder, or run again")
    return run
