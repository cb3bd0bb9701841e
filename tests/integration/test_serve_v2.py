"""Flyte 2 (flyteidl2) and Flyte 1 (flyteidl) connector protocols on ONE ``perianctl serve``.

Real gRPC on loopback with the official stubs of both packages, against the sandbox: the two
protocols reach the same connector (same idempotency key → same PERIAN job, same metrics).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2 as v1_literals
from flyteidl.core import tasks_pb2 as v1_tasks
from flyteidl.service import agent_pb2_grpc
from flyteidl2.connector import connector_pb2 as c2
from flyteidl2.connector import service_pb2_grpc as s2
from flyteidl2.core import execution_pb2 as e2
from flyteidl2.core import identifier_pb2 as i2
from flyteidl2.core import literals_pb2 as l2
from flyteidl2.core import security_pb2
from flyteidl2.core import tasks_pb2 as t2
from flyteidl2.task import common_pb2
from grpc_health.v1 import health_pb2

from tests.support import connector as support
from tests.support.connector import Api, inprocess_server, output_prefix, perian_template

api = support.api  # fixture

pytestmark = pytest.mark.timeout(60)

CATEGORY = c2.TaskCategory(name="perian_task", version=0)


def v2_template(scenario: str = "success", *, duration: float | None = None, prefix: str) -> t2.TaskTemplate:
    """What a Flyte 2 backend sends: the same rendered perian_task template, in flyteidl2 types."""
    return t2.TaskTemplate.FromString(perian_template(scenario, duration=duration, prefix=prefix).SerializeToString())


def v2_inputs(name: str = "perian") -> common_pb2.Inputs:
    value = l2.Literal(scalar=l2.Scalar(primitive=l2.Primitive(string_value=name)))
    return common_pb2.Inputs(literals=[common_pb2.NamedLiteral(name="name", value=value)])


def v2_metadata(execution: str, *, node: str = "n0", attempt: int = 0) -> c2.TaskExecutionMetadata:
    return c2.TaskExecutionMetadata(
        task_execution_id=i2.TaskExecutionIdentifier(
            task_id=i2.Identifier(
                resource_type=i2.TASK, project="flytesnacks", domain="development", name="hello_gpu", version="v1"
            ),
            node_execution_id=i2.NodeExecutionIdentifier(
                node_id=node,
                execution_id=i2.WorkflowExecutionIdentifier(
                    project="flytesnacks", domain="development", name=execution
                ),
            ),
            retry_attempt=attempt,
        ),
        namespace="flytesnacks-development",
    )


def create_v2(
    scenario: str = "success",
    *,
    execution: str | None = None,
    attempt: int = 0,
    duration: float | None = None,
    secrets: dict[str, str] | None = None,
) -> c2.CreateTaskRequest:
    execution = execution or "a" + uuid.uuid4().hex[:19]
    prefix = output_prefix(execution, "n0", attempt)
    return c2.CreateTaskRequest(
        template=v2_template(scenario, duration=duration, prefix=prefix),
        inputs=v2_inputs(),
        output_prefix=prefix,
        task_execution_metadata=v2_metadata(execution, attempt=attempt),
        connection=security_pb2.Connection(task_type="perian_task", secrets=secrets or {}),
    )


def get_v2(meta: bytes, secrets: dict[str, str] | None = None) -> c2.GetTaskRequest:
    return c2.GetTaskRequest(
        resource_meta=meta, task_category=CATEGORY, connection=security_pb2.Connection(secrets=secrets or {})
    )


class V2:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.tasks = s2.AsyncConnectorServiceStub(channel)
        self.meta = s2.ConnectorMetadataServiceStub(channel)


async def wait_v2(
    stub: s2.AsyncConnectorServiceStub,
    meta: bytes,
    phases: set[str],
    *,
    secrets: dict[str, str] | None = None,
    timeout: float = 20.0,
) -> c2.Resource:
    deadline = time.monotonic() + timeout
    while True:
        resource = (await stub.GetTask(get_v2(meta, secrets), timeout=10)).resource
        if e2.TaskExecution.Phase.Name(resource.phase) in phases:
            return resource
        if time.monotonic() > deadline:
            raise AssertionError(f"phase {e2.TaskExecution.Phase.Name(resource.phase)} never became {phases}")
        await asyncio.sleep(0.05)


async def read_pages(
    stub: s2.AsyncConnectorServiceStub, meta: bytes, token: str = "", lines: int = 0
) -> tuple[list[c2.GetTaskLogsResponse], str, list[Any]]:
    """One GetTaskLogs call: (messages, header token, LogLines)."""
    request = c2.GetTaskLogsRequest(resource_meta=meta, task_category=CATEGORY, token=token, lines=lines)
    messages = [m async for m in stub.GetTaskLogs(request, timeout=10)]
    assert messages and messages[0].HasField("header"), "a page starts with its header"
    body = [line for m in messages[1:] for line in m.body.lines]
    assert all(not m.body.results for m in messages[1:]), "the deprecated plain strings are not sent"
    return messages, messages[0].header.token, body


# ---------------------------------------------------------------------- both protocols, one server


async def test_one_server_serves_both_protocols_and_health_covers_both(api: Api) -> None:
    async with inprocess_server(api) as server:
        v2 = V2(server.channel)
        agents = (await server.meta.ListAgents(agent_pb2.ListAgentsRequest(), timeout=5)).agents
        assert [(c.name, c.version) for a in agents for c in a.supported_task_categories] == [("perian_task", 0)]
        connectors = (await v2.meta.ListConnectors(c2.ListConnectorsRequest(), timeout=5)).connectors
        assert [(c.name, c.version) for x in connectors for c in x.supported_task_categories] == [("perian_task", 0)]
        assert connectors[0].name == agents[0].name
        got = (await v2.meta.GetConnector(c2.GetConnectorRequest(name=agents[0].name), timeout=5)).connector
        assert got == connectors[0]
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await v2.meta.GetConnector(c2.GetConnectorRequest(name="nope"), timeout=5)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        for service in (
            "flyteidl.service.AsyncAgentService",
            "flyteidl.service.AgentMetadataService",
            "flyteidl2.connector.AsyncConnectorService",
            "flyteidl2.connector.ConnectorMetadataService",
            "",
        ):
            status = (await server.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)).status
            assert status == health_pb2.HealthCheckResponse.SERVING, service


def _created() -> float:
    """flytekit's ``flyte_connector_requests_success_total`` for perian_task creates (one registry)."""
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "flyte_connector_requests_success_total", {"task_type": "perian_task", "operation": "create"}
    )
    return value or 0.0


