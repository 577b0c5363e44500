"""Files and folders: atomic writes, SHA-256 of bytes and files, and folder checks that name the option.

Atomic writes go to a temporary name in the same folder, fsync, rename: a reader (or a resumed run
after `kill -9`) therefore sees either the old file or the complete new one, never half of one. A full
disk turns into a UserError and leaves nothing behind.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.base.errors import UserError


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Writes `payload` to `path` so that no reader ever sees a partial file."""
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


def write_json_atomic(path: Path, value: Any) -> None:  # any JSON-ready value
    write_bytes_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def npy_bytes(array: np.ndarray) -> bytes:
    """The exact bytes np.save writes, so they can be hashed and written atomically in one go."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def bytes_sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (never the whole file in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_writable_dir(path: Path, option: str) -> None:
    """Creates a folder or says, as one line, which option points somewhere unwritable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{option} {path} cannot be created ({error.strerror}); choose a folder you can write to") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path} is not writable; choose a folder you can write to")


def require_folder(path: Path, what: str, hint: str) -> None:
    """One line naming `what` when `path` is missing or is a file; `hint` says what to pass instead."""
    if not path.exists():
        raise UserError(f"{what} {path} not found; {hint}")
    if not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder; {hint}")


def check_creatable(path: Path, option: str) -> None:
    """Fails early if `path` could not be created or written, without creating anything yet."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path} cannot be written ({existing} is not a writable folder); choose a folder you can write to")
