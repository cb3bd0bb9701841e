"""Helpers shared by tests/unit/test_config.py and tests/integration/test_config.py."""

from __future__ import annotations

from pathlib import Path

TOKEN = "tok-Zq81-very-secret-value"


def write_config(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
