"""Issue 7, connector: ``perianctl serve`` through an unreliable PERIAN API loses no task and makes no duplicate.

A real ``serve`` subprocess against a real sandbox injecting faults on every PERIAN route (20 % of
requests answered 500, 503 or a dropped connection, *before* or *after* the request was handled,
plus 0-50 ms latency). Driven like propeller drives it, over real gRPC:

* CreateTask for ``TASKS`` distinct task executions, 8 at a time; every third one is also re-sent
  on purpose (once concurrently, once after the answer). A CreateTask that fails is re-sent for the
  *same* attempt (propeller restarted before it saved the answer), which must never duplicate.
* GetTask for every task until it is terminal: no GetTask may fail (propeller gives up after five
  errors); a transient outage is answered with the last phase and a message.

Then, with faults switched off, the sandbox's own job list must hold exactly one job per task
execution, each Done.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core.execution_pb2 import TaskExecution
from flyteidl.service import agent_pb2_grpc

from tests.plugins.sandbox import SandboxFactory
from tests.support import connector as support

pytestmark = pytest.mark.timeout(120)

TASKS = int(os.environ.get("PERIANCTL_FAULT_TASKS", "40"))
CONCURRENCY = 8
FAULTS: dict[str, Any] = {
    "rate": 0.2,
    "kinds": ["500", "503", "reset"],
    "phase": "mixed",
    "latency": [0.0, 0.05],
    "seed": int(os.environ.get("PERIANCTL_FAULT_SEED", "20240607")),
}
TERMINAL = {"SUCCEEDED", "FAILED", "ABORTED", "RETRYABLE_FAILED"}


def _execution(i: int) -> str:
    return f"fault{i:015d}"  # 20 chars, like a Flyte execution name


async def _drive(target: str) -> dict[str, Any]:
    report: dict[str, Any] = {
        "create_errors": Counter(),
        "get_errors": Counter(),
        "get_calls": 0,
        "outage_answers": 0,
        "jobs": {},
        "phases": {},
    }
    requests = {
        _execution(i): support.create_request("success", execution=_execution(i), duration=1.0) for i in range(TASKS)
    }
    gate = asyncio.Semaphore(CONCURRENCY)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)

        async def create(request: agent_pb2.CreateTaskRequest) -> bytes:
            for _ in range(10):  # a failed CreateTask is re-sent for the same attempt
                try:
                    response = await stub.CreateTask(request, timeout=10)
                    return bytes(response.resource_meta)
                except grpc.aio.AioRpcError as exc:
                    report["create_errors"][exc.code().name] += 1
                    await asyncio.sleep(0.2)
            raise AssertionError("CreateTask failed 10 times in a row")

        async def one(index: int, name: str) -> None:
            request = requests[name]
            async with gate:
                if index % 3 == 0:  # a deliberate concurrent re-send, then a later one
                    metas = list(await asyncio.gather(create(request), create(request)))
                    metas.append(await create(request))
                else:
                    metas = [await create(request)]
            assert len(set(metas)) == 1, f"{name}: re-sent CreateTask answered different jobs {metas}"
            report["jobs"][name] = metas[0]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                report["get_calls"] += 1
                try:
                    resource = (await stub.GetTask(support.get_request(metas[0]), timeout=10)).resource
                except grpc.aio.AioRpcError as exc:
                    report["get_errors"][f"{exc.code().name}: {exc.details()}"] += 1
                    await asyncio.sleep(0.2)
                    continue
                phase = TaskExecution.Phase.Name(resource.phase)
                assert phase != "UNDEFINED"
                if "unavailable" in resource.message:
                    report["outage_answers"] += 1
                if phase in TERMINAL:
                    report["phases"][name] = phase
                    return
                await asyncio.sleep(0.2)
            raise AssertionError(f"{name} never became terminal")

        await asyncio.gather(*(one(i, name) for i, name in enumerate(requests)))
    return report


def test_served_connector_under_faults_creates_one_job_per_task_execution(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory()
    serve = support.ServeProcess(support.Api(sb.url, sb.org, sb.token), tmp=tmp_path).wait_ready()
    try:
        sb.set_faults(**FAULTS)
        report = asyncio.run(_drive(serve.target))
        stats = sb.stats()
    finally:
        sb.set_faults(rate=0.0, latency=0)
        code, err = serve.terminate()
    assert code == 0, err
    print(
        f"\nfaults injected {stats['faults']['injected']} ({stats['faults']['by_endpoint']}); "
        f"CreateTask errors {dict(report['create_errors'])}; GetTask calls {report['get_calls']}, "
        f"outage answers {report['outage_answers']}"
    )
    assert stats["faults"]["injected"] >= TASKS  # the faults really happened, on many routes
    assert {"create", "get", "list"} <= set(stats["faults"]["by_endpoint"])

    assert not report["get_errors"], report["get_errors"]  # propeller would count each one
    assert report["phases"] == dict.fromkeys(report["jobs"], "SUCCEEDED")
    assert len(report["jobs"]) == TASKS

    # The sandbox's side, with faults off: exactly one job per task execution, all Done.
    with sb.http() as client:
        body = client.get("/job", params={"limit": 1000}).json()
    per_execution: dict[str, list[str]] = {}
    for job in body["jobs"]:
        env = job["docker_metadata"]["docker_run_parameters"]["env_variables"]
        per_execution.setdefault(env["PERIANCTL_FLYTE_EXECUTION"], []).append(job["id"])
        assert job["status"] == "Done", job
    duplicates = {k: v for k, v in per_execution.items() if len(v) != 1}
    assert not duplicates, duplicates
    assert len(per_execution) == TASKS and body["pagination"]["total_items"] == TASKS
    expected = {f"flytesnacks/development/{_execution(i)}/n0#0" for i in range(TASKS)}
    assert set(per_execution) == expected
    job_ids = {job_id for ids in per_execution.values() for job_id in ids}
    assert job_ids == {json.loads(meta)["job_id"] for meta in report["jobs"].values()}
