"""Money, end to end: one set of billing semantics seen through every view of the same sandbox job.

The sandbox runs the job (real HTTP), the connector answers over real gRPC, and the CLI runs as a
subprocess: the cost the connector reports in ``custom_info`` and GetTaskMetrics must be the cost
``perianctl get -o json`` shows, and both must follow PERIAN's rule (unit price x whole billed
units, rounded up per granularity). The old connector multiplied the unit price by the runtime
in units (20.0 instead of 2.00 for 1,200 s at 1.0 PER_10_MINUTES; a fraction of a unit here).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest
from flyteidl.admin import agent_pb2
from google.protobuf import json_format
from prometheus_client import REGISTRY

from tests import test_connector_support as support
from tests.plugins.cli import CliRunner
from tests.test_connector_support import Api, category, create_request, wait_phase

api = support.api  # fixture
server = support.server  # fixture

pytestmark = pytest.mark.timeout(120)

GRANULARITY_SECONDS = {"PER_SECOND": 1, "PER_MINUTE": 60, "PER_10_MINUTES": 600, "PER_HOUR": 3600}


def _spend(instance_type: str, currency: str) -> float:
    value = REGISTRY.get_sample_value("perianctl_connector_spend_total",
                                      {"task_type": "perian_task", "instance_type": instance_type,
                                       "currency": currency})
    return value or 0.0


async def test_connector_and_cli_report_the_same_cost(server, api: Api, run_cli: CliRunner) -> None:  # type: ignore[no-untyped-def]
    meta = (await server.tasks.CreateTask(create_request("success"), timeout=10)).resource_meta
    job_id = json.loads(meta)["job_id"]
    resource = await wait_phase(server.tasks, meta, {"SUCCEEDED"})
    info = json_format.MessageToDict(resource.custom_info)
    connector_cost = info["cost"]

    r = run_cli("get", job_id, "-o", "json", env=api.env())
    assert r.returncode == 0, r
    record = json.loads(r.stdout)
    assert record["cost"] == connector_cost

    # The semantics, pinned: whole units rounded up, at least one once it ran, priced per unit.
    price = record["price"]
    unit = GRANULARITY_SECONDS[price["granularity"]]
    units = max(1, math.ceil(connector_cost["billed_seconds"] / unit - 1e-9))
    assert connector_cost["billed_units"] == units
    assert Decimal(connector_cost["amount"]) == Decimal(price["unit_price"]) * units
    assert Decimal(connector_cost["per_hour"]) == Decimal(price["unit_price"]) * 3600 / unit
    assert connector_cost["final"] is True and connector_cost["estimate"] is False
    assert info["price"]["per_hour"] == connector_cost["per_hour"]

    # GetTaskMetrics reports the same figure.
    response = await server.tasks.GetTaskMetrics(
        agent_pb2.GetTaskMetricsRequest(resource_meta=meta, task_category=category(),
                                        queries=["PERIAN_JOB_COST_ESTIMATE"]), timeout=10)
    value = response.results[0].data["result"][0]["values"][0][1]
    assert math.isclose(float(value), float(connector_cost["amount"]), rel_tol=1e-5)


async def test_spend_counter_counts_a_finished_job_once(server, api: Api) -> None:  # type: ignore[no-untyped-def]
    meta = (await server.tasks.CreateTask(create_request("success"), timeout=10)).resource_meta
    resource = await wait_phase(server.tasks, meta, {"SUCCEEDED"})
    info = json_format.MessageToDict(resource.custom_info)
    labels = (info["instance_type_id"], info["cost"]["currency"])
    after_first = _spend(*labels)
    assert after_first >= float(info["cost"]["amount"]) > 0
    for _ in range(2):  # more GetTasks of the finished job: counted once
        await server.tasks.GetTask(agent_pb2.GetTaskRequest(resource_meta=meta, task_category=category()),
                                   timeout=10)
    assert _spend(*labels) == after_first


def test_wait_prints_the_final_cost_that_get_reports(sandbox, run_cli: CliRunner) -> None:  # type: ignore[no-untyped-def]
    job_id = sandbox.create_job(scenario="success")
    r = run_cli("wait", job_id, "-o", "json", env=sandbox.env())
    assert r.returncode == 0, r
    record = json.loads(r.stdout)
    cost = record["cost"]
    assert cost["final"] is True and cost["billed_units"] >= 1
    from perianctl.perian.pricing import money

    line = next(line for line in r.stderr.splitlines() if "final cost" in line)
    assert line.startswith(f"job {job_id}: final cost {money(Decimal(cost['amount']))} {cost['currency']} (")
    assert f"{cost['billed_units']} × {cost['granularity']}" in line
    r = run_cli("get", job_id, "-o", "json", env=sandbox.env())
    assert json.loads(r.stdout)["cost"] == cost
    r = run_cli("get", job_id, "-o", "wide", env=sandbox.env())
    assert f"{money(Decimal(cost['per_hour']))} {cost['currency']}/h" in r.stdout
    assert f"{money(Decimal(cost['amount']))} {cost['currency']}" in r.stdout
