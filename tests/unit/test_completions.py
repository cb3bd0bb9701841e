"""completions/: the committed scripts are machine-independent.

That they complete, and match what this checkout generates: tests/integration/test_completions.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.completions import BIN_DIR, COMPLETIONS, REPO_ROOT


def test_generated_scripts_are_machine_independent() -> None:
    for path in COMPLETIONS.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "_PERIANCTL_COMPLETE" in text, path
        for machine_specific in (str(REPO_ROOT), sys.prefix, str(BIN_DIR), str(Path.home())):
            assert machine_specific not in text, (path, machine_specific)
    assert (COMPLETIONS / "_perianctl").read_text(encoding="utf-8").startswith("#compdef perianctl\n")
