"""`pipeline_model.json`: what our converter records beside a SavedModel (source, pooling, limits).

One reader for every user (the converter, the embedded model's check, the encoder loader). Hub
models have no such file; that is not an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipeline.base.errors import UserError

MODEL_INFO_FILENAME = "pipeline_model.json"


def read_model_info(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The recorded notes of a converted model; {} when there are none (a hub model, a URL, no folder)."""
    path = Path(model_dir) / MODEL_INFO_FILENAME
    try:
        if not path.is_file():
            return {}
    except OSError:  # e.g. a URL that is not a valid path on this system
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path} is unreadable ({type(error).__name__}); delete it, or convert the model again") from None
    if not isinstance(info, dict):
        raise UserError(f"{path} is not a JSON object; delete it, or convert the model again")
    return info


def write_model_info(model_dir: Path, info: dict[str, Any]) -> None:
    """Written into the converter's temporary folder, which is renamed whole, so no atomic write is needed."""
    (model_dir / MODEL_INFO_FILENAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
