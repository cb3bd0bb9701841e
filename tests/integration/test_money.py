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
from pathlib import Path
from typing import Any

import pytest
from flyteidl.admin import agent_pb2
from google.protobuf import json_format
from prometheus_client import REGISTRY

from tests.plugins.cli import CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxFactory, SandboxHandle
from tests.support import connector as support
from tests.support.connector import Api, Stubs, category, create_request, wait_phase

api = support.api  # fixture
server = support.server  # fixture

pytestmark = pytest.mark.timeout(120)

GRANULARITY_SECONDS = {"PER_SECOND": 1, "PER_MINUTE": 60, "PER_10_MINUTES": 600, "PER_HOUR": 3600}


def _spend(instance_type: str, currency: str) -> float:
    value = REGISTRY.get_sample_value(
        "perianctl_connector_spend_total",
        {"task_type": "perian_task", "instance_type": instance_type, "currency": currency},
    )
    return value or 0.0


async def test_connector_and_cli_report_the_same_cost(server: Stubs, api: Api, run_cli: CliRunner) -> None:
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
        agent_pb2.GetTaskMetricsRequest(
            resource_meta=meta, task_category=category(), queries=["PERIAN_JOB_COST_ESTIMATE"]
        ),
        timeout=10,
    )
    value = response.results[0].data["result"][0]["values"][0][1]
    assert math.isclose(float(value), float(connector_cost["amount"]), rel_tol=1e-5)


async def test_spend_counter_counts_a_finished_job_once(server: Stubs, api: Api) -> None:
    meta = (await server.tasks.CreateTask(create_request("success"), timeout=10)).resource_meta
    resource = await wait_phase(server.tasks, meta, {"SUCCEEDED"})
    info = json_format.MessageToDict(resource.custom_info)
    labels = (info["instance_type_id"], info["cost"]["currency"])
    after_first = _spend(*labels)
    assert after_first >= float(info["cost"]["amount"]) > 0
    for _ in range(2):  # more GetTasks of the finished job: counted once
        await server.tasks.GetTask(agent_pb2.GetTaskRequest(resource_meta=meta, task_category=category()), timeout=10)
    assert _spend(*labels) == after_first


def test_wait_prints_the_final_cost_that_get_reports(sandbox: SandboxHandle, run_cli: CliRunner) -> None:
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


UNIT_SECONDS = GRANULARITY_SECONDS


def _cheapest_match(api: Api, query: dict[str, object]) -> dict[str, object]:
    import httpx

    body = httpx.post(
        f"{api.url}/instance-type",
        params={"limit": 1000},
        headers=api.headers(),
        json={"instance_type_query": query},
        timeout=10,
    ).json()

    def per_hour(t: dict[str, Any]) -> Decimal:
        return Decimal(t["price"]["unit_price"]) * 3600 / UNIT_SECONDS[t["price"]["granularity"]]

    return min(body["instance_types"], key=lambda t: (per_hour(t), t["name"]))


async def test_connector_turns_a_template_budget_into_the_job_timeout(server: Stubs, api: Api) -> None:
    request = create_request("success")
    custom = json_format.MessageToDict(request.template.custom)
    query = {
        "cpu": {"cores": int(custom["cores"])},
        "ram": {"size": str(int(custom["memory"]))},
        "accelerator": {"no": int(custom["accelerators"]), "name": custom["accelerator_type"]},
        "region": {"location": custom["country_code"]},
    }
    itype: dict[str, Any] = _cheapest_match(api, query)
    unit = Decimal(itype["price"]["unit_price"])
    request.template.custom["max_cost"] = str(unit * 4 + unit / 3)  # 4 whole units
    request.template.custom["max_price_per_hour"] = "100000"
    meta = (await server.tasks.CreateTask(request, timeout=10)).resource_meta
    job_id = json.loads(meta)["job_id"]
    import httpx

    job = httpx.get(f"{api.url}/job/{job_id}", headers=api.headers(), timeout=10).json()["jobs"][0]
    assert job["runtime_metadata"]["instance_type_id"] == itype["id"]
    assert job["runtime_metadata"]["timeout_seconds"] == 4 * UNIT_SECONDS[itype["price"]["granularity"]]
    assert job["runtime_metadata"]["auto_failover_instance_type"] is False


