"""What the quality measurements in benchmarks/ share: the CPU they ran on, the committed code they ran (exported with
`git archive`, so edits in the checkout during a long measurement do not reach it), a clean environment for the
pipeline's subprocesses, and a mean with its spread."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
DROPPED_VARIABLES = ("TF_USE_LEGACY_KERAS", "PYTHONPATH")


def cpu_description() -> dict[str, Any]:
    """Model name, family and model, and whether the flags that decide precision and speed are present (lscpu)."""
    fields: dict[str, str] = {}
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        output = ""
    for line in output.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("Flags", "").split())
    return {"model_name": fields.get("Model name", "unknown"), "family": fields.get("CPU family", "?"),
            "model": fields.get("Model", "?"), "cpus": fields.get("CPU(s)", "?"),
            "flags": {flag: flag in flags for flag in CPU_FLAGS}}


def cpu_line(cpu: dict[str, Any]) -> str:
    present = [flag for flag, has in cpu["flags"].items() if has]
    absent = [flag for flag, has in cpu["flags"].items() if not has]
    return (f"{cpu['model_name']} (family {cpu['family']}, model {cpu['model']}), {cpu['cpus']} CPUs; "
            f"has {', '.join(present) or 'none of them'}; lacks {', '.join(absent) or 'nothing'}")


def code_folder(commit: str | None, output: Path) -> tuple[Path, str]:
    """The folder the runs import `pipeline` from, and a description of that code: the checkout (its HEAD, and
    whether pipeline/ or tokenization/ has uncommitted changes), or `commit` exported to OUTPUT/code."""
    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    if commit is None:
        dirty = git("status", "--porcelain", "--", "pipeline", "tokenization")
        return REPO, f"the checkout at {git('rev-parse', '--short', 'HEAD')}{' with uncommitted changes' if dirty else ''}"
    folder = output / "code"
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder, f"commit {git('rev-parse', '--short', commit)}, exported to {folder}"


def clean_environment(artifacts: Path) -> dict[str, str]:
    """os.environ without the variables that would change what the pipeline does, with PIPELINE_ARTIFACTS set."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in DROPPED_VARIABLES and not key.startswith("PIPELINE_")}
    environment["PIPELINE_ARTIFACTS"] = str(artifacts)
    return environment


def spread(values: list[float]) -> str:
    """mean ± sample sd (min-max)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f} ({min(values):.4f}-{max(values):.4f})"


STDERR_TAIL_LINES = 30


def run_or_exit(command: list[str], *, code: Path, environment: dict[str, str]) -> float:
    """Runs `command` in `code`; its wall seconds. Exits with the command and its stderr's tail if it fails."""
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=code, env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.splitlines()[-STDERR_TAIL_LINES:])
        sys.exit(f"run failed (exit status {completed.returncode}) after {wall:.0f} s: {' '.join(command)}\n{tail}")
    return wall