async def test_v2_create_get_metrics_delete_and_the_same_job_over_v1(api: Api) -> None:
    async with inprocess_server(api) as server:
        v2 = V2(server.channel)
        before = _created()
        response = await v2.tasks.CreateTask(create_v2("success"), timeout=10)
        assert _created() == before + 1  # the Flyte 1 servicers' metrics count Flyte 2 calls too
        meta = json.loads(response.resource_meta)
        assert list(meta) == ["job_id"]  # the same resource_meta as Flyte 1: either protocol reads it
        first = (await v2.tasks.GetTask(get_v2(response.resource_meta), timeout=10)).resource
        assert first.phase != e2.TaskExecution.UNDEFINED
        assert [link.name for link in first.log_links] == [f"PERIAN job {meta['job_id']}"]

        done = await wait_v2(v2.tasks, response.resource_meta, {"SUCCEEDED"})
        custom = dict(done.custom_info)
        assert custom["job_id"] == meta["job_id"] and custom["status"] == "Done" and custom["terminal"] is True
        over_v1 = (await server.tasks.GetTask(support.get_request(response.resource_meta), timeout=10)).resource
        assert over_v1.phase == done.phase and dict(over_v1.custom_info)["job_id"] == meta["job_id"]

        job = next(j for j in api.jobs() if j["id"] == meta["job_id"])
        env = job["docker_metadata"]["docker_run_parameters"]["env_variables"]
        assert env["PERIANCTL_IDEMPOTENCY_KEY"].startswith("pk1-")  # the key came from the v2 metadata
        assert job["requirement_metadata"]["requirements"]["accelerator"]["name"] == "A100"

        metrics = await v2.tasks.GetTaskMetrics(
            c2.GetTaskMetricsRequest(
                resource_meta=response.resource_meta,
                task_category=CATEGORY,
                queries=["PERIAN_JOB_RUNTIME_SECONDS", "NOT_A_METRIC"],
            ),
            timeout=10,
        )
        assert [r.metric for r in metrics.results] == ["PERIAN_JOB_RUNTIME_SECONDS", "NOT_A_METRIC"]
        series = metrics.results[0].data["result"]
        assert series[0]["metric"]["job_id"] == meta["job_id"] and float(series[0]["values"][0][1]) > 0
        assert list(metrics.results[1].data["result"]) == []

        # DeleteTask of a finished job is fine; of a running one it cancels (ABORTED).
        await v2.tasks.DeleteTask(
            c2.DeleteTaskRequest(resource_meta=response.resource_meta, task_category=CATEGORY), timeout=10
        )
        running = (await v2.tasks.CreateTask(create_v2("success", duration=30), timeout=10)).resource_meta
        await wait_v2(v2.tasks, running, {"RUNNING"})
        await v2.tasks.DeleteTask(c2.DeleteTaskRequest(resource_meta=running, task_category=CATEGORY), timeout=10)
        await wait_v2(v2.tasks, running, {"ABORTED"})


