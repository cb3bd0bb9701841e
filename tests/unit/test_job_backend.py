"""The connector backend's view of a job, and the poller over a source that cannot list (pure).

A GetTask answer becomes the ``JobView`` the poller, the exit codes and the views read: PERIAN's
status when the connector reports it, else one derived from the Flyte phase (not journalled).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from perianctl.connector.grpc_client import LogLink, TaskStatus
from perianctl.errors import ExitCode, UnavailableError, UsageError
from perianctl.jobs.backend import connector_answer, view_from_task_status
from perianctl.jobs.follow import Poller, WaitFor, wait_for
from perianctl.jobs.observations import reported
from perianctl.perian.models import GetJobsSuccess, JobView
from perianctl.perian.pricing import job_cost
from perianctl.ui.jobs import task_status_record

JOB = "3f2c1a4e-0b1d-4c5e-9f00-1234567890ab"


def _status(phase: str, message: str = "", **custom: Any) -> TaskStatus:
    from flyteidl.core import execution_pb2

    return TaskStatus(
        phase=execution_pb2.TaskExecution.Phase.Value(phase),
        phase_name=phase,
        message=message,
        log_links=[LogLink("PERIAN", f"https://perian.example/jobs/{JOB}")],
        custom_info={"job_id": JOB, **custom},
    )


def test_a_reported_perian_status_is_the_views_status() -> None:
    view = view_from_task_status(
        JOB,
        _status(
            "SUCCEEDED",
            "Done",
            status="Done",
            instance_type_id="it-1",
            started_at="2026-11-23T10:00:00+00:00",
            done_at="2026-11-23T10:20:00+00:00",
            price={"unit_price": "1.0", "currency": "EUR", "granularity": "PER_10_MINUTES"},
        ),
    )
    assert (view.id, view.status, view.errors) == (JOB, "Done", None)
    assert reported(view)
    assert view.runtime_metadata is not None and view.runtime_metadata.instance_type_id == "it-1"
    cost = job_cost(view)  # the same pricing module as the API path: 1,200 s = 2 units of 10 minutes
    assert cost is not None and cost.amount == Decimal("2.0")
    record = task_status_record(view)
    assert record["phase"] == "SUCCEEDED" and record["status"] == "Done" and record["custom_info"]["job_id"] == JOB
    assert record["log_links"] == [{"name": "PERIAN", "uri": f"https://perian.example/jobs/{JOB}"}]


@pytest.mark.parametrize(
    ("phase", "status", "code"),
    [
        ("SUCCEEDED", "Done", ExitCode.OK),
        ("FAILED", "UserError", ExitCode.JOB_FAILED),
        ("RETRYABLE_FAILED", "ServerError", ExitCode.JOB_FAILED),
        ("ABORTED", "Cancelled", ExitCode.JOB_CANCELLED),
        ("RUNNING", "Running", None),
        ("QUEUED", "Queued", None),
    ],
)
def test_without_a_perian_status_the_phase_decides(phase: str, status: str, code: ExitCode | None) -> None:
    from perianctl.flyte.phase import exit_code_for_status

    view = view_from_task_status(JOB, _status(phase, "boom" if "FAILED" in phase else ""))
    assert view.status == status and exit_code_for_status(view.status) == code
    assert not reported(view)  # derived: never written to the journal as PERIAN's word
    assert task_status_record(view)["status"] is None
    if "FAILED" in phase:
        assert view.errors == "boom"


def test_a_perian_timeout_through_a_connector_is_exit_5() -> None:
    from perianctl.flyte.phase import exit_code_for_status

    view = view_from_task_status(JOB, _status("FAILED", "Timeout: ran out of time", status="Timeout"))
    assert exit_code_for_status(view.status) == ExitCode.TIMEOUT
    assert view.errors == "ran out of time"  # not "Timeout: Timeout: ..." when the phase message is shown


def test_a_connector_that_cannot_reach_perian_says_so_in_the_message() -> None:
    from perianctl.flyte.phase import status_to_phase

    view = view_from_task_status(
        JOB, _status("RUNNING", "PERIAN API unavailable since 10:00:00Z, retrying", perian_api="unavailable")
    )
    assert view.status == "Running" and not reported(view)
    assert status_to_phase(view.status, errors=view.errors).message.endswith(
        "PERIAN API unavailable since 10:00:00Z, retrying"
    )


def test_the_answer_survives_the_pollers_compact_json() -> None:
    view = view_from_task_status(JOB, _status("RUNNING", "Running", status="Running"))
    again = JobView.model_validate_json(view.model_dump_json(by_alias=True))
    assert connector_answer(again) == connector_answer(view) and again.status == "Running"


class _NoListSource:
    """The shape of a connector backend: gets only. Answers from a script; each entry is a status or an error."""

    can_list = False
    where = "connector 127.0.0.1:9"

    def __init__(self, script: list[str | Exception]) -> None:
        self.script = script
        self.gets = 0

    async def list_jobs(self, *, limit: int | None = None, page: int | None = None) -> GetJobsSuccess:
        raise AssertionError("a source that cannot list is never asked to")

    async def get_job(self, job_id: str) -> JobView:
        self.gets += 1
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        return view_from_task_status(job_id, _status("RUNNING", step, status=step))


def test_the_poller_gets_each_job_from_a_source_that_cannot_list() -> None:
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(5)]  # more than the direct-get threshold
    source = _NoListSource(["Running", "Running", "Running", "Running", "Running", "Done"])
    clock = [0.0]
    poller = Poller(source, ids, interval=0.0, clock=lambda: clock[0], monotonic=lambda: clock[0])

    async def no_sleep(_: float) -> None:
        clock[0] += 1

    result = asyncio.run(wait_for(poller, wait_for=WaitFor.TERMINAL, sleep=no_sleep))
    assert result.exit_code == ExitCode.OK and source.gets >= len(ids) + 1
    assert poller.stats.list_requests == 0


def test_an_outage_of_a_source_is_named_after_it() -> None:
    source = _NoListSource([UnavailableError("get task via connector 127.0.0.1:9: unavailable")])
    clock = [0.0]
    poller = Poller(source, [JOB], interval=1.0, give_up_after=3.0, monotonic=lambda: clock[0])

    async def go() -> None:
        while True:
            result = await poller.refresh()
            assert not result.ok and poller.stale
            clock[0] += 1

    with pytest.raises(UnavailableError) as caught:
        asyncio.run(go())
    assert caught.value.message.startswith("connector 127.0.0.1:9 unavailable for 3s (4 failed refreshes")


def test_discovering_jobs_needs_a_list_call() -> None:
    with pytest.raises(UsageError, match="watch --all is not possible through a connector"):
        Poller(_NoListSource(["Running"]), discover=True)
