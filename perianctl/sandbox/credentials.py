"""The sandbox's organization and token: given by flags, or generated once and kept.

They live in ``<state-dir>/credentials.json`` (mode 0600, written atomically) so a restarted
sandbox accepts the same credentials and ``sandbox start`` can write a working profile. Flags
override what is stored and are stored in turn. The token is never logged or printed.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from perianctl.files import atomic_write
from perianctl.sandbox.config import DEFAULT_ORG

CREDENTIALS_FILE = "credentials.json"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically with mode 0600 from the first byte."""
    atomic_write(path, text)


def generate_token() -> str:
    return "psbx_" + secrets.token_urlsafe(24)


def load_credentials(state_dir: Path) -> tuple[str, str] | None:
    try:
        data = json.loads((state_dir / CREDENTIALS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    org, token = data.get("organization"), data.get("token")
    if isinstance(org, str) and org and isinstance(token, str) and token:
        return org, token
    return None


def resolve_credentials(state_dir: Path, organization: str | None, token: str | None) -> tuple[str, str]:
    """Flags win, then the stored pair, then generated values; the result is stored."""
    stored = load_credentials(state_dir)
    org = organization or (stored[0] if stored else DEFAULT_ORG)
    tok = token or (stored[1] if stored else generate_token())
    if stored != (org, tok):
        write_private(state_dir / CREDENTIALS_FILE, json.dumps({"organization": org, "token": tok}, indent=2) + "\n")
    return org, tok
