"""Every connector RPC over real gRPC (in-process grpc.aio server on loopback) against the sandbox."""

from __future__ import annotations

import asyncio
import json
import re
import time

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core.execution_pb2 import TaskExecution
from grpc_health.v1 import health_pb2

from tests.support import connector as support
from tests.support.connector import (
    Api,
    category,
    create_request,
    get_request,
    inprocess_server,
    wait_phase,
)

api = support.api  # fixture
server = support.server  # fixture

pytestmark = pytest.mark.timeout(120)
SLOW_CREATE = 60.0  # PERIAN holds the create this long at most; the test releases it (latency off) itself
HANG = 60.0  # polling budgets only detect a hang: a busy 2-core box is many times slower than a laptop


async def test_create_get_succeeds_with_official_resource_meta(server, api: Api) -> None:
    response = await server.tasks.CreateTask(create_request("success"), timeout=10)
    meta = json.loads(response.resource_meta)
    assert list(meta) == ["job_id"]  # byte-identical shape to the official connector's PerianMetadata
    assert response.resource_meta == json.dumps({"job_id": meta["job_id"]}).encode()

    first = (await server.tasks.GetTask(get_request(response.resource_meta), timeout=10)).resource
    assert first.phase != TaskExecution.UNDEFINED
    assert [link.name for link in first.log_links] == [f"PERIAN job {meta['job_id']}"]
    assert first.log_links[0].uri == f"{api.url}/job/{meta['job_id']}"

    done = await wait_phase(server.tasks, response.resource_meta, {"SUCCEEDED"})
    assert done.message == "Done"
    custom = dict(done.custom_info)
    assert custom["job_id"] == meta["job_id"] and custom["status"] == "Done"

    job = next(j for j in api.jobs() if j["id"] == meta["job_id"])
    env = job["docker_metadata"]["docker_run_parameters"]["env_variables"]
    assert env["PERIANCTL_IDEMPOTENCY_KEY"].startswith("pk1-a-")
    assert env["FLYTE_INTERNAL_EXECUTION_PROJECT"] == "flytesnacks"
    assert job["requirement_metadata"]["requirements"]["accelerator"]["name"] == "A100"


@pytest.mark.parametrize(
    ("scenario", "phase", "fragment"),
    [
        ("fail", "FAILED", "UserError: Container exited with code 1"),
        ("server-error", "RETRYABLE_FAILED", "ServerError"),
        ("timeout", "FAILED", "Timeout"),
    ],
)
async def test_failure_phases_have_short_messages(server, scenario: str, phase: str, fragment: str) -> None:
    meta = (await server.tasks.CreateTask(create_request(scenario), timeout=10)).resource_meta
    resource = await wait_phase(server.tasks, meta, {phase})
    assert fragment in resource.message
    assert "\n" not in resource.message and len(resource.message) <= 200


@pytest.mark.parametrize(("kind", "phase"), [("RECOVERABLE", "RETRYABLE_FAILED"), ("NON_RECOVERABLE", "FAILED")])
async def test_failed_task_reports_error_pb(server, tmp_path, kind: str, phase: str) -> None:
    """pyflyte-execute's error.pb gives the real error and whether Flyte may retry (propeller itself reads
    it only after SUCCEEDED: flyteplugins go/tasks/plugins/webapi/connector/plugin.go, v1.16.x)."""
    from flyteidl.core import errors_pb2

    prefix = str(tmp_path / "n0" / "data" / "0")
    meta = (await server.tasks.CreateTask(create_request("fail", prefix=prefix), timeout=10)).resource_meta
    (tmp_path / "n0" / "data" / "0").mkdir(parents=True)
    document = errors_pb2.ErrorDocument(
        error=errors_pb2.ContainerError(
            code="USER",
            kind=getattr(errors_pb2.ContainerError, kind),
            message='Traceback (most recent call last):\n  File "t.py", line 3\nValueError: boom\n',
        )
    )
    (tmp_path / "n0" / "data" / "0" / "error.pb").write_bytes(document.SerializeToString())
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        resource = (await server.tasks.GetTask(get_request(meta, prefix), timeout=10)).resource
        if TaskExecution.Phase.Name(resource.phase) in ("FAILED", "RETRYABLE_FAILED"):
            break
        await asyncio.sleep(0.05)
    assert TaskExecution.Phase.Name(resource.phase) == phase
    assert resource.message == "UserError: ValueError: boom"
    # without the prefix (an old propeller) the PERIAN errors line is used, as before
    plain = (await server.tasks.GetTask(get_request(meta), timeout=10)).resource
    assert plain.phase == TaskExecution.FAILED and plain.message.startswith("UserError: Container exited")


