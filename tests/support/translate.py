"""Helpers shared by tests/unit/test_flyte_translate.py and tests/integration/test_flyte_translate.py."""

from __future__ import annotations

from typing import Any

from perianctl.flyte.translate import (
    JobSecrets,
)

AWS = JobSecrets(aws_access_key_id="...", aws_secret_access_key="...")


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def _official(body: dict[str, Any]) -> dict[str, Any]:
    """Our body minus the one deliberate addition: FLYTE_FAIL_ON_ERROR for pyflyte-execute commands."""
    env = body.get("docker_run_parameters", {}).get("env_variables")
    if env is not None:
        assert env.pop("FLYTE_FAIL_ON_ERROR") == "true"
        if not env:
            del body["docker_run_parameters"]["env_variables"]
    return body