async def test_same_attempt_resent_over_either_protocol_makes_one_job(api: Api) -> None:
    async with inprocess_server(api) as server:
        v2 = V2(server.channel)
        execution = "a" + uuid.uuid4().hex[:19]
        request = create_v2("success", execution=execution, duration=5)
        first, again = await asyncio.gather(
            v2.tasks.CreateTask(request, timeout=10), v2.tasks.CreateTask(request, timeout=10)
        )
        later = await v2.tasks.CreateTask(request, timeout=10)
        assert first.resource_meta == again.resource_meta == later.resource_meta
        # The v1 form of the same attempt (same execution, node, attempt) is the same job, too:
        # one idempotency mechanism behind both protocols.
        v1_request = agent_pb2.CreateTaskRequest(
            template=v1_tasks.TaskTemplate.FromString(request.template.SerializeToString()),
            inputs=v1_literals.LiteralMap.FromString(request.inputs.SerializeToString()),
            output_prefix=request.output_prefix,
            task_execution_metadata=agent_pb2.TaskExecutionMetadata.FromString(
                request.task_execution_metadata.SerializeToString()
            ),
        )
        assert (await server.tasks.CreateTask(v1_request, timeout=10)).resource_meta == first.resource_meta
        job_id = json.loads(first.resource_meta)["job_id"]
        assert [j["id"] for j in api.jobs()] == [job_id]
        # A new attempt is a new job.
        retry = await v2.tasks.CreateTask(create_v2("success", execution=execution, attempt=1), timeout=10)
        assert retry.resource_meta != first.resource_meta


@pytest.mark.parametrize(("scenario", "phase"), [("server-error", "RETRYABLE_FAILED"), ("fail", "FAILED")])
async def test_v2_failure_phases(api: Api, scenario: str, phase: str) -> None:
    async with inprocess_server(api) as server:
        v2 = V2(server.channel)
        meta = (await v2.tasks.CreateTask(create_v2(scenario), timeout=10)).resource_meta
        resource = await wait_v2(v2.tasks, meta, {phase})
        assert "\n" not in resource.message and len(resource.message) <= 200
        assert dict(resource.custom_info)["terminal"] is True


