"""Helpers shared by tests/unit/test_client.py and tests/integration/test_client.py."""

from __future__ import annotations

from perianctl.perian.client import RetryPolicy

FAST = RetryPolicy(attempts=6, timeout=20, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01)
