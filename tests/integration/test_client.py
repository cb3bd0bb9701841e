"""The async PERIAN client against the real sandbox over loopback: parsing, typed errors, retries, idempotency."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from perianctl.errors import AuthError, NotFoundError, UnavailableError, ValidationFailed
from perianctl.perian.client import IDEMPOTENCY_ENV, PerianClient
from perianctl.perian.models import CreateJobRequest, DockerRunParameters, InstanceTypeQueryInput, JobView
from tests.plugins.sandbox import SandboxFactory, SandboxHandle
from tests.support.client import FAST


def _env(job: JobView) -> dict[str, Any]:
    """The job's environment as PERIAN echoes it (where the client's idempotency key travels)."""
    params = job.docker_metadata.docker_run_parameters if job.docker_metadata else None
    assert params is not None and params.env_variables is not None, job
    return params.env_variables


def request(command: str = "echo hi", **env: str) -> CreateJobRequest:
    return CreateJobRequest(
        requirements=InstanceTypeQueryInput.model_validate({"cpu": {"cores": 1}}),
        docker_run_parameters=DockerRunParameters(
            image_name="ubuntu", image_tag="22.04", command=command, env_variables=env or None
        ),
    )


def client_for(sb: SandboxHandle, **kwargs: Any) -> PerianClient:
    return PerianClient(sb.url, sb.org, sb.token, retry=FAST, **kwargs)


async def test_create_get_list_cancel_round_trip(sandbox: SandboxHandle) -> None:
    async with client_for(sandbox) as client:
        job_id = await client.create_job(request(PERIAN_SANDBOX_SCENARIO="slow"))
        job = await client.get_job(job_id)
        assert job.id == job_id and job.image == "ubuntu:22.04"
        assert job.workload_status is not None
        page = await client.list_jobs(limit=10)
        assert page.jobs[0].id == job_id and page.pagination is not None
        result = await client.cancel_job(job_id)
        assert not result.already_done
        deadline = time.monotonic() + 60  # a hang detector
        while time.monotonic() < deadline:
            if (await client.get_job(job_id)).status == "Cancelled":
                break
            await asyncio.sleep(0.05)
        assert (await client.get_job(job_id)).status == "Cancelled"
        again = await client.cancel_job(job_id)
        assert again.already_done
        assert await client.list_accelerator_types()
        types = await client.search_instance_types(InstanceTypeQueryInput.model_validate({"cpu": {"cores": 2}}))
        assert types and types[0].id


async def test_typed_errors(sandbox: SandboxHandle) -> None:
    async with client_for(sandbox) as client:
        with pytest.raises(NotFoundError) as not_found:
            await client.get_job(str(uuid.uuid4()))
        assert not_found.value.status == 400 and "No job found" in (not_found.value.detail or "")
        with pytest.raises(NotFoundError):
            await client.cancel_job(str(uuid.uuid4()))
        with pytest.raises(ValidationFailed):
            await client.get_job("not-a-uuid")
    async with PerianClient(sandbox.url, sandbox.org, "wrong-token", retry=FAST) as bad:
        with pytest.raises(AuthError):
            await bad.list_jobs()
    async with PerianClient(sandbox.url, "ghost-org", sandbox.token, retry=FAST) as bad:
        with pytest.raises(AuthError):
            await bad.list_jobs()


async def test_unreachable_api_is_unavailable_after_retries() -> None:
    async with PerianClient("http://127.0.0.1:9", "o", "t", retry=FAST) as client:
        with pytest.raises(UnavailableError, match="cannot reach"):
            await client.list_jobs()


async def test_iter_jobs_follows_pagination(sandbox: SandboxHandle) -> None:
    async with client_for(sandbox) as client:
        ids = [await client.create_job(request()) for _ in range(7)]
        seen = [job.id async for job in client.iter_jobs(page_size=3)]
        assert seen[:7] == list(reversed(ids))
        capped = [job.id async for job in client.iter_jobs(page_size=3, max_pages=2)]
        assert len(capped) == 6


async def test_retries_survive_faults_and_create_is_never_duplicated(sandbox_factory: SandboxFactory) -> None:
    """20% faults (500/503/reset), half of them after the server did the work: every create lands exactly once."""
    sb = sandbox_factory(
        fault_rate=0.3,
        fault_kinds=["500", "503", "reset"],
        fault_phase="after",
        fault_seed=7,
        fault_endpoints=["create", "get", "list", "cancel"],
    )
    keys = [f"k-{i}" for i in range(20)]
    async with client_for(sb) as client:
        ids = [await client.create_job(request(), idempotency_key=key) for key in keys]
        assert len(set(ids)) == len(keys)
        jobs = [await client.get_job(job_id) for job_id in ids]
        assert {_env(job)[IDEMPOTENCY_ENV] for job in jobs} == set(keys)
    stats = sb.stats()
    assert stats["faults"]["injected"] > 0
    assert stats["jobs_created"] == len(keys), stats


async def test_create_without_key_does_not_guess_after_an_ambiguous_failure(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(fault_rate=1.0, fault_kinds=["500"], fault_phase="after", fault_endpoints=["create"])
    async with client_for(sb) as client:
        with pytest.raises(UnavailableError, match="may or may not exist"):
            await client.create_job(request())
    assert sb.stats()["jobs_created"] == 1
