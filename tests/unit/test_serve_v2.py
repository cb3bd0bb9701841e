"""Flyte 2 (flyteidl2) connector protocol: the parts that need no server.

Both protocols on one ``perianctl serve`` over real gRPC: tests/integration/test_serve_v2.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import tasks_pb2 as v1_tasks
from flyteidl2.connector import connector_pb2 as c2
from flyteidl2.core import execution_pb2 as e2
from flyteidl2.core import literals_pb2 as l2
from flyteidl2.core import tasks_pb2 as t2
from flyteidl2.task import common_pb2

# ---------------------------------------------------------------------- pure pieces


def test_flyteidl2_messages_are_wire_compatible_with_flyteidl() -> None:
    """What the translation relies on: shared fields have the same numbers and types."""
    from flyteidl.core import execution_pb2 as e1
    from flyteidl.core import literals_pb2 as l1
    from flyteidl.core import metrics_pb2 as m1
    from flyteidl2.core import metrics_pb2 as m2

    seen: set[tuple[str, str]] = set()

    def compare(d1: Any, d2: Any, path: str) -> list[str]:
        if (d1.full_name, d2.full_name) in seen:
            return []
        seen.add((d1.full_name, d2.full_name))
        problems = []
        by_number = {f.number: f for f in d2.fields}
        for f in d1.fields:
            g = by_number.get(f.number)
            if g is None:
                continue  # only one side knows it: an unknown field for the other
            if (f.type, f.is_repeated) != (g.type, g.is_repeated):
                problems.append(f"{path}.{f.name}")
            elif f.message_type is not None:
                problems += compare(f.message_type, g.message_type, f"{path}.{f.name}")
        return problems

    pairs = [
        (v1_tasks.TaskTemplate, t2.TaskTemplate),
        (l1.Literal, l2.Literal),
        (agent_pb2.TaskExecutionMetadata, c2.TaskExecutionMetadata),
        (e1.TaskLog, e2.TaskLog),
        (m1.ExecutionMetricResult, m2.ExecutionMetricResult),
        (l1.LiteralMap, common_pb2.Inputs),
        (agent_pb2.GetTaskMetricsResponse, c2.GetTaskMetricsResponse),
        # what the CLI's connector mode sends and reads over either protocol (grpc_client)
        (agent_pb2.CreateTaskRequest, c2.CreateTaskRequest),
        (agent_pb2.CreateTaskResponse, c2.CreateTaskResponse),
        (agent_pb2.GetTaskRequest, c2.GetTaskRequest),
        (agent_pb2.GetTaskResponse, c2.GetTaskResponse),
        (agent_pb2.DeleteTaskRequest, c2.DeleteTaskRequest),
        (agent_pb2.GetTaskLogsRequest, c2.GetTaskLogsRequest),
        (agent_pb2.GetTaskMetricsRequest, c2.GetTaskMetricsRequest),
        (agent_pb2.ListAgentsResponse, c2.ListConnectorsResponse),
        (agent_pb2.GetAgentRequest, c2.GetConnectorRequest),
        (agent_pb2.GetAgentResponse, c2.GetConnectorResponse),
    ]
    for a, b in pairs:
        assert compare(a.DESCRIPTOR, b.DESCRIPTOR, a.DESCRIPTOR.name) == []
    assert e1.TaskExecution.Phase.items() == e2.TaskExecution.Phase.items()


def test_log_tokens_resume_after_the_head_of_the_log_was_dropped() -> None:
    from perianctl.connector.v2 import log_token, resume_at

    lines = [f"line {i}" for i in range(10)]
    token = log_token(lines, 6)
    assert resume_at(lines, token) == 6
    assert resume_at([*lines, "line 10"], token) == 6
    capped = ["[sandbox] earlier output was dropped", *lines[4:], "line 10"]  # 4 lines dropped
    assert capped[resume_at(capped, token) :] == ["line 6", "line 7", "line 8", "line 9", "line 10"]
    assert resume_at(["other"], token) == 0  # its line is gone: everything left is new
    assert resume_at(lines, "4") == 4 and resume_at(lines, "40") == 10  # a v1 offset token
    for bad in ("x", "-1", "3:zz"):
        with pytest.raises(ValueError):
            resume_at(lines, bad)


def test_log_line_timestamps_come_from_the_line_or_the_job() -> None:
    import datetime as dt

    from perianctl.connector.v2 import log_page
    from perianctl.perian import models as m

    done = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    job = m.JobView.model_validate(
        {
            "id": "j",
            "status": "Done",
            "done_at": done.isoformat(),
            "logs": "2026-01-01T10:00:00.123456789Z started\nplain line\n",
        }
    )
    token, page = log_page(job)
    assert [line.message for line in page] == ["2026-01-01T10:00:00.123456789Z started", "plain line"]
    assert page[0].timestamp.ToDatetime(tzinfo=dt.UTC) == dt.datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=dt.UTC)
    assert page[1].timestamp.ToDatetime(tzinfo=dt.UTC) == done
    running = m.JobView.model_validate({"id": "j", "status": "Running", "logs": "a\nhalf a li"})
    token, page = log_page(running)
    assert [line.message for line in page] == ["a"]  # the line being written waits for its newline
    more = m.JobView.model_validate({"id": "j", "status": "Running", "logs": "a\nhalf a line\nb\n"})
    assert [line.message for line in log_page(more, token=token)[1]] == ["half a line", "b"]
