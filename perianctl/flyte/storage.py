"""Read and write task data (``inputs.pb``, ``outputs.pb``) at a local path or a remote URI.

Local paths (and ``file://``) are handled with the standard library -- atomic writes, no partial
``inputs.pb`` for a job to read. Remote URIs (``s3://``, ``gs://``, ``abfs://`` ...) go through
fsspec, which flytekit already depends on, imported only when a remote URI is used.

Remote storage libraries retry a failing request for a long time (gcsfs: 6 tries with back-off,
about 80 s without a network) and log a traceback for each try. Before the first remote call we
therefore check that the storage endpoint answers a TCP connect (a few seconds at most), fail
with one line if it does not, and keep the libraries' own logging off stderr unless ``-v``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlparse

from perianctl.errors import UnavailableError, UsageError
from perianctl.files import atomic_write

PREFLIGHT_TIMEOUT = 5.0
"""Seconds a storage endpoint gets to accept a TCP connection before the command gives up."""

_NOISY_LOGGERS = ("gcsfs", "fsspec", "s3fs", "aiobotocore", "botocore", "adlfs", "azure", "google")
_reachable: dict[tuple[str, int], str | None] = {}

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


def remove(uri: str, *, remove_dir: bool = False) -> None:
    """Delete the object or file ``uri`` (and a local ``remove_dir``'s now empty directory). Best effort."""
    import contextlib

    if is_remote(uri):
        with contextlib.suppress(Exception):
            _preflight(uri)
            import fsspec

            fs, path = fsspec.core.url_to_fs(uri)
            fs.rm_file(path)
        return
    with contextlib.suppress(OSError, UsageError):
        path = local_path(uri)
        path.unlink(missing_ok=True)
        if remove_dir:
            path.parent.rmdir()  # only when empty


def _endpoint(uri: str) -> tuple[str, int] | None:
    """The host and port a remote URI's library will connect to first (None: unknown, no check)."""
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # the proxy decides what is reachable
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("gs", "gcs"):
        custom = os.environ.get("STORAGE_EMULATOR_HOST") or os.environ.get("FSSPEC_GCS_ENDPOINT_URL")
        default = ("storage.googleapis.com", 443)
    elif scheme == "s3":
        custom = (
            os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or os.environ.get("FSSPEC_S3_ENDPOINT_URL")
        )
        default = ("s3.amazonaws.com", 443)
    elif scheme in ("http", "https"):
        custom, default = uri, None
    else:
        return None
    if custom:
        parsed = urlparse(custom if "://" in custom else f"http://{custom}")
        if not parsed.hostname:
            return None
        try:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
        except ValueError:
            return None
        return parsed.hostname, port
    return default


def _preflight(uri: str) -> None:
    """Fail fast (one line, exit 8) when the storage endpoint of ``uri`` cannot be reached at all."""
    import socket
    import threading

    for name in _NOISY_LOGGERS:  # a handler stops logging's last-resort printing of their tracebacks
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
    endpoint = _endpoint(uri)
    if endpoint is None:
        return
    if endpoint not in _reachable:
        outcome: list[str | None] = []

        def probe() -> None:
            try:
                socket.create_connection(endpoint, timeout=PREFLIGHT_TIMEOUT).close()
                outcome.append(None)
            except OSError as exc:
                outcome.append(exc.strerror or str(exc) or type(exc).__name__)

        thread = threading.Thread(target=probe, daemon=True, name="storage-preflight")
        thread.start()
        thread.join(PREFLIGHT_TIMEOUT + 1.0)  # name resolution has no timeout of its own
        _reachable[endpoint] = outcome[0] if outcome else f"no answer within {PREFLIGHT_TIMEOUT:g}s"
    reason = _reachable[endpoint]
    if reason is not None:
        host, port = endpoint
        raise UnavailableError(
            f"cannot reach the storage endpoint {host}:{port} for {uri}: {reason}",
            hint="check the network (and proxy settings), or use a local --output-prefix",
        )


def _fs_write(uri: str, data: bytes) -> None:
    _preflight(uri)
    try:
        import fsspec

        with fsspec.open(uri, "wb") as handle:
            handle.write(data)
    except Exception as exc:
        raise UsageError(f"cannot write {uri}: {type(exc).__name__}: {exc}") from None


def _fs_read(uri: str) -> bytes | None:
    _preflight(uri)
    try:
        import fsspec

        with fsspec.open(uri, "rb") as handle:
            data: bytes = handle.read()
            return data
    except FileNotFoundError:
        return None
    except Exception as exc:
        raise UsageError(f"cannot read {uri}: {type(exc).__name__}: {exc}") from None
