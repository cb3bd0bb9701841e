"""Helpers shared by tests/unit/test_properties.py and tests/integration/test_properties.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "examples" / "templates"
JOB_ID = "3f2c1a4e-0b1d-4c5e-9f00-1234567890ab"


def _valid_job() -> dict[str, Any]:
    return {
        "id": JOB_ID,
        "status": "Running",
        "created_at": "2026-01-01T00:00:00Z",
        "started_at": "2026-01-01T00:00:05Z",
        "done_at": None,
        "logs": "line 1\nline 2\n",
        "errors": None,
        "price": {"unit_price": "0.5", "currency": "EUR", "granularity": "PER_HOUR"},
        "docker_metadata": {
            "docker_run_parameters": {
                "image_name": "ubuntu",
                "image_tag": "22.04",
                "command": "true",
                "env_variables": {"A": "1"},
            }
        },
        "requirement_metadata": {"requirements": {"accelerator": {"no": 1, "name": "A100"}, "cpu": {"cores": 2}}},
        "runtime_metadata": {"instance_type_id": "abcdef0123", "timeout_seconds": 60},
    }
