"""Three ``perianctl serve`` replicas behind a round-robin client agree on every job (stateless scale-out)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core.execution_pb2 import TaskExecution
from flyteidl.service import agent_pb2_grpc
from google.protobuf import json_format

from tests.support import connector as support
from tests.support.connector import (
    Api,
    ServeProcess,
    category,
    create_request,
    get_request,
)

api = support.api  # fixture

pytestmark = pytest.mark.timeout(120)

# Lifecycle order of the phases a job passes through (terminal ones last).
RANK = {
    TaskExecution.QUEUED: 0,
    TaskExecution.INITIALIZING: 1,
    TaskExecution.RUNNING: 2,
    TaskExecution.SUCCEEDED: 3,
    TaskExecution.FAILED: 3,
    TaskExecution.RETRYABLE_FAILED: 3,
    TaskExecution.ABORTED: 3,
}
EXPECTED = {
    "success": TaskExecution.SUCCEEDED,
    "fail": TaskExecution.FAILED,
    "server-error": TaskExecution.RETRYABLE_FAILED,
    "cancel": TaskExecution.ABORTED,
}


@pytest.fixture
def replicas(api: Api, tmp_path: Path):
    procs = [ServeProcess(api, tmp=tmp_path) for _ in range(3)]  # start all three, then wait
    try:
        yield [p.wait_ready() for p in procs]
    finally:
        codes = [p.terminate() for p in procs]
        assert all(code == 0 for code, _ in codes), codes


def test_round_robin_over_three_replicas_is_consistent(replicas: list[ServeProcess], api: Api) -> None:
    assert len({p.port for p in replicas}) == 3
    channels = [grpc.insecure_channel(p.target) for p in replicas]
    stubs = [agent_pb2_grpc.AsyncAgentServiceStub(c) for c in channels]
    next_stub = itertools.cycle(stubs).__next__  # what propeller's round_robin policy does per call
    try:
        scenarios = ["success", "fail", "server-error", "cancel"] * 2
        tasks = []
        for i, scenario in enumerate(scenarios):
            duration = 30 if scenario == "cancel" else None
            request = create_request("success" if scenario == "cancel" else scenario, node=f"n{i}", duration=duration)
            meta = next_stub().CreateTask(request, timeout=10).resource_meta
            # the reply "was lost": propeller re-sends, and the retry lands on another replica
            again = next_stub().CreateTask(request, timeout=10).resource_meta
            assert again == meta
            tasks.append((scenario, meta))

        for scenario, meta in tasks:
            if scenario == "cancel":
                delete = agent_pb2.DeleteTaskRequest(
                    task_type="perian_task", resource_meta=meta, task_category=category()
                )
                next_stub().DeleteTask(delete, timeout=10)
                next_stub().DeleteTask(delete, timeout=10)  # abort retried on another replica

        seen: dict[bytes, list[int]] = {meta: [] for _, meta in tasks}
        pending = {meta for _, meta in tasks}
        for _ in range(400):
            for meta in list(pending):
                resource = next_stub().GetTask(get_request(meta), timeout=10).resource
                assert resource.phase != TaskExecution.UNDEFINED
                seen[meta].append(resource.phase)
                if RANK[resource.phase] == 3:
                    pending.discard(meta)
            if not pending:
                break
        assert not pending, "some tasks never finished"

        for scenario, meta in tasks:
            phases = seen[meta]
            ranks = [RANK[p] for p in phases]
            assert ranks == sorted(ranks), f"{scenario}: phases went backwards across replicas: {phases}"
            assert phases[-1] == EXPECTED[scenario], (scenario, phases)
            # every replica gives the same answer for a finished job
            answers = [json_format.MessageToDict(s.GetTask(get_request(meta), timeout=10).resource) for s in stubs]
            assert answers[0] == answers[1] == answers[2], scenario
    finally:
        for channel in channels:
            channel.close()

    stats = api.stats()
    assert stats["jobs_created"] == len(tasks)
    ids = {json.loads(meta)["job_id"] for _, meta in tasks}
    assert ids == {j["id"] for j in api.jobs()}
