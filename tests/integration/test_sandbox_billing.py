"""Money in the sandbox, over real HTTP: the catalogue query, the bill, credits and usage limits.

Every figure is checked against :mod:`perianctl.perian.pricing` applied to what the job itself
reports (its ``price`` and its ``started_at``/``done_at``), so the bill, the credits and any client
that computes a cost from a JobView must agree to the cent (and below).
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import sys
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pytest

from perianctl.errors import InsufficientCreditsError, NotFoundError
from perianctl.perian import models as m
from perianctl.perian import pricing
from perianctl.perian.client import PerianClient, RetryPolicy
from perianctl.sandbox import billing, catalogue
from perianctl.sandbox.config import SandboxConfig
from tests.plugins.cli import CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxFactory, SandboxHandle

pytestmark = pytest.mark.timeout(90)

FAST = RetryPolicy(attempts=3, timeout=10, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01)
GRANULARITIES = ("PER_SECOND", "PER_MINUTE", "PER_10_MINUTES", "PER_HOUR")


def client_for(sb: SandboxHandle) -> PerianClient:
    return PerianClient(sb.url, sb.org, sb.token, retry=FAST)


def query(data: Mapping[str, object]) -> m.InstanceTypeQueryInput:
    return m.InstanceTypeQueryInput.model_validate(data)


def per_hour(itype: m.InstanceTypeView) -> Decimal:
    found = pricing.rate_of(itype.price)
    assert found is not None, itype.price
    return found.per_hour


def expected_cost(job: m.JobView) -> Decimal:
    """What the job cost by billing semantics, from the job's own view (what a client can compute)."""
    found = pricing.rate_of(job.price)
    assert found is not None and job.started_at is not None and job.done_at is not None
    return found.cost((job.done_at - job.started_at).total_seconds())


# --------------------------------------------------------------------------- discovery


async def test_query_is_cheapest_per_hour_first_with_filters(shared_sandbox: SandboxHandle) -> None:
    async with client_for(shared_sandbox) as client:
        everything = await client.query_instance_types(query({}), limit=100)
        assert len(everything) == len(catalogue.INSTANCE_TYPES)
        hourly = [per_hour(t) for t in everything]
        assert hourly == sorted(hourly)
        # raw unit prices are NOT in order: a per-second unit is tiny, a per-hour one is not
        units = [Decimal(t.price.unit_price or "0") for t in everything if t.price]
        assert units != sorted(units)
        assert {t.price.granularity for t in everything if t.price} == set(GRANULARITIES)

        two_cores = await client.query_instance_types(query({"cpu": {"cores": 2}, "ram": {"size": "8"}}), limit=1)
        cheapest = two_cores[0]
        assert cheapest.cores is not None and cheapest.cores >= 2 and (cheapest.ram_gb or 0) >= 8
        assert Decimal("0.02") <= per_hour(cheapest) <= Decimal("0.5")  # a small VM, not 224 EUR/h
        assert cheapest.accelerator_names == [] and cheapest.available is True

        a100 = await client.query_instance_types(query({"accelerator": {"name": "A100", "no": 1}}))
        assert a100 and all(n.startswith("NVIDIA_A100") for t in a100 for n in t.accelerator_names)
        assert all(Decimal("1.2") <= per_hour(t) / t.accelerator_count <= Decimal("4") for t in a100)
        h100 = await client.query_instance_types(query({"accelerator": {"name": "H100"}}))
        assert all(Decimal("2") <= per_hour(t) / t.accelerator_count <= Decimal("8") for t in h100)

        available = await client.query_instance_types(query({"availability": {"available": True}}), limit=100)
        unavailable = await client.query_instance_types(query({"availability": {"available": False}}), limit=100)
        assert available and unavailable and len(available) + len(unavailable) == len(everything)
        assert all(t.available for t in available) and not any(t.available for t in unavailable)

        for granularity in GRANULARITIES:
            found = await client.query_instance_types(query({"billing_granularity": granularity}), limit=100)
            assert found and all(t.price and t.price.granularity == granularity for t in found)

        budget = await client.query_instance_types(query({"price": {"unit_price": "1"}}), limit=100)
        assert budget and all(per_hour(t) <= 1 for t in budget)
        assert len(budget) == sum(1 for h in hourly if h <= 1)

        de = await client.query_instance_types(query({"region": {"location": "DE"}, "accelerator": {"no": 1}}))
        assert de and all(t.location == "DE" and t.accelerator_count >= 1 for t in de)
        assert await client.query_instance_types(query({"cpu": {"cores": 100000}})) == []

        one = await client.get_instance_type(cheapest.id or "")
        assert one is not None and one.id == cheapest.id and one.price == cheapest.price
        with pytest.raises(NotFoundError):
            await client.get_instance_type("00000000-0000-0000-0000-000000000000")

        accelerators = await client.list_accelerator_types()
        assert {a.name for a in accelerators} >= {"NVIDIA_T4_16", "NVIDIA_L4_24", "NVIDIA_A100_80", "NVIDIA_H100_80"}


