"""Atomic file writes: a reader sees the old content or the new, never a partial file.

Used for everything perianctl persists outside SQLite: the config file (may hold a token), the
sandbox's credentials and info files, and task data such as ``inputs.pb``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: str | bytes, *, private: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file + ``os.replace``; ``private`` → 0600 from the first byte."""
    if private:
        private_dir(path.parent)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if private:
            os.fchmod(fd, 0o600)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def private_dir(path: Path) -> Path:
    """Create ``path`` and every missing parent with mode 0700 (``mkdir(parents=True)`` would give
    the parents the umask's 0755, exposing e.g. the state dir that holds the journal)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
    return path
