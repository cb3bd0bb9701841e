"""Issue 10: schemathesis against the sandbox's own OpenAPI document finds no 500 and no answer the
document does not describe.

Every operation of ``/_sandbox/openapi.json`` is called over real HTTP with schemathesis-generated
requests: schema-valid ones (positive) and schema-violating ones (negative: wrong types, missing
fields, odd strings, huge numbers). Each answer must not be a 5xx, must have a status code the
document declares, the declared content type, and (where declared) a body matching the schema.

Two schemathesis checks are left out on purpose, because PERIAN behaves that way (see
:mod:`perianctl.sandbox.wire`): ``positive_data_acceptance`` (a schema-valid ``POST /job`` without instance type or
requirements is a 400 with its exact ``detail``) and ``negative_data_rejection`` (requests are
lenient: unknown keys, numbers as strings and explicit nulls are accepted). The auth headers are
not in the document (the real one declares none), so they are sent with every request.

Bounded for CI: ``SANDBOX_FUZZ_EXAMPLES`` examples per operation and mode (default 10, a few
seconds); derandomized under CI through the hypothesis profile of ``tests/conftest.py``. Explore
locally with e.g. ``SANDBOX_FUZZ_EXAMPLES=500 pytest tests/integration/test_sandbox_schema_fuzz.py``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.plugins.sandbox import SandboxHandle, http_client

pytestmark = pytest.mark.timeout(240)

EXAMPLES = int(os.environ.get("SANDBOX_FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
QUIET_FAULTS = {"rate": 0, "latency": 0}


def _fuzz(
    operation: Any, mode: Any, sandbox: SandboxHandle, admin: Any, failures: list[str], calls: dict[str, int]
) -> None:
    """Call ``operation`` with up to :data:`EXAMPLES` generated requests of ``mode``; collect failures."""
    headers = sandbox.headers()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: Any) -> None:
        response = case.call(headers=headers, timeout=30)
        if operation.method.upper() == "PUT" and operation.path.startswith("/_sandbox/"):
            admin.put("/_sandbox/faults", json=QUIET_FAULTS)  # a fuzzed fault config must not leak on
            admin.delete("/_sandbox/impolite")
        calls[operation.label] = calls.get(operation.label, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (BaseExceptionGroup, AssertionError) as exc:
            failures.append(f"{mode.value} {operation.label}: {exc}\n{case.as_curl_command()}")

    with contextlib.suppress(Unsatisfiable):  # an operation without parameters or body has no negative requests
        call()


def test_no_operation_answers_500_or_outside_its_schema(sandbox: SandboxHandle) -> None:
    schema = schemathesis.openapi.from_url(f"{sandbox.url}/_sandbox/openapi.json")
    failures: list[str] = []
    calls: dict[str, int] = {}
    with http_client(sandbox.url) as admin:
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()  # the sandbox's own schema does not load: that is the failure
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz(result.ok(), mode, sandbox, admin, failures, calls)
    assert not failures, f"{len(failures)} failing requests; first ones:\n\n" + "\n\n".join(failures[:5])
    assert len(calls) >= 14 and all(n >= 1 for n in calls.values()), calls  # every operation was called
    assert "Traceback" not in sandbox.log_text()
