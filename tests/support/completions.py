"""Helpers shared by tests/unit/test_completions.py and tests/integration/test_completions.py."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPLETIONS = REPO_ROOT / "completions"
BIN_DIR = Path(sys.executable).parent
