"""The sandbox embedded in a test process, with the perianctl client (the pure sandbox pieces: tests/unit/)."""

from __future__ import annotations

import asyncio

import pytest

from perianctl.sandbox.config import SimTimings

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- embedded server + perianctl client


def test_embedded_sandbox_with_the_perianctl_client() -> None:
    from perianctl.perian import models as m
    from perianctl.perian.client import PerianClient
    from perianctl.sandbox.server import EmbeddedSandbox

    async def scenario(url: str, org: str, token: str) -> None:
        async with PerianClient(url, org, token) as client:
            request = m.CreateJobRequest(
                requirements=m.InstanceTypeQueryInput(cpu=m.CpuQueryInput(cores=2)),
                docker_run_parameters=m.DockerRunParameters(image_name="ubuntu", command="echo hi"),
            )
            job_id = await client.create_job(request, idempotency_key="key-1")
            assert await client.create_job(request, idempotency_key="key-1") == job_id  # found, not duplicated
            job = await client.get_job(job_id)
            assert job.id == job_id and job.workload_status is not None
            jobs = [j.id async for j in client.iter_jobs(page_size=1)]
            assert jobs == [job_id]
            first = await client.cancel_job(job_id)
            assert not first.already_done
            assert (await client.cancel_job(job_id)).already_done
            assert job.runtime_metadata is not None and job.runtime_metadata.instance_type_id
            itype = await client.get_instance_type(job.runtime_metadata.instance_type_id)
            assert itype is not None and itype.cpu and itype.cpu["cores"] >= 2
            assert len(await client.list_accelerator_types()) >= 5

    with EmbeddedSandbox(timings=SimTimings(speed=10)) as sb:
        assert sb.url.startswith("http://127.0.0.1:")
        asyncio.run(scenario(sb.url, sb.organization, sb.token))
        assert set(sb.env()) == {"PERIAN_API_URL", "PERIAN_ORGANIZATION", "PERIAN_TOKEN"}
