"""``submit/get/delete/logs --connector``: the CLI as a flytepropeller stand-in, over real gRPC.

* :func:`apply_overrides` (pure): CLI flags travel inside the template, and the connector's
  translation of the overridden template equals the direct path's translation with the flags.
* The README demo through ``perianctl serve``: a real sandbox (process runtime runs
  ``pyflyte-execute``), a real ``serve`` subprocess, and CLI subprocesses with **no PERIAN
  credentials**, so every answer must have come through the connector.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flyteidl.core import tasks_pb2
from google.protobuf import json_format

from perianctl.errors import TemplateError
from perianctl.flyte.templates import load_template
from perianctl.flyte.translate import JobOverrides, apply_overrides, template_to_job_request
from tests.plugins.cli import CliRunner, assert_one_line_error
from tests.plugins.sandbox import SandboxFactory
from tests.support import connector as support

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "examples" / "templates"
GREETING = "o0 = Hello, {}! Greetings from a PERIAN job."

pytestmark = pytest.mark.timeout(120)

FULL = JobOverrides(cores=8, memory=32, accelerators=2, accelerator_type="H100", country_code="fr",
                    provider="ovh", os_storage_size=200, timeout_seconds=90, image="registry:5000/team/img:v2",
                    env={"A": "1", "FLYTE_FAIL_ON_ERROR": "false"})


def _hello() -> tasks_pb2.TaskTemplate:
    return load_template(str(TEMPLATES / "hello.pb")).template


# ---------------------------------------------------------------------- apply_overrides (pure)


@pytest.mark.parametrize("overrides", [
    FULL,
    JobOverrides(),
    JobOverrides(env={"ONLY": "env"}),
    JobOverrides(memory="512Mi", accelerators=0, country_code="de"),
    JobOverrides(timeout_seconds=1),
])
def test_overridden_template_translates_like_the_direct_path(overrides: JobOverrides) -> None:
    for template in (_hello(), support.perian_template("success")):
        direct = template_to_job_request(template, overrides=overrides).to_wire()
        via_template = template_to_job_request(apply_overrides(template, overrides)).to_wire()
        assert via_template == direct


def test_overrides_land_where_every_connector_reads_them() -> None:
    template = _hello()
    before = template.SerializeToString()
    out = apply_overrides(template, FULL)
    assert template.SerializeToString() == before  # a copy; the input is untouched
    custom = json_format.MessageToDict(out.custom)
    assert {k: custom[k] for k in ("cores", "memory", "accelerators", "accelerator_type", "country_code",
                                   "provider", "os_storage_size")} == {
        "cores": 8, "memory": 32, "accelerators": 2, "accelerator_type": "H100", "country_code": "FR",
        "provider": "ovh", "os_storage_size": 200}
    # The official connector reads only custom["environment"]; ours reads container.env too.
    assert custom["environment"] == {"FLYTE_FAIL_ON_ERROR": "false", "A": "1"}
    env = {kv.key: kv.value for kv in out.container.env}
    assert env == {"FLYTE_FAIL_ON_ERROR": "false", "A": "1"} and len(out.container.env) == 2
    assert out.container.image == "registry:5000/team/img:v2" and "image" not in custom
    assert out.metadata.timeout.seconds == 90
    # Untouched parts stay byte-identical.
    assert out.interface == template.interface and list(out.container.args) == list(template.container.args)


def test_container_less_template_gets_custom_image() -> None:
    template = tasks_pb2.TaskTemplate(type="perian_task")
    template.custom.update({"image": "ubuntu:22.04", "command": ["echo", "hi"]})
    out = apply_overrides(template, JobOverrides(image="debian:12", env={"X": "y"}))
    assert json_format.MessageToDict(out.custom)["image"] == "debian:12"
    assert json_format.MessageToDict(out.custom)["environment"] == {"X": "y"}
    assert not out.HasField("container")


@pytest.mark.parametrize(("overrides", "fragment"), [
    (JobOverrides(instance_type_id="abc"), "--instance-type-id"),
    (JobOverrides(country_code="Germany"), "two letters"),
    (JobOverrides(memory="lots"), "--memory"),
    (JobOverrides(image="bad image"), "invalid container image"),
    (JobOverrides(timeout_seconds=0), "positive"),
])
def test_bad_overrides_fail_before_anything_is_sent(overrides: JobOverrides, fragment: str) -> None:
    with pytest.raises(TemplateError, match=fragment):
        apply_overrides(_hello(), overrides)


# ---------------------------------------------------------------------- the CLI without a server


def test_dry_run_shows_the_overrides_in_the_create_task_request(run_cli: CliRunner, tmp_path: Path) -> None:
    r = run_cli("submit", str(TEMPLATES / "hello.pb"), "-i", "name=Dry", "--connector", "127.0.0.1:1", "--dry-run",
                "--env", "A=B", "--cores", "4", "--timeout", "5m", "--image", "ghcr.io/acme/img:1",
                "--output-prefix", str(tmp_path / "dry"))
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
    r = run_cli("submit", str(TEMPLATES / "hello.pb"), "-i", "name=X", "--connector", "127.0.0.1:1",
                "--instance-type-id", "abc", "--dry-run")
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
        r = run_cli("submit", str(TEMPLATES / "hello.pb"), "--input", "name=Connector", "--env", f"PYTHONPATH={REPO}",
                    "--connector", target, "--output-prefix", str(prefix), "--wait", timeout=180)
        assert r.returncode == 0, r
        assert GREETING.format("Connector") in r.stdout
        job_id = r.stdout.splitlines()[0].strip()
        assert f"via connector {target}" in r.stderr and f"job {job_id}: SUCCEEDED" in r.stderr
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
        r = run_cli("submit", str(TEMPLATES / "fail.pb"), "--input", "name=Bob", "--env", f"PYTHONPATH={REPO}",
                    "--connector", target, "--output-prefix", str(tmp_path / "fail-run"), "--wait", timeout=180)
        assert r.returncode == 3, r
        assert "perianctl example failure" in r.stderr and "Traceback" not in r.stderr
    finally:
        code, err = serve.terminate()
    assert code == 0, err
