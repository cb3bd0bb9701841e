"""The CLI's connector mode over either protocol: ``--protocol v1|v2``, or detected from the server.

A real ``perianctl serve`` (in-process grpc.aio on loopback) in front of the sandbox, and the CLI as
subprocesses (run in a thread, so the server on this event loop keeps answering).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.plugins.cli import CliResult, CliRunner
from tests.support import connector as support
from tests.support.connector import Api

api = support.api  # fixture

pytestmark = pytest.mark.timeout(120)

TEMPLATES = Path(__file__).resolve().parents[2] / "examples" / "templates"


async def cli(run_cli: CliRunner, *args: str) -> CliResult:
    return await asyncio.to_thread(run_cli, *args)


@contextlib.asynccontextmanager
async def serving(api: Api, *protocols: str) -> AsyncIterator[str]:
    """``perianctl serve`` offering only ``protocols``; yields its address."""
    from perianctl.connector.server import start
    from perianctl.connector.settings import ConnectorSettings, ServeOptions

    settings = ConnectorSettings(api_url=api.url, organization=api.organization, token=api.token)
    running = await start(
        ServeOptions(host="127.0.0.1", port=0, metrics_port=0, connector=settings, protocols=protocols)
    )
    try:
        yield f"127.0.0.1:{running.port}"
    finally:
        await running.shutdown(grace=1)


async def wait_status(api: Api, job_id: str, status: str, timeout: float = 30.0) -> None:
    """Wait (on the sandbox's own API, not through the code under test) for a job status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = await asyncio.to_thread(api.jobs)
        if any(j["id"] == job_id and j["status"] == status for j in jobs):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {status}")


@pytest.mark.parametrize("protocol", ["v1", "v2"])
async def test_job_commands_work_through_either_protocol(
    api: Api, run_cli: CliRunner, tmp_path: Path, protocol: str
) -> None:
    """Against a server offering only ``protocol``: submit, get, logs, delete all go through it."""
    async with serving(api, protocol) as target:
        r = await cli(
            run_cli,
            "submit",
            str(TEMPLATES / "hello.pb"),
            "--input",
            "name=Ada",
            "--connector",
            target,
            "--protocol",
            protocol,
            "--output-prefix",
            str(tmp_path / "run"),
            "--env",
            "PERIAN_SANDBOX_DURATION=30",
        )
        assert r.returncode == 0, r
        job_id = r.stdout.splitlines()[0].strip()
        await wait_status(api, job_id, "Running")

        r = await cli(run_cli, "get", job_id, "--connector", target, "--protocol", protocol, "-o", "json")
        assert r.returncode == 0, r
        record = json.loads(r.stdout)
        assert record["id"] == job_id and record["phase"] == "RUNNING" and record["custom_info"]["job_id"] == job_id

        r = await cli(run_cli, "logs", job_id, "--connector", target, "--protocol", protocol)
        assert r.returncode == 0, r
        assert "[sandbox] simulated run of" in r.stdout

        r = await cli(run_cli, "delete", job_id, "--connector", target, "--protocol", protocol, "--yes")
        assert r.returncode == 0 and "DeleteTask OK" in r.stderr, r
        await wait_status(api, job_id, "Cancelled")
        # One job, created through the connector with the same idempotency mechanism either way.
        jobs = api.jobs()
        assert [j["id"] for j in jobs] == [job_id]
        env = jobs[0]["docker_metadata"]["docker_run_parameters"]["env_variables"]
        assert env["PERIANCTL_IDEMPOTENCY_KEY"].startswith("pk1-")


async def test_the_protocol_is_detected_from_the_server(api: Api, run_cli: CliRunner) -> None:
    """A Flyte 2-only server: the CLI finds out from its health service (no flag needed)."""
    async with serving(api, "v2") as target:
        r = await cli(run_cli, "submit", str(TEMPLATES / "hello.pb"), "--input", "name=Ada", "--connector", target)
        assert r.returncode == 0, r
        job_id = r.stdout.splitlines()[0].strip()
        r = await cli(run_cli, "get", job_id, "--connector", target, "-o", "json")
        assert r.returncode == 0 and json.loads(r.stdout)["id"] == job_id, r
        # Told to speak v1 to it: a usage error that says what to do, no traceback.
        r = await cli(run_cli, "get", job_id, "--connector", target, "--protocol", "v1")
        assert r.returncode == 2 and "Traceback" not in r.stderr, r
        assert r.stderr.splitlines() == [
            f"error: get task via connector {target}: it does not serve the v1 connector protocol",
            "hint: use --protocol v2, or leave --protocol out to detect it",
        ], r


def test_an_unknown_protocol_is_a_usage_error(run_cli: CliRunner) -> None:
    r = run_cli("get", "3f2c1a4e-0b1d-4c5e-9f00-1234567890ab", "--connector", "127.0.0.1:1", "--protocol", "v3")
    assert r.returncode == 2 and r.stderr.startswith("error: invalid --protocol 'v3'"), r
