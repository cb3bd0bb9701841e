"""Helpers shared by tests/unit/test_examples.py and tests/integration/test_examples.py."""

from __future__ import annotations

from pathlib import Path

from flyteidl.core import tasks_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "examples" / "templates"

GREETING = "Hello, PERIAN! Greetings from a PERIAN job."


def load_template(name: str) -> tasks_pb2.TaskTemplate:
    template = tasks_pb2.TaskTemplate()
    template.ParseFromString((TEMPLATES / f"{name}.pb").read_bytes())
    return template