async def test_a_job_runs_on_the_cheapest_available_match(shared_sandbox: SandboxHandle) -> None:
    h100 = [t for t in catalogue.search({"accelerator": {"name": "H100"}})]
    assert not h100[0].available  # the catalogue's cheapest H100 is sold out ...
    job_id = shared_sandbox.create_job(requirements={"accelerator": {"name": "H100"}})
    job = shared_sandbox.get_job(job_id)
    chosen = catalogue.instance_type_by_id(job["runtime_metadata"]["instance_type_id"])
    assert chosen is not None and chosen.available  # ... so the job gets the next one
    assert chosen == next(t for t in h100 if t.available) and job["price"] == chosen.price()


# --------------------------------------------------------------------------- the bill and the credits


async def test_each_job_is_billed_at_its_price_and_granularity(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(extra_args=["--credits", "50"])
    async with client_for(sb) as client:
        before = await client.remaining_credits()
        assert (before.current_amount, before.original_amount, before.currency) == ("50", "50", "EUR")
        ids = [sb.create_job(duration=1.1, requirements={"billing_granularity": g}) for g in GRANULARITIES]
        cancelled = sb.create_job(scenario="slow")
        await client.cancel_job(cancelled)  # usually while Queued: then there is nothing to bill
        jobs = []
        for job_id in ids:
            sb.wait_for_status(job_id)
            jobs.append(await client.get_job(job_id))
        assert [j.status for j in jobs] == ["Done"] * 4
        assert [j.price.granularity for j in jobs if j.price] == list(GRANULARITIES)

        now = dt.datetime.now(dt.UTC)
        bill = await client.generate_bill(now - dt.timedelta(hours=1), now + dt.timedelta(minutes=1))
        items = {item.workload_id: item for item in bill.items}
        cancelled_job = await client.get_job(cancelled)
        if cancelled_job.started_at is None:
            assert set(items) == set(ids)
        else:  # it got to Running before the cancel landed: billed like any other run
            assert set(items) == {*ids, cancelled} and Decimal(items[cancelled].price or "") == expected_cost(
                cancelled_job
            )
            del items[cancelled]
        total = Decimal(0)
        for job in jobs:
            item = items[job.id]
            cost = expected_cost(job)
            assert Decimal(item.price or "") == cost == Decimal(item.original_price or "")
            assert job.price is not None
            assert (item.granularity, item.currency, item.workload_type) == (job.price.granularity, "EUR", "Job")
            assert (item.started_at, item.done_at) == (job.started_at, job.done_at)
            shown = pricing.job_cost(job)  # what get/wait/watch show for the job
            assert shown is not None and shown.final and shown.amount == cost
            total += cost
        # A whole unit is billed once started: ~1 s costs a minute, ten minutes or an hour elsewhere.
        by_granularity = {j.price.granularity: expected_cost(j) for j in jobs if j.price}
        hourly = jobs[3].price
        assert hourly is not None and by_granularity["PER_HOUR"] == Decimal(hourly.unit_price or "")
        if cancelled_job.started_at is not None:
            total += expected_cost(cancelled_job)
        assert Decimal(bill.total_price or "") == total and bill.currency == "EUR"

        after = await client.remaining_credits()
        assert Decimal(after.current_amount or "") == Decimal(50) - total
        assert after.original_amount == "50"

        usd = await client.generate_bill(now - dt.timedelta(hours=1), now + dt.timedelta(minutes=1), currency="USD")
        assert Decimal(usd.total_price or "") == total * billing.EXCHANGE_RATES["USD"]
        earlier = await client.generate_bill(now - dt.timedelta(days=2), now - dt.timedelta(days=1))
        assert earlier.items == [] and Decimal(earlier.total_price or "") == 0


async def test_running_out_of_credits_stops_jobs_and_refuses_new_ones(sandbox_factory: SandboxFactory) -> None:
    # An H100 billed per second costs 0.0008 EUR a second: 0.002 EUR lasts under three seconds.
    sb = sandbox_factory(extra_args=["--credits", "0.002"])
    gpu = {"accelerator": {"name": "H100"}, "billing_granularity": "PER_SECOND"}
    job_id = sb.create_job(duration=120, requirements=gpu)
    final = sb.wait_for_status(job_id, timeout=30)
    assert final["status"] == "ServerError" and final["errors"] == billing.OUT_OF_CREDITS_ERROR
    async with client_for(sb) as client:
        job = await client.get_job(job_id)
        spent = expected_cost(job)
        credits = await client.remaining_credits()
        assert Decimal(credits.current_amount or "") == Decimal("0.002") - spent <= 0
        bill = await client.generate_bill(
            dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        )
        assert [(i.workload_id, Decimal(i.price or "")) for i in bill.items] == [(job_id, spent)]

        request = m.CreateJobRequest(
            requirements=query(gpu), docker_run_parameters=m.DockerRunParameters(image_name="ubuntu")
        )
        with pytest.raises(InsufficientCreditsError) as refused:
            await client.create_job(request)
        assert refused.value.exit_code == 2 and "insufficient credits" in refused.value.message
        assert sb.stats()["jobs_created"] == 1  # refused before anything was stored

        payment_url = await client.top_up_credits("1")
        assert payment_url and payment_url.startswith(sb.url)
        topped = await client.remaining_credits()
        assert topped.original_amount == "1.002"
        assert await client.create_job(request)


async def test_usage_limit_blocks_new_jobs_in_its_period(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory()
    async with client_for(sb) as client:
        assert await client.get_usage_limits() == []
        first = sb.create_job(duration=0.2)
        sb.wait_for_status(first)
        used = expected_cost(await client.get_job(first))
        limit = await client.set_usage_limit(used, duration_type="Day")
        assert limit is not None and limit.amount == str(used) and limit.is_enabled is True
        assert limit.start_time is not None and limit.end_time == limit.start_time + dt.timedelta(days=1)
        listed = await client.get_usage_limits()
        assert [(u.duration_type, Decimal(u.usage or "")) for u in listed] == [("Day", used)]

        request = m.CreateJobRequest(
            requirements=query({"cpu": {"cores": 1}}), docker_run_parameters=m.DockerRunParameters(image_name="ubuntu")
        )
        with pytest.raises(InsufficientCreditsError, match="usage limit"):
            await client.create_job(request)
        await client.set_usage_limit(used, duration_type="Day", enabled=False)
        assert await client.create_job(request)
        await client.set_usage_limit("1000", duration_type="Month")
        assert {u.duration_type for u in await client.get_usage_limits()} == {"Day", "Month"}


def test_billing_requests_are_checked(shared_sandbox: SandboxHandle) -> None:
    with shared_sandbox.http() as http:
        inverted = http.get(
            "/billing/generate", params={"start_time": "2025-02-01T00:00:00", "end_time": "2025-01-01T00:00:00"}
        )
        assert inverted.status_code == 400 and inverted.json()["detail"] == billing.DETAIL_DATE_ORDER
        other = http.get("/billing/generate", params={"organization": "someone-else"})
        assert other.status_code == 400 and other.json()["detail"] == m.DETAIL_ORG_NOT_FOUND
        assert http.get("/billing/generate", params={"currency": "XYZ"}).status_code == 400
        bad_time = http.get("/billing/generate", params={"start_time": "yesterday"})
        assert bad_time.status_code == 422 and bad_time.json()["detail"][0]["loc"] == ["query", "start_time"]
        default = http.get("/billing/generate").json()  # last month, as the SDK documents
        start = dt.datetime.fromisoformat(default["start_time"])
        assert start.day == 1 and start < dt.datetime.now(dt.UTC).replace(day=1)
        for body in (
            {"limit": "-1", "currency": "EUR", "duration_type": "Day", "is_enabled": True},
            {"limit": "5", "currency": "EUR", "duration_type": "Fortnight", "is_enabled": True},
            {"limit": "5", "currency": "EUR", "duration_type": "Day"},
        ):
            assert http.put("/billing/limit", json=body).status_code == 422, body
        unauthenticated = http.get("/billing/remaining-credits", headers={"Authorization": "Bearer nope"})
        assert unauthenticated.status_code == 401


@pytest.mark.parametrize("value", ["-1", "lots", "NaN"])
def test_bad_credits_flag_is_a_usage_error(run_cli: CliRunner, tmp_path: Path, value: str) -> None:
    result = run_cli("sandbox", "run", "--port", "0", "--state-dir", str(tmp_path / "sb"), "--credits", value)
    assert_one_line_error(result, 2)
    assert "credits" in result.stderr and not (tmp_path / "sb").exists()


def test_credits_survive_a_restart_and_reach_the_child(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(extra_args=["--credits", "3.5"])
    with sb.http() as http:
        assert http.post("/billing/top-up", json={"amount": 1.25}).status_code == 200
    sb.restart()
    with sb.http() as http:
        credits = http.get("/billing/remaining-credits").json()
    assert (credits["original_amount"], credits["current_amount"]) == ("4.75", "4.75")
    assert SandboxConfig(state_dir=Path("x"), credits=Decimal("3.5")).to_argv()[-2:] == ["--credits", "3.5"]


def test_out_of_credits_really_stops_a_running_process(sandbox_factory: SandboxFactory) -> None:
    """The process runtime: the job's process is terminated, not just marked (it would go on 'costing')."""
    sb = sandbox_factory(runtime="process", kill_grace=0.5, extra_args=["--credits", "0.002"])
    code = "import os, time\nprint('pid', os.getpid(), flush=True)\ntime.sleep(120)"
    job_id = sb.create_job(
        shlex.join([sys.executable, "-c", code]),
        requirements={"accelerator": {"name": "H100"}, "billing_granularity": "PER_SECOND"},
    )
    deadline = time.monotonic() + 20
    while "pid" not in (sb.get_job(job_id)["logs"] or ""):
        assert time.monotonic() < deadline, sb.get_job(job_id)
        time.sleep(0.05)
    pid = int(sb.get_job(job_id)["logs"].split("pid ")[1].split()[0])
    final = sb.wait_for_status(job_id, timeout=30)
    assert final["status"] == "ServerError" and final["errors"] == billing.OUT_OF_CREDITS_ERROR
    deadline = time.monotonic() + 15
    while True:  # terminated (SIGTERM, SIGKILL after the grace) and reaped by the sandbox
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, f"job process {pid} still alive"
        time.sleep(0.05)


async def test_billing_calls_ride_out_faults(sandbox_factory: SandboxFactory) -> None:
    """The billing routes are a fault-injection endpoint ("billing"); the client retries its idempotent calls."""
    sb = sandbox_factory(fault_rate=0.5, fault_kinds="503,reset", fault_endpoints="billing", fault_seed=7)
    policy = RetryPolicy(attempts=12, timeout=30, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01)
    async with PerianClient(sb.url, sb.org, sb.token, retry=policy) as client:
        for _ in range(5):
            assert (await client.remaining_credits()).current_amount == "10000"
            assert (await client.generate_bill()).items == []
            limit = await client.set_usage_limit("100", duration_type="Week")
            assert limit is not None and limit.amount == "100"
            assert [u.amount for u in await client.get_usage_limits()] == ["100"]
    faults = sb.stats()["faults"]
    assert faults["injected"] >= 5 and set(faults["by_endpoint"]) == {"billing"}, faults
