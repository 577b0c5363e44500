"""Atomic file writes: write to a temporary name in the same folder, fsync, rename.

A reader (or a resumed run after `kill -9`) therefore sees either the old file or the complete new one,
never half of one. A full disk turns into a UserError and leaves nothing behind.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from pipeline.errors import UserError


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(f"no space left on the device while writing {path}; free some space or choose another folder") from None
        if isinstance(error, PermissionError):
            raise UserError(f"cannot write {path} (permission denied); choose a folder you can write to") from None
        raise


def write_json_atomic(path: Path, value) -> None:
    write_bytes_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def npy_bytes(array: np.ndarray) -> bytes:
    """The exact bytes np.save writes, so they can be hashed and written atomically in one go."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def bytes_sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def ensure_writable_dir(path: Path, option: str) -> None:
    """Creates a folder or says, as one line, which option points somewhere unwritable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{option} {path} cannot be created ({error.strerror}); choose a folder you can write to") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path} is not writable; choose a folder you can write to")
