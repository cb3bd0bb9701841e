"""Read and write task data (``inputs.pb``, ``outputs.pb``) at a local path or a remote URI.

Local paths (and ``file://``) are handled with the standard library -- atomic writes, no partial
``inputs.pb`` for a job to read. Remote URIs (``s3://``, ``gs://``, ``abfs://`` ...) go through
fsspec, which flytekit already depends on, imported only when a remote URI is used.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from perianctl.errors import UsageError
from perianctl.files import atomic_write

_REMOTE_SCHEMES = frozenset({"s3", "gs", "gcs", "abfs", "abfss", "az", "adl", "http", "https", "oci"})


def is_remote(uri: str) -> bool:
    return urlparse(uri).scheme.lower() in _REMOTE_SCHEMES


def local_path(uri: str) -> Path:
    """The filesystem path of a local URI (plain path or ``file://``)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise UsageError(f"unsupported storage URI scheme '{parsed.scheme}://' in {uri}")
    return Path(uri).expanduser().absolute()


def normalize_prefix(prefix: str) -> str:
    """Remote URIs keep their form; local ones become absolute paths (what pyflyte-execute expects)."""
    prefix = prefix.strip()
    if not prefix:
        raise UsageError("empty output prefix")
    if is_remote(prefix):
        return prefix.rstrip("/")
    return str(local_path(prefix))


def join(prefix: str, *parts: str) -> str:
    base = prefix.rstrip("/")
    return "/".join([base, *(p.strip("/") for p in parts)])


def write_bytes(uri: str, data: bytes) -> None:
    if is_remote(uri):
        _fs_write(uri, data)
        return
    try:
        atomic_write(local_path(uri), data, private=False)
    except OSError as exc:
        raise UsageError(f"cannot write {uri}: {exc.strerror or exc}") from None


def read_bytes(uri: str) -> bytes | None:
    """The content, or ``None`` when the object does not exist."""
    if is_remote(uri):
        return _fs_read(uri)
    try:
        return local_path(uri).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read {uri}: {exc.strerror or exc}") from None


def _fs_write(uri: str, data: bytes) -> None:
    try:
        import fsspec

        with fsspec.open(uri, "wb") as handle:
            handle.write(data)
    except Exception as exc:
        raise UsageError(f"cannot write {uri}: {type(exc).__name__}: {exc}") from None


def _fs_read(uri: str) -> bytes | None:
    try:
        import fsspec

        with fsspec.open(uri, "rb") as handle:
            data: bytes = handle.read()
            return data
    except FileNotFoundError:
        return None
    except Exception as exc:
        raise UsageError(f"cannot read {uri}: {type(exc).__name__}: {exc}") from None