async def test_connector_refuses_a_dearer_instance_before_creating(server: Stubs, api: Api) -> None:
    import grpc

    request = create_request("success")
    request.template.custom["max_price_per_hour"] = "0.001"
    before = api.stats()["jobs_created"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await server.tasks.CreateTask(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # well formed, nothing offered
    assert "0.001 per hour" in (caught.value.details() or "")
    assert api.stats()["jobs_created"] == before


# ---------------------------------------------------------------------- billing


HELLO = str(Path(__file__).resolve().parents[2] / "examples" / "templates" / "hello.pb")


def test_a_job_is_on_the_bill_with_the_cost_wait_printed(
    sandbox: SandboxHandle, run_cli: CliRunner, tmp_path: Path
) -> None:
    r = run_cli(
        "submit",
        HELLO,
        "-i",
        "name=x",
        "--output-prefix",
        str(tmp_path / "run"),
        "--wait",
        "-o",
        "name",
        env=sandbox.env(),
    )
    assert r.returncode == 0, r
    job_id = r.stdout.splitlines()[0].strip()
    printed = next(line for line in r.stderr.splitlines() if line.startswith(f"job {job_id}: final cost "))
    r = run_cli("wait", job_id, "-o", "json", env=sandbox.env())
    cost = json.loads(r.stdout)["cost"]

    r = run_cli("billing", "-o", "json", env=sandbox.env())
    assert r.returncode == 0, r
    bill = json.loads(r.stdout)
    item = next(i for i in bill["items"] if i["job_id"] == job_id)
    assert Decimal(item["cost"]) == Decimal(cost["amount"])
    assert item["granularity"] == cost["granularity"]
    from perianctl.perian.pricing import money

    shown = f"{money(Decimal(item['cost']))} {item['currency']}"
    assert printed.startswith(f"job {job_id}: final cost {shown} (")
    r = run_cli("billing", env=sandbox.env())
    assert r.returncode == 0, r
    row = next(line for line in r.stdout.splitlines() if job_id in line)
    assert row.rstrip().endswith(shown)
    assert "remaining credits:" in r.stdout and "total:" in r.stdout
    # Outside the window: not on the bill.
    r = run_cli("billing", "--since", "2020-01-01", "--until", "2020-02-01", "-o", "json", env=sandbox.env())
    assert r.returncode == 0 and json.loads(r.stdout)["items"] == [], r


def test_usage_limit_set_shown_and_it_refuses_a_larger_budget(
    sandbox: SandboxHandle, run_cli: CliRunner, tmp_path: Path
) -> None:
    r = run_cli("billing", "--set-limit", "2.50", "-o", "json", env=sandbox.env())
    assert r.returncode == 0, r
    limits = json.loads(r.stdout)["usage_limits"]
    month = next(limit for limit in limits if limit["period"] == "Month")
    assert Decimal(month["amount"]) == Decimal("2.50") and month["enabled"] is True
    r = run_cli("billing", env=sandbox.env())
    assert "usage limit: 2.50 EUR per Month (enabled)" in r.stdout, r

    prefix = tmp_path / "run"
    r = run_cli("submit", HELLO, "-i", "name=x", "--max-cost", "5", "--output-prefix", str(prefix), env=sandbox.env())
    assert_one_line_error(r, 2)
    assert "usage limit" in r.stderr and "hint:" in r.stderr
    assert sandbox.stats()["jobs_created"] == 0 and not prefix.exists()
    r = run_cli(
        "submit",
        HELLO,
        "-i",
        "name=x",
        "--max-cost",
        "1",
        "--output-prefix",
        str(prefix),
        "-o",
        "name",
        env=sandbox.env(),
    )
    assert r.returncode == 0, r


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "yesterday-ish"],
        ["--since", "1d", "--until", "2d"],
        ["--set-limit", "-3"],
        ["--limit-period", "Fortnight", "--set-limit", "3"],
        ["--currency", "GBP"],
    ],
)
def test_billing_bad_input_is_one_error_line(run_cli: CliRunner, args: list[str]) -> None:
    r = run_cli(
        "billing", *args, env={"PERIAN_API_URL": "http://127.0.0.1:9", "PERIAN_ORGANIZATION": "o", "PERIAN_TOKEN": "t"}
    )
    assert_one_line_error(r, 2)


def test_a_budget_beyond_the_remaining_credits_is_refused(
    sandbox_factory: SandboxFactory, run_cli: CliRunner, tmp_path: Path
) -> None:
    sb = sandbox_factory(extra_args=["--credits", "3"])
    r = run_cli(
        "submit", HELLO, "-i", "name=x", "--max-cost", "4", "--output-prefix", str(tmp_path / "run"), env=sb.env()
    )
    assert_one_line_error(r, 2)
    assert "remaining credits (3.00 EUR)" in r.stderr and "hint:" in r.stderr
    assert sb.stats()["jobs_created"] == 0 and not (tmp_path / "run").exists()
    r = run_cli(
        "submit",
        HELLO,
        "-i",
        "name=x",
        "--max-cost",
        "2",
        "--output-prefix",
        str(tmp_path / "run"),
        "-o",
        "name",
        env=sb.env(),
    )
    assert r.returncode == 0, r


def test_serve_exports_the_spend_of_a_finished_task(api: Api, tmp_path: Path) -> None:
    """The counter on ``perianctl serve``'s /metrics, as Prometheus scrapes it (a real server process)."""
    import asyncio

    import httpx

    from perianctl.connector import grpc_client as gc
    from tests.support.connector import ServeProcess, free_port, inputs, output_prefix, perian_template

    serve = ServeProcess(api, metrics_port=free_port(), tmp=tmp_path).wait_ready()
    try:
        execution = "a" + "spendtest0000000000"
        prefix = output_prefix(execution)

        async def run_task() -> dict[str, Any]:
            sub = await gc.submit_via_connector(
                serve.target, perian_template("success", prefix=prefix), inputs(), prefix, execution_name=execution
            )
            assert sub.job_id is not None
            for _ in range(400):
                status = await gc.get_via_connector(serve.target, sub.job_id)
                if status.terminal:
                    return status.custom_info
                await asyncio.sleep(0.05)
            raise AssertionError("the task never finished")

        info = asyncio.run(run_task())
        text = httpx.get(f"http://127.0.0.1:{serve.metrics_port}/metrics", timeout=10).text
        wanted = (
            f'perianctl_connector_spend_total{{currency="{info["cost"]["currency"]}",'
            f'instance_type="{info["instance_type_id"]}",task_type="perian_task"}}'
        )
        line = next(line for line in text.splitlines() if line.startswith(wanted))
        assert math.isclose(float(line.split()[-1]), float(info["cost"]["amount"]), rel_tol=1e-9)
    finally:
        serve.terminate()