async def test_v2_logs_page_with_tokens_and_resume_with_only_new_lines(api: Api, monkeypatch) -> None:
    from perianctl.connector import v2 as v2mod

    monkeypatch.setattr(v2mod, "LOG_PAGE_LINES", 3)
    monkeypatch.setattr(v2mod, "LOG_CHUNK_LINES", 2)
    async with inprocess_server(api) as server:
        v2 = V2(server.channel)
        meta = (await v2.tasks.CreateTask(create_v2("success", duration=2.0), timeout=10)).resource_meta
        job_id = json.loads(meta)["job_id"]
        await wait_v2(v2.tasks, meta, {"RUNNING"})
        # While it runs: read what is there (page by page, until a page is empty).
        seen: list[str] = []
        token = ""
        while True:
            messages, token, body = await read_pages(v2.tasks, meta, token)
            assert len(body) <= 3 and all(len(m.body.lines) <= 2 for m in messages[1:])
            assert token, "every page names where to resume"
            seen += [line.message for line in body]
            if not body:
                break
        await wait_v2(v2.tasks, meta, {"SUCCEEDED"})
        # Resuming with the last token returns only the lines written since, in pages.
        new: list[str] = []
        while True:
            _, token, body = await read_pages(v2.tasks, meta, token)
            for line in body:
                assert line.timestamp.seconds > 0 and line.originator == 1  # USER
            new += [line.message for line in body]
            if not body:
                break
        job = next(j for j in api.jobs() if j["id"] == job_id)
        assert seen + new == job["logs"].splitlines()
        assert new and seen, "some lines came before the job ended and some after"
        # The final token is stable: nothing new, nothing again.
        assert (await read_pages(v2.tasks, meta, token))[2] == []
        # A tail: the last 2 lines.
        _, _, tail = await read_pages(v2.tasks, meta, lines=2)
        assert [line.message for line in tail] == job["logs"].splitlines()[-2:]
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await read_pages(v2.tasks, meta, token="x")
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_connection_secrets_win_over_server_secrets(api: Api) -> None:
    """The server's own token is wrong; a request's Connection carries the right one."""
    async with inprocess_server(Api(api.url, api.organization, "wrong-server-token")) as server:
        v2 = V2(server.channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await v2.tasks.CreateTask(create_v2("success"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "wrong-server-token" not in (refused.value.details() or "")
        good = {"perian_organization": api.organization, "perian_token": api.token}
        meta = (await v2.tasks.CreateTask(create_v2("success", secrets=good), timeout=10)).resource_meta
        done = await wait_v2(v2.tasks, meta, {"SUCCEEDED"}, secrets=good)
        assert dict(done.custom_info)["status"] == "Done"
        # Without the Connection the server's (wrong) credentials are used: PERIAN refuses them,
        # so GetTask keeps the last phase it knows and says why.
        kept = (await v2.tasks.GetTask(get_v2(meta), timeout=10)).resource
        assert kept.phase == e2.TaskExecution.SUCCEEDED and "refused the credentials" in kept.message
        await v2.tasks.DeleteTask(
            c2.DeleteTaskRequest(
                resource_meta=meta, task_category=CATEGORY, connection=security_pb2.Connection(secrets=good)
            ),
            timeout=10,
        )


async def test_v2_errors_are_status_codes(api: Api) -> None:
    async with inprocess_server(api) as server:
        v2 = V2(server.channel)
        other = create_v2("success")
        other.template.type = "bigquery_query_job_task"
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await v2.tasks.CreateTask(other, timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await v2.tasks.GetTask(get_v2(b"not json"), timeout=10)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert api.jobs() == []


async def test_protocols_can_be_served_alone(api: Api) -> None:
    from perianctl.connector.server import start
    from perianctl.connector.settings import ConnectorSettings, ServeOptions

    settings = ConnectorSettings(api_url=api.url, organization=api.organization, token=api.token)
    for only in ("v1", "v2"):
        running = await start(
            ServeOptions(host="127.0.0.1", port=0, metrics_port=0, connector=settings, protocols=(only,))
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                v1_call = agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(
                    agent_pb2.ListAgentsRequest(), timeout=5
                )
                v2_call = s2.ConnectorMetadataServiceStub(channel).ListConnectors(c2.ListConnectorsRequest(), timeout=5)
                served, refused = (v1_call, v2_call) if only == "v1" else (v2_call, v1_call)
                await served
                with pytest.raises(grpc.aio.AioRpcError) as off:
                    await refused
                assert off.value.code() == grpc.StatusCode.UNIMPLEMENTED
        finally:
            await running.shutdown(grace=1)


def test_bad_protocol_flag_is_a_usage_error(run_cli) -> None:
    result = run_cli("serve", "--protocol", "v3", "--port", "0", "--metrics-port", "0")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: invalid --protocol 'v3'") and "Traceback" not in result.stderr
