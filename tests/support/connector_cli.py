"""Helpers shared by tests/unit/test_connector_cli.py and tests/integration/test_connector_cli.py."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "examples" / "templates"
