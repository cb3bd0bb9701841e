"""No instance type matches a create's requirements: its own error and message, exit 2, and a gRPC code
that is not NOT_FOUND (it used to be exit 7 "unknown job id" and NOT_FOUND)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from perianctl.errors import NoInstanceTypeMatchError, NoOfferError
from perianctl.perian.client import PerianClient
from perianctl.perian.models import CreateJobRequest, DockerRunParameters, InstanceTypeQueryInput
from tests.plugins.cli import CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxHandle
from tests.support import connector as support
from tests.support.connector import Api, create_request, inprocess_server

api = support.api  # fixture

HELLO = str(Path(__file__).resolve().parents[2] / "examples" / "templates" / "hello.pb")


def test_submit_whose_requirements_match_nothing_is_exit_2_naming_them(
    run_cli: CliRunner, sandbox: SandboxHandle
) -> None:
    result = run_cli(
        "submit",
        HELLO,
        "-i",
        "name=x",
        "--accelerator-type",
        "A100",
        "--accelerators",
        "64",
        env=sandbox.env(),
        timeout=60,
    )
    assert_one_line_error(result, 2)
    assert "no instance type matches" in result.stderr and "A100" in result.stderr and "no=64" in result.stderr
    assert "no job was created" in result.stderr and "unknown job" not in result.stderr
    assert sandbox.stats()["jobs_created"] == 0


async def test_the_client_raises_one_class_for_the_rule(sandbox: SandboxHandle) -> None:
    request = CreateJobRequest(
        requirements=InstanceTypeQueryInput.model_validate({"accelerator": {"name": "A100", "no": 64}}),
        docker_run_parameters=DockerRunParameters(image_name="ubuntu", command="true"),
    )
    async with PerianClient(sandbox.url, sandbox.org, sandbox.token) as client:
        with pytest.raises(NoOfferError) as caught:  # the local pre-check's class catches it too
            await client.create_job(request, idempotency_key="no-match-1")
    assert isinstance(caught.value, NoInstanceTypeMatchError) and caught.value.status == 400
    assert "accelerator.name=A100" in caught.value.message and "accelerator.no=64" in caught.value.message


async def test_connector_answers_failed_precondition_not_not_found(api: Api) -> None:
    request = create_request("success")
    request.template.custom.update({"accelerator_type": "A100", "accelerators": 64})
    async with inprocess_server(api) as server:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await server.tasks.CreateTask(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = caught.value.details() or ""
    assert "no instance type matches" in details and "A100" in details and "Traceback" not in details
