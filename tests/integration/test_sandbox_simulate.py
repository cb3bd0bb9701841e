"""The simulate runtime: lifecycles, per-job scenarios, cancel, and a thousand jobs."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.plugins.sandbox import SandboxFactory, SandboxHandle

pytestmark = pytest.mark.timeout(90)
JOBS = 300  # a burst: enough to interleave 20 clients and batched scheduler writes


def _statuses_seen(sandbox: SandboxHandle, job_id: str, timeout: float = 60.0) -> list[str]:
    """Poll fast and record every distinct status until the job ends."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    with sandbox.http() as client:
        while time.monotonic() < deadline:
            status = client.get(f"/job/{job_id}").json()["jobs"][0]["status"]
            if not seen or seen[-1] != status:
                seen.append(status)
            if status in {"Done", "ServerError", "UserError", "Cancelled", "Timeout"}:
                return seen
            time.sleep(0.01)
    raise AssertionError(f"job {job_id} did not end: {seen}")


def test_happy_path_walks_every_status(sandbox_factory: SandboxFactory) -> None:
    # Queued 0.33 s, Initializing 0.67 s, Running 2 s: each status outlasts a poll on a busy box
    slow = sandbox_factory(speed=1.5)
    job_id = slow.create_job("python train.py")
    assert _statuses_seen(slow, job_id) == ["Queued", "Initializing", "Running", "Done"]
    job = slow.get_job(job_id)
    assert job["logs"].startswith("[sandbox] simulated run of ubuntu:22.04 on ")
    assert "$ python train.py" in job["logs"] and job["logs"].endswith("done\n")
    assert job["logs"].count("step ") >= 3
    assert job["created_at"] < job["started_at"] <= job["done_at"] == job["updated_at"]


def test_scenarios(sandbox: SandboxHandle) -> None:
    ids = {name: sandbox.create_job(scenario=name) for name in ("fail", "server-error", "timeout", "bogus")}
    ids["timeout-seconds"] = sandbox.create_job(duration=30, timeout_seconds=1)
    ends = {name: sandbox.wait_for_status(job_id) for name, job_id in ids.items()}

    assert ends["fail"]["status"] == "UserError"
    assert ends["fail"]["errors"].startswith("Container exited with code 1: RuntimeError: simulated failure")
    assert "Traceback" in ends["fail"]["logs"]
    assert ends["server-error"]["status"] == "ServerError" and "preempted" in ends["server-error"]["errors"]
    assert ends["timeout"]["status"] == "Timeout" and "timeout" in ends["timeout"]["errors"]
    assert ends["bogus"]["status"] == "Done" and "unknown PERIAN_SANDBOX_SCENARIO='bogus'" in ends["bogus"]["logs"]
    timed = ends["timeout-seconds"]
    assert timed["status"] == "Timeout" and "timeout of 1 s" in timed["errors"]


def test_undefined_then_done(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(speed=2)  # Queued 0.25 s, Undefined 1 s: long enough to be seen on a busy box
    seen = _statuses_seen(sb, sb.create_job(scenario="undefined"))
    assert seen[:2] == ["Queued", "Undefined"] and seen[-1] == "Done"


def test_slow_and_duration(sandbox: SandboxHandle) -> None:
    slow = sandbox.create_job(scenario="slow")  # 20x the running time: 6 s at the fixture speed
    timed = sandbox.create_job(duration=1.0)
    started = time.monotonic()
    sandbox.wait_for_status(timed, {"Done"})
    assert time.monotonic() - started >= 1.0
    assert sandbox.get_job(slow)["status"] == "Running"
    with sandbox.http() as client:
        assert client.patch(f"/job/{slow}/cancel").status_code == 200


def test_logs_grow_while_running(sandbox: SandboxHandle) -> None:
    job_id = sandbox.create_job(duration=30.0)
    sandbox.wait_for_status(job_id, {"Running"})
    first = sandbox.get_job(job_id)["logs"]
    deadline = time.monotonic() + 60  # wait for the event "more logs", bounded only to detect a hang
    while (second := sandbox.get_job(job_id))["logs"] == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert second["status"] == "Running"  # it grew while running, not only at the end
    assert second["logs"].startswith(first) and len(second["logs"]) > len(first)
    with sandbox.http() as client:
        assert client.patch(f"/job/{job_id}/cancel").status_code == 200


def test_cancel_queued_running_and_resistant(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(speed=2)  # Queued 0.25 s; cancel delay 1.5 s (the "still Running" check below)
    with sb.http() as client:
        queued = sb.create_job()
        assert client.patch(f"/job/{queued}/cancel").status_code == 200
        job = sb.get_job(queued)
        assert job["status"] == "Cancelled" and job["started_at"] is None and job["done_at"] is not None

        running = sb.create_job(duration=30)
        sb.wait_for_status(running, {"Running"})
        assert client.patch(f"/job/{running}/cancel").status_code == 200
        assert sb.get_job(running)["status"] == "Cancelled"

        resistant = sb.create_job(scenario="cancel-resistant", duration=30)
        sb.wait_for_status(resistant, {"Running"})
        asked = time.monotonic()
        assert client.patch(f"/job/{resistant}/cancel").status_code == 200
        assert sb.get_job(resistant)["status"] == "Running"
        assert client.patch(f"/job/{resistant}/cancel").status_code == 200  # still open: accepted again
        done = sb.wait_for_status(resistant)
        assert done["status"] == "Cancelled" and time.monotonic() - asked >= 0.5
        assert "received a cancel request" in done["logs"]
        assert client.patch(f"/job/{resistant}/cancel").json()["detail"] == (
            "The job you are trying to cancel is already complete."
        )


@pytest.mark.timeout(240)
def test_a_burst_of_jobs_all_complete_none_lost(sandbox: SandboxHandle) -> None:
    """300 jobs created over HTTP (20 concurrent clients) all reach Done; none lost, none extra.

    How fast is a speed figure: ``bench/bench_sandbox.py`` (1,000 jobs, against a baseline).
    """
    started = time.monotonic()
    body = {
        "requirements": {"cpu": {"cores": 1}},
        "docker_run_parameters": {"image_name": "busybox", "command": "true"},
    }

    async def create_all() -> list[str]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(
            base_url=sandbox.url, headers=sandbox.headers(), limits=limits, timeout=30
        ) as client:
            queue = list(range(JOBS))
            ids: list[str] = []

            async def worker() -> None:
                while queue:
                    queue.pop()
                    response = await client.post("/job", json=body)
                    assert response.status_code == 200, response.text
                    ids.append(response.json()["id"])

            await asyncio.gather(*(worker() for _ in range(20)))
            return ids

    ids = asyncio.run(create_all())
    assert len(set(ids)) == JOBS
    while True:
        stats = sandbox.stats()
        if stats["jobs"]["by_status"]["Done"] == JOBS:
            break
        assert time.monotonic() - started < 180, stats["jobs"]  # a hang detector
        time.sleep(0.2)
    assert stats["jobs_created"] == JOBS and stats["create_calls"] == JOBS and stats["jobs"]["total"] == JOBS
    with sandbox.http() as client:
        page = client.get("/job", params={"limit": 1000}).json()
    assert page["no"] == JOBS and {j["id"] for j in page["jobs"]} == set(ids)
    assert all(j["status"] == "Done" and j["done_at"] for j in page["jobs"])
