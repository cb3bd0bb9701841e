# mypy: disable-error-code="union-attr,index,arg-type,operator"
"""The official ``perian`` SDK (0.5.x, a test-only dependency) as a client of the sandbox.

The SDK validates responses strictly (``Strict*`` fields, exact enums), so every response it
parses here proves the sandbox's wire format, not just our own client's leniency.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal

import perian
import pytest

from perianctl.perian import models as m
from perianctl.perian import pricing
from tests.plugins.sandbox import SandboxHandle

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sdk(sandbox: SandboxHandle) -> Iterator[perian.ApiClient]:
    with perian.ApiClient(perian.Configuration(host=sandbox.url)) as client:
        yield client


def _headers(sandbox: SandboxHandle) -> dict[str, str]:
    return {"X-PERIAN-AUTH-ORG": sandbox.org, "Authorization": f"Bearer {sandbox.token}"}


def test_sdk_create_get_list_cancel(sdk: perian.ApiClient, sandbox: SandboxHandle) -> None:
    jobs = perian.JobApi(sdk)
    headers = _headers(sandbox)
    request = perian.CreateJobRequest(
        auto_failover_instance_type=True,
        requirements=perian.InstanceTypeQueryInput(
            cpu=perian.CpuQueryInput(cores=2),
            ram=perian.MemoryQueryInput(size=perian.Size("8")),
            accelerator=perian.AcceleratorQueryInput(no=1, name=perian.Name("A100")),
            region=perian.RegionQueryInput(location="DE"),
            storage=perian.StorageQueryInput(size=perian.Size(50), speed=perian.Speed(1000)),
            options=perian.QueryOptions(order=perian.OrderCriterion.PRICE),
        ),
        docker_run_parameters=perian.DockerRunParameters(
            image_name="ubuntu",
            image_tag="22.04",
            command="echo hi",
            env_variables={"PERIAN_SANDBOX_DURATION": "30"},
            secrets={"TOKEN": "very-secret"},
            container_files=[perian.ContainerFile(path="/data/x.json", base64_content="e30=")],
        ),
        docker_registry_credentials=perian.DockerRegistryCredentials(url="https://r.io", username="u", password="p"),
        timeout_seconds=600,
    )
    created = jobs.create_job(request, _headers=headers)
    assert created.status_code == 200 and created.message == m.MESSAGE_JOB_CREATED
    job_id = created.id

    got = jobs.get_job_by_id(job_id, _headers=headers)
    assert got.no == 1 and got.jobs is not None and got.jobs[0].id == job_id
    view = got.jobs[0]
    assert view.status in (
        perian.WorkloadStatus.QUEUED,
        perian.WorkloadStatus.INITIALIZING,
        perian.WorkloadStatus.RUNNING,
    )
    assert view.created_at is not None and view.created_at.tzinfo is not None
    requirements = view.requirement_metadata.requirements
    assert requirements.ram.size == "8" and requirements.storage.size == "50" and requirements.storage.speed == "1000"
    assert requirements.accelerator.name.actual_instance == "A100"
    assert view.runtime_metadata.timeout_seconds == 600
    assert view.docker_metadata.docker_run_parameters.secrets is None
    assert view.price.currency == perian.Currency.EUR and isinstance(view.price.unit_price, str)

    itype = perian.InstanceTypeApi(sdk).get_instance_type_by_id(
        view.runtime_metadata.instance_type_id, _headers=headers
    )
    assert itype.instance_types[0].accelerator.accelerator_types[0].name in (
        perian.AcceleratorName.NVIDIA_A100_40,
        perian.AcceleratorName.NVIDIA_A100_80,
    )

    sandbox.wait_for_status(job_id, {"Running"})
    listed = jobs.get_all_jobs(_headers=headers)
    assert listed.pagination.total_items == 1 and listed.jobs[0].id == job_id
    paged = jobs.get_all_jobs(limit=1, page=1, _headers=headers)
    assert paged.limit == 1 and paged.pagination.next_page is None

    cancelled = jobs.cancel_job(job_id, _headers=headers)
    assert cancelled.status_code == 200
    final = sandbox.wait_for_status(job_id)
    assert final["status"] == "Cancelled"
    parsed = jobs.get_job_by_id(job_id, _headers=headers).jobs[0]
    assert parsed.status == perian.WorkloadStatus.CANCELLED and parsed.done_at is not None

    with pytest.raises(perian.exceptions.BadRequestException) as excinfo:
        jobs.cancel_job(job_id, _headers=headers)
    assert "already complete" in str(excinfo.value)
    with pytest.raises(perian.exceptions.BadRequestException) as excinfo:
        jobs.get_job_by_id(str(uuid.uuid4()), _headers=headers)
    assert m.DETAIL_NO_JOB_FOUND in str(excinfo.value)
    with pytest.raises(perian.exceptions.UnauthorizedException):
        jobs.get_all_jobs(_headers={**headers, "Authorization": "Bearer wrong"})


def test_sdk_parses_every_status_and_scenario(sdk: perian.ApiClient, sandbox: SandboxHandle) -> None:
    jobs = perian.JobApi(sdk)
    headers = _headers(sandbox)
    ids = [sandbox.create_job(scenario=s) for s in ("success", "fail", "server-error", "timeout", "undefined")]
    ids.append(sandbox.create_job(command=None, duration=30))
    for job_id in ids[:5]:
        sandbox.wait_for_status(job_id)
    sandbox.wait_for_status(ids[5], {"Running"})
    listed = jobs.get_all_jobs(limit=100, _headers=headers)
    statuses = {job.id: job.status for job in listed.jobs}
    assert [statuses[i] for i in ids] == [
        perian.WorkloadStatus.DONE,
        perian.WorkloadStatus.USERERROR,
        perian.WorkloadStatus.SERVERERROR,
        perian.WorkloadStatus.TIMEOUT,
        perian.WorkloadStatus.DONE,
        perian.WorkloadStatus.RUNNING,
    ]
    failed = next(job for job in listed.jobs if job.id == ids[1])
    assert failed.errors and "simulated failure" in failed.errors


def test_sdk_discovery(sdk: perian.ApiClient, sandbox: SandboxHandle) -> None:
    headers = _headers(sandbox)
    instance_api = perian.InstanceTypeApi(sdk)
    query = perian.GetInstanceTypeRequest(
        instance_type_query=perian.InstanceTyperQueryView(
            cpu=perian.CpuQueryInput(cores=4), accelerator=perian.AcceleratorQueryInput(name=perian.Name("H100"))
        )
    )
    found = instance_api.get_instance_type_by_requirements(query, limit=5, _headers=headers)
    assert found.instance_types and all(
        t.accelerator.accelerator_types[0].name == perian.AcceleratorName.NVIDIA_H100_80 for t in found.instance_types
    )
    prices = [
        pricing.rate(t.price.unit_price, t.price.granularity.value, t.price.currency.value).per_hour
        for t in found.instance_types
    ]
    assert prices == sorted(prices) and len({t.price.granularity for t in found.instance_types}) >= 3

    accelerator_api = perian.AcceleratorTypeApi(sdk)
    everything = accelerator_api.get_all_accelerator_types(_headers=headers)
    assert everything.no == len(everything.accelerator_types) >= 5
    one = accelerator_api.get_accelerator_type_by_requirements(
        perian.GetAcceleratorTypeRequest(accelerator_type_query=perian.AcceleratorTypeQuery(name=perian.Name("L4"))),
        _headers=headers,
    )
    assert [a.name for a in one.accelerator_types] == [perian.AcceleratorName.NVIDIA_L4_24]
    by_id = accelerator_api.get_accelerator_type_by_id(one.accelerator_types[0].id, _headers=headers)
    assert by_id.accelerator_types[0].display_name == "L4"


def test_sdk_billing(sdk: perian.ApiClient, sandbox: SandboxHandle) -> None:
    """The SDK's strict ``Bill``/``BillItem``/credits/usage-limit models parse the sandbox's answers."""
    headers = _headers(sandbox)
    job_id = sandbox.create_job(duration=0.3, requirements={"billing_granularity": "PER_MINUTE"})
    done = sandbox.wait_for_status(job_id)
    api = perian.BillingApi(sdk)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # naive, as perian-cli sends it: read as UTC
    bill = api.generate_bill(
        organization=sandbox.org,
        currency="EUR",
        start_time=now - dt.timedelta(days=7),
        end_time=now + dt.timedelta(minutes=1),
        _headers=headers,
    )
    assert [item.workload_id for item in bill.items] == [job_id]
    item = bill.items[0]
    rate = pricing.rate(done["price"]["unit_price"], done["price"]["granularity"], done["price"]["currency"])
    assert rate is not None and Decimal(item.price) == rate.cost(0.3) == Decimal(done["price"]["unit_price"])
    assert item.granularity == perian.BillingGranularity.PER_MINUTE and item.workload_type == perian.WorkloadType.JOB
    assert item.started_at.tzinfo is not None and bill.total_price == item.price
    assert bill.currency == perian.Currency.EUR

    credits = api.get_remaining_credits(_headers=headers)
    assert Decimal(credits.current_amount) == Decimal(credits.original_amount) - Decimal(item.price)

    limit = api.set_organization_usage_limit_billing_limit_put(
        perian.UsageLimitRequest(
            limit=perian.Limit(25.5),
            currency=perian.Currency.EUR,
            duration_type=perian.DurationType.WEEK,
            is_enabled=True,
        ),
        _headers=headers,
    )
    assert limit.usage_limit.amount == "25.5" and limit.usage_limit.duration_type == perian.DurationType.WEEK
    listed = api.get_organization_usage_limit_billing_limit_get(_headers=headers)
    assert [(u.amount, u.usage) for u in listed.usage_limits] == [("25.5", item.price)]
    top_up = api.credit_top_up(perian.CreditTopUpRequest(amount=perian.Amount("10")), _headers=headers)
    assert top_up.payment_url.startswith(sandbox.url)
    assert Decimal(api.get_remaining_credits(_headers=headers).original_amount) == Decimal(credits.original_amount) + 10


def test_sdk_parses_the_whole_catalogue(sdk: perian.ApiClient, sandbox: SandboxHandle) -> None:
    """Every instance type (all granularities, unavailable ones too) and accelerator type, strictly parsed."""
    headers = _headers(sandbox)
    instance_api = perian.InstanceTypeApi(sdk)
    everything = instance_api.get_instance_type_by_requirements(
        perian.GetInstanceTypeRequest(instance_type_query=perian.InstanceTyperQueryView()), limit=100, _headers=headers
    )
    assert everything.no == len(everything.instance_types) == everything.pagination.total_items >= 25
    assert {t.price.granularity for t in everything.instance_types} == {
        perian.BillingGranularity.PER_SECOND,
        perian.BillingGranularity.PER_MINUTE,
        perian.BillingGranularity.PER_10_MINUTES,
        perian.BillingGranularity.PER_HOUR,
    }
    assert {t.availability.available for t in everything.instance_types} == {True, False}
    sold_out = instance_api.get_instance_type_by_requirements(
        perian.GetInstanceTypeRequest(
            instance_type_query=perian.InstanceTyperQueryView(
                availability=perian.AvailabilityQueryInput(available=False)
            )
        ),
        limit=100,
        _headers=headers,
    )
    assert sold_out.instance_types and not any(t.availability.available for t in sold_out.instance_types)
    for itype in everything.instance_types[:3]:
        assert instance_api.get_instance_type_by_id(itype.id, _headers=headers).instance_types[0] == itype
    accelerators = perian.AcceleratorTypeApi(sdk).get_all_accelerator_types(_headers=headers).accelerator_types
    assert {a.name for a in accelerators} == {
        n for t in everything.instance_types for n in (a.name for a in t.accelerator.accelerator_types)
    }
