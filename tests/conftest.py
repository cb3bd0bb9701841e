"""Shared fixtures: real subprocess CLI runs (tests/plugins/cli.py) and the sandbox (tests/plugins/sandbox.py)."""

import importlib.util

pytest_plugins = ["tests.plugins.cli"] + (
    ["tests.plugins.sandbox"] if importlib.util.find_spec("tests.plugins.sandbox") else []
)
