"""One odd job record degrades that job, never the list: the CLI, the client and the connector over real HTTP.

The sandbox serves odd records through its test-only admin route ``PUT /_sandbox/jobs/{id}/raw``
(:mod:`perianctl.sandbox.raw`): ``null`` secrets (what the real service sends back), a number
where text is expected, a status nobody documented, wrong nesting, an item that is not an object.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from perianctl.perian.client import PerianClient
from perianctl.perian.models import CreateJobRequest, DockerRunParameters, InstanceTypeQueryInput, Unreadable
from tests.plugins.cli import CliRunner
from tests.plugins.sandbox import SandboxHandle
from tests.support import connector as support
from tests.support.connector import Api, create_request, get_request, inprocess_server, wait_phase

api = support.api  # fixture


def serve_raw(sb_url: str, job_id: str, value: Any) -> None:
    response = httpx.put(f"{sb_url}/_sandbox/jobs/{job_id}/raw", content=json.dumps(value), timeout=10)
    assert response.status_code == 200, response.text


def cli(run_cli: CliRunner, sb: SandboxHandle, *args: str) -> Any:
    return run_cli("--api-url", sb.url, "--org", sb.org, "--token", sb.token, *args, timeout=60)


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


# (override, the field the warning must name or None for "read as is", what the JSON record then shows)
ODD: dict[str, tuple[dict[str, Any], str | None, dict[str, Any]]] = {
    "number-for-text": ({"logs": 12345, "errors": 7.5}, None, {"logs": "12345"}),
    "unknown-status": ({"status": "Hibernating"}, None, {"status": "Hibernating"}),
    "bad-date": ({"started_at": "yesterday-ish"}, "started_at", {"started_at": None}),
    "wrong-nesting": ({"docker_metadata": "ubuntu:22.04"}, "docker_metadata", {}),
    "env-as-list": (
        {"docker_metadata": {"docker_run_parameters": {"env_variables": ["A=1"]}}},
        "docker_metadata.docker_run_parameters.env_variables",
        {},
    ),
    "timeout-text": ({"runtime_metadata": {"timeout_seconds": "soon"}}, "runtime_metadata.timeout_seconds", {}),
    "bool-for-text": ({"logs": True}, "logs", {}),
}


@pytest.mark.parametrize("case", list(ODD))
def test_one_odd_job_degrades_only_itself(run_cli: CliRunner, sandbox: SandboxHandle, case: str) -> None:
    override, field, shown = ODD[case]
    good = sandbox.create_job("echo good")
    odd = sandbox.create_job("echo odd")
    sandbox.wait_for_status(odd)
    serve_raw(sandbox.url, odd, override)

    listed = cli(run_cli, sandbox, "list", "-o", "json")
    assert listed.returncode == 0, listed
    records = {r["id"]: r for r in json.loads(listed.stdout)}
    assert {good, odd} <= set(records), listed
    for key, value in shown.items():
        assert records[odd][key] == value, records[odd]

    got = cli(run_cli, sandbox, "get", odd, "-o", "json")
    assert got.returncode == 0, got
    for result in (listed, got):
        lines = warnings(result.stderr)
        if field is None:
            assert lines == [], result
        else:  # one warning, naming the job and the field, never the value
            assert len(lines) == 1 and odd in lines[0] and field in lines[0], result
            assert "yesterday" not in lines[0] and "ubuntu" not in lines[0] and "A=1" not in lines[0]
    assert "Traceback" not in listed.stderr + got.stderr


def test_a_non_object_item_is_skipped_with_a_warning(run_cli: CliRunner, sandbox: SandboxHandle) -> None:
    good = sandbox.create_job("echo good")
    odd = sandbox.create_job("echo odd")
    serve_raw(sandbox.url, odd, 42)
    listed = cli(run_cli, sandbox, "list", "-o", "json")
    assert listed.returncode == 0, listed
    assert [r["id"] for r in json.loads(listed.stdout)] == [good]
    assert len(warnings(listed.stderr)) == 1 and "skipped" in listed.stderr
    got = cli(run_cli, sandbox, "get", odd, "-o", "json")  # the job exists: say what is known
    assert got.returncode == 0, got
    assert json.loads(got.stdout)["id"] == odd and len(warnings(got.stderr)) == 1


def test_watch_keeps_working_with_an_odd_job(run_cli: CliRunner, sandbox: SandboxHandle) -> None:
    odd = sandbox.create_job("echo odd")
    serve_raw(sandbox.url, odd, {"started_at": 17, "docker_metadata": [1, 2]})
    result = cli(run_cli, sandbox, "watch", odd, "-o", "json")
    assert result.returncode == 0, result
    assert len(warnings(result.stderr)) == 1, result  # once, not on every poll


def test_null_secrets_are_read_silently(run_cli: CliRunner, sandbox: SandboxHandle) -> None:
    """What the real service answers after a create with registry credentials and container files."""
    job = sandbox.create_job(
        "echo hi", docker_registry_credentials={"url": "r.example", "username": "u", "password": "p4ss"}
    )
    serve_raw(
        sandbox.url,
        job,
        {
            "docker_registry_credentials": {"password": None},
            "docker_metadata": {
                "docker_registry_credentials": {"url": None, "password": None},
                "docker_run_parameters": {
                    "image_name": None,
                    "secrets": None,
                    "container_files": [{"path": "/k", "base64_content": None}],
                },
            },
        },
    )
    for args in (["list"], ["get", job]):
        result = cli(run_cli, sandbox, *args)
        assert result.returncode == 0 and warnings(result.stderr) == [], result


async def test_idempotency_look_up_survives_odd_jobs(sandbox: SandboxHandle) -> None:
    """The connector's path: the look-up before a create lists jobs; an odd one must not fail it."""
    odd = sandbox.create_job("echo odd")
    serve_raw(sandbox.url, odd, {"docker_metadata": {"docker_run_parameters": {"env_variables": "A=1"}}})
    seen: list[Unreadable] = []
    request = CreateJobRequest(
        requirements=InstanceTypeQueryInput.model_validate({"cpu": {"cores": 1}}),
        docker_run_parameters=DockerRunParameters(image_name="ubuntu", command="true"),
    )
    async with PerianClient(
        sandbox.url, sandbox.org, sandbox.token, on_unreadable=lambda _what, problem: seen.append(problem)
    ) as client:
        first = await client.create_job(request, idempotency_key="odd-neighbour-1")
        again = await client.create_job(request, idempotency_key="odd-neighbour-1")
    assert first == again
    assert sandbox.stats()["jobs_created"] == 2
    assert [p.item for p in seen] == [f"job {odd}"]


