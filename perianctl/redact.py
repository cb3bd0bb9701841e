"""Keep secrets out of everything perianctl prints or logs.

Redaction is by *key name* (token, password, secret, key, credentials, authorization, ...) and by
known value: values registered with :func:`register_secret` are scrubbed from any text, which
catches a secret that ended up somewhere unexpected (an error string, a command line).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"
_SECRET_KEY = re.compile(
    r"(token|password|passwd|secret|authorization|api[_-]?key|access[_-]?key|private[_-]?key|credential"
    r"|base64_content)",
    re.IGNORECASE,
)
_known: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value so :func:`scrub` removes it from any text (min 4 chars)."""
    if value and len(value) >= 4:
        _known.add(value)
        if value.lower().startswith("bearer ") and len(value[7:].strip()) >= 4:
            _known.add(value[7:].strip())


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def scrub(text: str) -> str:
    """Replace every registered secret value inside ``text``."""
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact(data: Any, *, secret_containers: tuple[str, ...] = ("secrets",)) -> Any:
    """A deep copy of ``data`` with secret-looking keys masked.

    Keys named in ``secret_containers`` (e.g. ``docker_run_parameters.secrets``) are containers of
    secrets: their keys stay visible (so users can see *which* secrets are sent) but every value is
    masked.
    """
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            skey = str(key)
            if skey in secret_containers and isinstance(value, Mapping):
                out[skey] = {k: REDACTED for k in value}
            elif is_secret_key(skey) and value not in (None, "", [], {}):
                out[skey] = REDACTED
            elif skey == "container_files" and isinstance(value, list):
                out[skey] = [
                    {**redact(item), "base64_content": REDACTED} if isinstance(item, Mapping) else REDACTED
                    for item in value
                ]
            else:
                out[skey] = redact(value, secret_containers=secret_containers)
        return out
    if isinstance(data, list):
        return [redact(item, secret_containers=secret_containers) for item in data]
    if isinstance(data, str):
        return scrub(data)
    return data
