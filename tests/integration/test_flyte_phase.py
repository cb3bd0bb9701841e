"""PERIAN status → Flyte phase / exit code (README.md "Status → Flyte phase", "Exit codes")."""

from __future__ import annotations

import subprocess
import sys


def test_importing_phase_does_not_import_protobuf() -> None:
    code = (
        "import sys, perianctl.flyte.phase\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('google.protobuf', 'flyteidl', 'flytekit', 'grpc')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