async def test_connector_with_registry_secrets_creates_every_task(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue: with _FSEC_DOCKER_REGISTRY_* set, every CreateTask after the first failed (the look-up's
    list could not read the first job's ``password: null``), and GetTask said "unavailable"."""
    monkeypatch.setenv("_FSEC_DOCKER_REGISTRY_URL", "registry.example.com")
    monkeypatch.setenv("_FSEC_DOCKER_REGISTRY_USERNAME", "robot")
    monkeypatch.setenv("_FSEC_DOCKER_REGISTRY_PASSWORD", "pw-123")
    async with inprocess_server(api) as server:
        first = await server.tasks.CreateTask(create_request("success"), timeout=10)
        second = await server.tasks.CreateTask(create_request("success"), timeout=10)
        assert first.resource_meta != second.resource_meta
        done = await wait_phase(server.tasks, first.resource_meta, {"SUCCEEDED"})
        assert "unavailable" not in done.message
        resource = (await server.tasks.GetTask(get_request(second.resource_meta), timeout=10)).resource
        assert "unavailable" not in resource.message


def test_raw_route_rejects_what_it_cannot_serve(sandbox: SandboxHandle) -> None:
    job = sandbox.create_job()
    for body in (b"{", b'{"logs": NaN}', b'{"logs": "\\ud800"}'):
        response = httpx.put(f"{sandbox.url}/_sandbox/jobs/{job}/raw", content=body, timeout=10)
        assert response.status_code == 422 and response.json()["status_code"] == 422
    unknown = httpx.put(f"{sandbox.url}/_sandbox/jobs/3f2c1a4e-0b1d-4c5e-9f00-1234567890ab/raw", json={}, timeout=10)
    assert unknown.status_code == 400 and unknown.json()["detail"] == "No job found with specified ID"
    serve_raw(sandbox.url, job, {"logs": 1})
    assert httpx.delete(f"{sandbox.url}/_sandbox/jobs/{job}/raw", timeout=10).status_code == 200
    assert sandbox.get_job(job)["logs"] != 1