async def test_undefined_status_never_reaches_propeller_as_undefined(server) -> None:
    meta = (await server.tasks.CreateTask(create_request("undefined"), timeout=10)).resource_meta
    phases, messages = [], []
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        resource = (await server.tasks.GetTask(get_request(meta), timeout=10)).resource
        phases.append(resource.phase)
        messages.append(resource.message)
        if resource.phase == TaskExecution.SUCCEEDED:
            break
        await asyncio.sleep(0.02)
    assert phases[-1] == TaskExecution.SUCCEEDED
    assert TaskExecution.UNDEFINED not in phases
    assert any("'Undefined' is undefined; keeping phase" in m for m in messages), messages


async def test_same_metadata_twice_is_one_job(server, api: Api) -> None:
    request = create_request("success", duration=30)
    first = await server.tasks.CreateTask(request, timeout=10)
    second = await server.tasks.CreateTask(request, timeout=10)
    assert first.resource_meta == second.resource_meta
    assert api.stats()["jobs_created"] == 1


@pytest.mark.parametrize("kind", ["reset", "503"])
async def test_lost_reply_is_not_duplicated(server, api: Api, kind: str) -> None:
    """PERIAN creates the job but the reply is lost (fault phase 'after'): found, not re-created."""
    api.set_faults(rate=1.0, kinds=[kind], endpoints=["create"], phase="after")
    request = create_request("success", duration=30)
    try:
        first = await server.tasks.CreateTask(request, timeout=10)
        # propeller re-sends after a restart: the job is found again, nothing new is posted
        second = await server.tasks.CreateTask(request, timeout=10)
    finally:
        api.set_faults(rate=0.0)
    assert first.resource_meta == second.resource_meta
    stats = api.stats()
    assert stats["jobs_created"] == 1, stats
    assert stats["create_calls"] == 1, stats
    assert [j["id"] for j in api.jobs()] == [json.loads(first.resource_meta)["job_id"]]


async def test_propeller_deadline_then_resend_is_one_job(server, api: Api) -> None:
    """PERIAN takes 2 s. A call whose deadline leaves no time for PERIAN (0.5 s, below the 1 s
    margin) is answered UNAVAILABLE before its deadline without posting; propeller re-sends at
    once (posts, answered in 2 s), then again later (found by its attempt key)."""
    api.set_faults(latency=[2.0, 2.0], latency_endpoints=["create"])
    request = create_request("success", duration=30)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            await server.tasks.CreateTask(request, timeout=0.5)
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
        assert api.stats()["create_calls"] == 0
        joined = await server.tasks.CreateTask(request, timeout=10)
        later = await server.tasks.CreateTask(request, timeout=10)  # found by its idempotency key
    finally:
        api.set_faults(latency=[0.0, 0.0])
    assert joined.resource_meta == later.resource_meta
    stats = api.stats()
    assert stats["jobs_created"] == 1 and stats["create_calls"] == 1


async def test_next_attempt_reaps_the_orphan(server, api: Api) -> None:
    """A lost reply on attempt 0 → propeller's attempt 1 creates a job and cancels the orphan."""
    execution = "reap" + "0" * 16
    orphan = json.loads(
        (
            await server.tasks.CreateTask(
                create_request("success", execution=execution, attempt=0, duration=30), timeout=10
            )
        ).resource_meta
    )["job_id"]
    retry = json.loads(
        (
            await server.tasks.CreateTask(
                create_request("success", execution=execution, attempt=1, duration=30), timeout=10
            )
        ).resource_meta
    )["job_id"]
    assert orphan != retry
    await server.running.connector.sweep_once()
    statuses = {j["id"]: j["status"] for j in api.jobs()}
    assert statuses[orphan] == "Cancelled"
    assert statuses[retry] != "Cancelled"
    # a sibling node of the same execution is never touched
    other = json.loads(
        (
            await server.tasks.CreateTask(
                create_request("success", execution=execution, node="n1", attempt=2, duration=30), timeout=10
            )
        ).resource_meta
    )["job_id"]
    await server.running.connector.sweep_once()
    statuses = {j["id"]: j["status"] for j in api.jobs()}
    assert statuses[retry] != "Cancelled" and statuses[other] != "Cancelled"


