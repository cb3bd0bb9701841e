"""``submit/get/delete/logs --connector``: the CLI as a flytepropeller stand-in, over real gRPC.

* CLI flags in ``--dry-run`` and as usage errors; a connector that is down (the pure
  :func:`apply_overrides` tests are in tests/unit/test_connector_cli.py).
* The README demo through ``perianctl serve``: a real sandbox (process runtime runs
  ``pyflyte-execute``), a real ``serve`` subprocess, and CLI subprocesses with **no PERIAN
  credentials**, so every answer must have come through the connector.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.plugins.cli import CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxFactory
from tests.support import connector as support
from tests.support.connector_cli import REPO, TEMPLATES

GREETING = "o0 = Hello, {}! Greetings from a PERIAN job."

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------------- the CLI without a server


def test_dry_run_shows_the_overrides_in_the_create_task_request(run_cli: CliRunner, tmp_path: Path) -> None:
    r = run_cli(
        "submit",
        str(TEMPLATES / "hello.pb"),
        "-i",
        "name=Dry",
        "--connector",
        "127.0.0.1:1",
        "--dry-run",
        "--env",
        "A=B",
        "--cores",
        "4",
        "--timeout",
        "5m",
        "--image",
        "ghcr.io/acme/img:1",
        "--output-prefix",
        str(tmp_path / "dry"),
    )
    assert r.returncode == 0, r
    request = json.loads(r.stdout)
    template = request["template"]
    assert template["custom"]["cores"] == 4 and template["custom"]["environment"]["A"] == "B"
    assert {"key": "A", "value": "B"} in template["container"]["env"]
    assert template["container"]["image"] == "ghcr.io/acme/img:1"
    assert template["metadata"]["timeout"] == "300s"
    assert request["outputPrefix"] == str(tmp_path / "dry")
    assert request["taskExecutionMetadata"]["taskExecutionId"]["nodeExecutionId"]["nodeId"] == "n0"


def test_flags_a_connector_cannot_carry_are_usage_errors(run_cli: CliRunner) -> None:
    r = run_cli(
        "submit",
        str(TEMPLATES / "hello.pb"),
        "-i",
        "name=X",
        "--connector",
        "127.0.0.1:1",
        "--instance-type-id",
        "abc",
        "--dry-run",
    )
    assert_one_line_error(r, 2)
    assert "--instance-type-id" in r.stderr
    r = run_cli("delete", "3f2c1a4e-0b1d-4c5e-9f00-1234567890ab", "--connector", "127.0.0.1:1", "--strict", "--yes")
    assert_one_line_error(r, 2)
    r = run_cli("get", "3f2c1a4e-0b1d-4c5e-9f00-1234567890ab", "--connector", "nope")
    assert_one_line_error(r, 2)


def test_connector_down_is_exit_8(run_cli: CliRunner) -> None:
    r = run_cli("get", "3f2c1a4e-0b1d-4c5e-9f00-1234567890ab", "--connector", f"127.0.0.1:{support.free_port()}")
    assert_one_line_error(r, 8)


# ---------------------------------------------------------------------- end to end through `serve`


def test_readme_demo_through_serve(sandbox_factory: SandboxFactory, run_cli: CliRunner, tmp_path: Path) -> None:
    """submit --connector --wait → outputs; get/logs/delete --connector; the connector setting as default."""
    sb = sandbox_factory(runtime="process")
    api = support.Api(sb.url, sb.org, sb.token)
    serve = support.ServeProcess(api, tmp=tmp_path).wait_ready()
    target = serve.target
    try:
        prefix = tmp_path / "hello-run"
        r = run_cli(
            "submit",
            str(TEMPLATES / "hello.pb"),
            "--input",
            "name=Connector",
            "--env",
            f"PYTHONPATH={REPO}",
            "--connector",
            target,
            "--output-prefix",
            str(prefix),
            "--wait",
            timeout=180,
        )
        assert r.returncode == 0, r
        assert GREETING.format("Connector") in r.stdout
        job_id = r.stdout.splitlines()[0].strip()
        assert f"via connector {target}" in r.stderr and f"job {job_id} succeeded" in r.stderr
        assert " -> Done (SUCCEEDED)" in r.stderr  # the poller's lines, as without --connector
        assert f"job {job_id}: final cost " in r.stderr  # from the connector's custom_info
        assert (prefix / "outputs.pb").is_file()

        # Sandbox side: one job, created through the connector, with the --env override in it.
        job = sb.get_job(job_id)
        env = job["docker_metadata"]["docker_run_parameters"]["env_variables"]
        assert env["PYTHONPATH"] == str(REPO) and env["PERIANCTL_IDEMPOTENCY_KEY"].startswith("pk1-a-")
        assert sb.stats()["jobs_created"] == 1

        r = run_cli("get", job_id, "--connector", target)
        assert r.returncode == 0, r
        assert job_id in r.stdout and "SUCCEEDED" in r.stdout and "Done" in r.stdout
        r = run_cli("get", job_id, "--connector", target, "-o", "json")
        record = json.loads(r.stdout)
        assert record["phase"] == "SUCCEEDED" and record["status"] == "Done" and record["id"] == job_id
        assert record["custom_info"]["terminal"] is True
        assert record["log_links"][0]["uri"].endswith(job_id)
        r = run_cli("get", "--last", "--connector", target, "-o", "name")
        assert r.stdout.strip() == job_id, r

        r = run_cli("logs", job_id, "--connector", target)
        assert r.returncode == 0, r
        r = run_cli("logs", job_id, "--connector", target, "--follow", "--tail", "0")
        assert r.returncode == 0 and "finished: SUCCEEDED" in r.stderr and r.stdout == "", r

        for _ in range(2):  # idempotent: a finished job is fine, twice
            r = run_cli("delete", job_id, "--connector", target, "--yes")
            assert r.returncode == 0, r
            assert "DeleteTask OK" in r.stderr
        assert sb.get_job(job_id)["status"] == "Done"

        # The profile/env setting is the default; '' turns it off (then the API path needs credentials).
        r = run_cli("get", job_id, "-o", "json", env={"PERIANCTL_CONNECTOR": target})
        assert json.loads(r.stdout)["phase"] == "SUCCEEDED", r
        r = run_cli("get", job_id, "--connector", "", env={"PERIANCTL_CONNECTOR": target})
        assert_one_line_error(r, 2)  # no PERIAN credentials in this CLI environment

        # A failing task: exit 3 and the task's own error, still without credentials.
        r = run_cli(
            "submit",
            str(TEMPLATES / "fail.pb"),
            "--input",
            "name=Bob",
            "--env",
            f"PYTHONPATH={REPO}",
            "--connector",
            target,
            "--output-prefix",
            str(tmp_path / "fail-run"),
            "--wait",
            timeout=180,
        )
        assert r.returncode == 3, r
        assert "perianctl example failure" in r.stderr and "Traceback" not in r.stderr
    finally:
        code, err = serve.terminate()
    assert code == 0, err