async def test_create_without_metadata_keys_on_output_prefix(server, api: Api) -> None:
    request = create_request("success", metadata=False, duration=30)
    request.ClearField("task_execution_metadata")
    first = await server.tasks.CreateTask(request, timeout=10)
    second = await server.tasks.CreateTask(request, timeout=10)
    assert first.resource_meta == second.resource_meta
    assert api.stats()["jobs_created"] == 1


async def test_delete_is_idempotent(server, api: Api) -> None:
    meta = (await server.tasks.CreateTask(create_request("success", duration=30), timeout=10)).resource_meta
    delete = agent_pb2.DeleteTaskRequest(task_type="perian_task", resource_meta=meta, task_category=category())
    await server.tasks.DeleteTask(delete, timeout=10)
    await server.tasks.DeleteTask(delete, timeout=10)  # already cancelled: still OK
    resource = await wait_phase(server.tasks, meta, {"ABORTED"})
    assert "Cancelled" in resource.message
    unknown = agent_pb2.DeleteTaskRequest(
        resource_meta=b'{"job_id": "00000000-0000-4000-8000-000000000000"}', task_category=category()
    )
    await server.tasks.DeleteTask(unknown, timeout=10)  # unknown job: OK too


async def test_get_unknown_job_is_failed_not_an_error(server) -> None:
    meta = b'{"job_id": "00000000-0000-4000-8000-000000000000", "extra": 1}'  # extra keys tolerated
    resource = (await server.tasks.GetTask(get_request(meta), timeout=10)).resource
    assert resource.phase == TaskExecution.FAILED
    assert "not found" in resource.message


async def test_bad_resource_meta_is_invalid_argument(server) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await server.tasks.GetTask(get_request(b"not json"), timeout=10)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "\n" not in excinfo.value.details()


async def test_unknown_task_type_is_not_found(server) -> None:
    request = agent_pb2.GetTaskRequest(
        resource_meta=b'{"job_id": "x"}', task_category=agent_pb2.TaskCategory(name="nope", version=0)
    )
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await server.tasks.GetTask(request, timeout=10)
    assert excinfo.value.code() == grpc.StatusCode.NOT_FOUND


async def test_bad_template_is_invalid_argument(server) -> None:
    request = create_request("success")
    request.template.container.image = ""
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await server.tasks.CreateTask(request, timeout=10)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image" in excinfo.value.details()


async def test_api_outage_keeps_last_phase(server, api: Api) -> None:
    meta = (await server.tasks.CreateTask(create_request("success", duration=30), timeout=10)).resource_meta
    running = await wait_phase(server.tasks, meta, {"RUNNING"})
    assert running.phase == TaskExecution.RUNNING
    api.set_faults(rate=1.0, kinds=["503"], endpoints=["get"], phase="before")
    try:
        resource = (await server.tasks.GetTask(get_request(meta), timeout=10)).resource
    finally:
        api.set_faults(rate=0.0)
    assert resource.phase == TaskExecution.RUNNING
    assert re.fullmatch(
        r"PERIAN API unavailable since \d\d:\d\d:\d\dZ, retrying \(last known phase\)", resource.message
    ), resource.message


async def test_logs_stream_header_then_lines(server) -> None:
    meta = (await server.tasks.CreateTask(create_request("fail"), timeout=10)).resource_meta
    await wait_phase(server.tasks, meta, {"FAILED"})
    request = agent_pb2.GetTaskLogsRequest(resource_meta=meta, task_category=category())
    parts = [part async for part in server.tasks.GetTaskLogs(request, timeout=10)]
    assert parts[0].HasField("header") and parts[0].header.token == ""
    lines = [line.message for part in parts[1:] for line in part.body.structured_lines]
    assert lines and any("RuntimeError" in line for line in lines)
    assert [r for part in parts[1:] for r in part.body.results] == lines
    last = [
        part
        async for part in server.tasks.GetTaskLogs(
            agent_pb2.GetTaskLogsRequest(resource_meta=meta, lines=1, task_category=category()), timeout=10
        )
    ]
    assert [line.message for part in last[1:] for line in part.body.structured_lines] == lines[-1:]


async def test_metrics_rpc(server) -> None:
    meta = (await server.tasks.CreateTask(create_request("success"), timeout=10)).resource_meta
    await wait_phase(server.tasks, meta, {"SUCCEEDED"})
    response = await server.tasks.GetTaskMetrics(
        agent_pb2.GetTaskMetricsRequest(
            resource_meta=meta,
            task_category=category(),
            queries=["PERIAN_JOB_RUNTIME_SECONDS", "EXECUTION_METRIC_USED_CPU_AVG"],
        ),
        timeout=10,
    )
    results = {r.metric: r for r in response.results}
    runtime = results["PERIAN_JOB_RUNTIME_SECONDS"].data["result"][0]["values"][0][1]
    assert float(runtime) > 0
    assert list(results["EXECUTION_METRIC_USED_CPU_AVG"].data["result"]) == []


async def test_metadata_and_sync_services(server) -> None:
    agents = (await server.meta.ListAgents(agent_pb2.ListAgentsRequest(), timeout=10)).agents
    assert len(agents) == 1
    agent = agents[0]
    assert list(agent.supported_task_types) == ["perian_task"]
    assert [(c.name, c.version) for c in agent.supported_task_categories] == [("perian_task", 0)]
    assert not agent.is_sync
    got = (await server.meta.GetAgent(agent_pb2.GetAgentRequest(name=agent.name), timeout=10)).agent
    assert got == agent
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await server.meta.GetAgent(agent_pb2.GetAgentRequest(name="nope"), timeout=10)
    assert excinfo.value.code() == grpc.StatusCode.NOT_FOUND

    request = create_request("success")

    async def requests():
        yield agent_pb2.ExecuteTaskSyncRequest(
            header=agent_pb2.CreateRequestHeader(template=request.template, output_prefix=request.output_prefix)
        )
        yield agent_pb2.ExecuteTaskSyncRequest(inputs=request.inputs)

    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        async for _ in server.sync.ExecuteTaskSync(requests(), timeout=10):
            pass
    assert excinfo.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_health_serving_then_not_serving_on_shutdown(api: Api) -> None:
    async with inprocess_server(api) as stubs:
        for service in (
            "",
            "flyteidl.service.AsyncAgentService",
            "flyteidl.service.SyncAgentService",
            "flyteidl.service.AgentMetadataService",
            "grpc.health.v1.Health",
        ):
            status = (await stubs.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)).status
            assert status == health_pb2.HealthCheckResponse.SERVING, service
        await stubs.running.health.enter_graceful_shutdown()
        status = (await stubs.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_get_task_not_delayed_by_slow_create(api: Api) -> None:
    """A slow PERIAN create must not stall a concurrent GetTask (the official connector's bug).

    Order, not speed: the GetTask is answered while the create is still waiting on PERIAN.
    """
    async with inprocess_server(api) as stubs:
        meta = (await stubs.tasks.CreateTask(create_request("success", duration=30), timeout=10)).resource_meta
        api.set_faults(latency=[SLOW_CREATE, SLOW_CREATE], latency_endpoints=["create"])
        try:
            slow = asyncio.ensure_future(stubs.tasks.CreateTask(create_request("success"), timeout=60))
            await api.wait_delaying("create")  # the create is now waiting on PERIAN
            assert not slow.done()
            resource = (await stubs.tasks.GetTask(get_request(meta), timeout=10)).resource
            assert resource.phase in (TaskExecution.QUEUED, TaskExecution.INITIALIZING, TaskExecution.RUNNING)
            assert not slow.done(), "GetTask was answered only after the slow create"
            api.set_faults(latency=[0.0, 0.0])  # releases the held create
            assert (await slow).resource_meta
        finally:
            api.set_faults(latency=[0.0, 0.0])


@pytest.mark.parametrize("kind", ["reset", "503"])
async def test_httpx_backend_is_idempotent_too(api: Api, kind: str) -> None:
    """The fallback transport (no aiohttp) classifies lost replies the same way."""
    async with inprocess_server(api, http_backend="httpx") as stubs:
        api.set_faults(rate=1.0, kinds=[kind], endpoints=["create"], phase="after")
        try:
            meta = (await stubs.tasks.CreateTask(create_request("success", duration=30), timeout=10)).resource_meta
        finally:
            api.set_faults(rate=0.0)
        resource = (await stubs.tasks.GetTask(get_request(meta), timeout=10)).resource
        assert resource.phase != TaskExecution.UNDEFINED
    assert api.stats()["jobs_created"] == 1


async def test_rotated_secret_is_picked_up_without_restart(api: Api, tmp_path, monkeypatch) -> None:
    """A wrong token keeps tasks alive ("retrying"), and fixing the mounted file heals it live."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "perian_organization").write_text(api.organization)
    (secrets / "perian_token").write_text("wrong-token")
    for var in ("PERIAN_ORGANIZATION", "PERIAN_TOKEN", "_FSEC_PERIAN_ORGANIZATION", "_FSEC_PERIAN_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FLYTE_SECRETS_DEFAULT_DIR", str(secrets))
    monkeypatch.setenv("PERIANCTL_CONFIG", str(tmp_path / "none.toml"))
    async with inprocess_server(Api(api.url, "", ""), secrets_ttl=0.0) as stubs:
        meta = b'{"job_id": "00000000-0000-4000-8000-000000000001"}'
        refused = (await stubs.tasks.GetTask(get_request(meta), timeout=10)).resource
        assert refused.phase == TaskExecution.RUNNING  # no phase seen here: the task has a job, so it is under way
        assert refused.message.startswith("PERIAN API refused the credentials since ")
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            await stubs.tasks.CreateTask(create_request("success"), timeout=10)
        assert excinfo.value.code() == grpc.StatusCode.UNAUTHENTICATED
        (secrets / "perian_token").write_text(api.token)  # kubectl edit secret; kubelet syncs the file
        created = await stubs.tasks.CreateTask(create_request("success"), timeout=10)
        assert json.loads(created.resource_meta)["job_id"]


@pytest.mark.parametrize(
    "meta",
    [
        json.dumps({"job_id": "a" * 100_000}).encode(),  # a 100 kB job id
        b'{"job_id": ' + b"[" * 3000 + b"]" * 3000 + b"}",  # nested deeper than the JSON parser recurses
        b"[" * 50_000 + b"]" * 50_000,
        json.dumps({"job_id": "../../job/x?y"}).encode(),
    ],
    ids=["100kB-id", "deep-nesting", "huge-nesting", "path-characters"],
)
async def test_odd_resource_meta_is_invalid_argument_on_every_rpc(server, meta: bytes) -> None:
    """Whatever propeller hands back is checked before use: INVALID_ARGUMENT, never INTERNAL."""
    calls = [
        server.tasks.GetTask(get_request(meta), timeout=10),
        server.tasks.DeleteTask(agent_pb2.DeleteTaskRequest(resource_meta=meta, task_category=category()), timeout=10),
        server.tasks.GetTaskMetrics(
            agent_pb2.GetTaskMetricsRequest(resource_meta=meta, task_category=category()), timeout=10
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            await call
        assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT, excinfo.value
        assert len(excinfo.value.details()) < 400
    logs = server.tasks.GetTaskLogs(
        agent_pb2.GetTaskLogsRequest(resource_meta=meta, task_category=category()), timeout=10
    )
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        _ = [part async for part in logs]
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_sweeper_started_by_a_get_task_reaps_a_late_job(api: Api) -> None:
    """The sweeper of a replica whose first call was GetTask (started inside that call's budget)
    still sweeps after that budget: a job PERIAN made after its sender hung up is cancelled."""
    import httpx

    from perianctl.connector import convergence as cv

    async with inprocess_server(api, sweep_interval=0.2) as stubs:
        meta = b'{"job_id": "00000000-0000-4000-8000-000000000002"}'
        await stubs.tasks.GetTask(get_request(meta), timeout=1.5)  # starts the sweeper; budget 0.5 s
        await asyncio.sleep(0.6)  # that call's budget is over
        env = {
            cv.IDEMPOTENCY_ENV: "pk1-a-late",
            "PERIANCTL_FLYTE_NODE": "pk1-n-late",
            "PERIANCTL_FLYTE_ATTEMPT": "0",
            **cv.stamps("late-create", time.time() - 30),
        }  # its sender hung up 30 s ago
        body = {
            "requirements": {"cpu": {"cores": 1}},
            "docker_run_parameters": {
                "image_name": "ubuntu",
                "image_tag": "22.04",
                "command": "sleep 600",
                "env_variables": env,
            },
        }
        async with httpx.AsyncClient(base_url=api.url, headers=api.headers()) as http:
            job_id = (await http.post("/job", json=body)).json()["id"]
            deadline = time.monotonic() + 20
            while (await http.get(f"/job/{job_id}")).json()["jobs"][0]["status"] != "Cancelled":
                assert time.monotonic() < deadline, "the late job was never cancelled"
                await asyncio.sleep(0.1)
