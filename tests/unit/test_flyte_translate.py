"""Template → CreateJobRequest, parity with the official connector (flytekitplugins-perian-job 1.16.31): pure part.

Parity with the official connector's code and templates made by flytekit: tests/integration/test_flyte_translate.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flyteidl.core import tasks_pb2
from google.protobuf import duration_pb2

from perianctl.errors import ConfigError, TemplateError
from perianctl.flyte.translate import (
    GCP_CREDENTIALS_PATH,
    JobOverrides,
    JobSecrets,
    split_image,
    template_to_job_request,
)
from tests.support.translate import AWS, _official, _without_nulls

# The body the official connector (flytekitplugins-perian-job 1.16.31, SDK 0.5.3 models) sends.
DOC_BODY = json.loads(
    """{"auto_failover_instance_type":true,"os_storage_config":{"size":100},
 "requirements":{"all":false,"region":{"location":"DE"},"cpu":{"all":false,"cores":2},
   "accelerator":{"no":1,"name":"A100"},"ram":{"all":false,"size":"8"},"provider":{"name_short":"ovh"}},
 "docker_run_parameters":{"image_name":"ghcr.io/acme/flyte","image_tag":"abc",
   "command":"pyflyte-execute --inputs s3://b/in.pb","env_variables":{"FOO":"bar"},
   "secrets":{"AWS_ACCESS_KEY_ID":"...","AWS_SECRET_ACCESS_KEY":"..."}},
 "docker_registry_credentials":null}"""
)
OFFICIAL_CUSTOM: dict[str, Any] = {
    "cores": 2.0,  # a Struct stores numbers as doubles
    "memory": 8.0,
    "accelerators": 1.0,
    "accelerator_type": "A100",
    "country_code": "DE",
    "provider": "ovh",
    "os_storage_size": 100.0,
    "environment": {"FOO": "bar"},
}


def _template(
    custom: dict[str, Any] | None = None, *, image: str = "ghcr.io/acme/flyte:abc", args: list[str] | None = None
) -> tasks_pb2.TaskTemplate:
    tt = tasks_pb2.TaskTemplate(type="perian_task")
    tt.container.image = image
    tt.container.args.extend(args if args is not None else ["pyflyte-execute", "--inputs", "s3://b/in.pb"])
    if custom is not None:
        tt.custom.update(custom)
    return tt


def test_parity_with_documented_official_body() -> None:
    body = template_to_job_request(_template(OFFICIAL_CUSTOM), secrets=AWS).to_wire()
    assert _official(body) == _without_nulls(DOC_BODY)


def test_pyflyte_tasks_fail_on_error_but_explicit_setting_wins() -> None:
    """pyflyte-execute exits 0 after a task raised unless FLYTE_FAIL_ON_ERROR is set; PERIAN only sees exit codes."""
    env = template_to_job_request(_template({})).docker_run_parameters.env_variables
    assert env == {"FLYTE_FAIL_ON_ERROR": "true"}
    kept = template_to_job_request(_template({"environment": {"FLYTE_FAIL_ON_ERROR": "false"}}))
    assert kept.docker_run_parameters.env_variables == {"FLYTE_FAIL_ON_ERROR": "false"}
    plain = template_to_job_request(_template({}, args=["python", "train.py"]))
    assert plain.docker_run_parameters.env_variables is None


def test_no_requirement_keys_gives_minimal_requirements() -> None:
    body = template_to_job_request(_template()).to_wire()
    assert body["requirements"] == {"all": False}
    assert "instance_type_id" not in body
    with_id = template_to_job_request(_template(), overrides=JobOverrides(instance_type_id="it-1")).to_wire()
    assert with_id["instance_type_id"] == "it-1"
    assert "requirements" not in with_id
    both = template_to_job_request(_template({"cores": 4}), overrides=JobOverrides(instance_type_id="it-1")).to_wire()
    assert both["instance_type_id"] == "it-1" and both["requirements"]["cpu"]["cores"] == 4


def test_overrides_win() -> None:
    overrides = JobOverrides(
        cores=8,
        memory="32Gi",
        accelerators=2,
        accelerator_type="H100",
        country_code="fr",
        provider="gcp",
        os_storage_size=500,
        timeout_seconds=3600,
        image="registry:5000/team/img",
        env={"FOO": "override", "NEW": "1"},
    )
    body = template_to_job_request(_template(OFFICIAL_CUSTOM), overrides=overrides).to_wire()
    assert body["requirements"] == {
        "all": False,
        "cpu": {"all": False, "cores": 8},
        "ram": {"all": False, "size": "32"},
        "accelerator": {"no": 2, "name": "H100"},
        "region": {"location": "FR"},
        "provider": {"name_short": "gcp"},
    }
    assert body["os_storage_config"] == {"size": 500}
    assert body["timeout_seconds"] == 3600
    params = body["docker_run_parameters"]
    assert (params["image_name"], params.get("image_tag")) == ("registry:5000/team/img", None)
    assert params["env_variables"] == {"FOO": "override", "NEW": "1", "FLYTE_FAIL_ON_ERROR": "true"}


def test_environment_merge_order() -> None:
    tt = _template({"environment": {"B": "custom", "C": 3.0}})
    tt.container.env.add(key="A", value="container")
    tt.container.env.add(key="B", value="container")
    body = template_to_job_request(tt, overrides=JobOverrides(env={"C": "flag"})).to_wire()
    assert body["docker_run_parameters"]["env_variables"] == {
        "A": "container",
        "B": "custom",
        "C": "flag",
        "FLYTE_FAIL_ON_ERROR": "true",
    }


def test_timeout_from_template_metadata() -> None:
    tt = _template()
    tt.metadata.timeout.CopyFrom(duration_pb2.Duration(seconds=90, nanos=1))
    assert template_to_job_request(tt).timeout_seconds == 91
    assert template_to_job_request(tt, overrides=JobOverrides(timeout_seconds=10)).timeout_seconds == 10
    assert template_to_job_request(_template()).timeout_seconds is None


@pytest.mark.parametrize(
    ("memory", "size"),
    [
        (8.0, "8"),
        (0.5, "0.5"),
        ("16", "16"),
        ("16G", "16"),
        ("16Gi", "16"),
        ("16GB", "16"),
        ("512Mi", "0.5"),
        ("1T", "1024"),
        (0, None),
    ],
)
def test_memory_forms(memory: Any, size: str | None) -> None:
    body = template_to_job_request(_template({"memory": memory})).to_wire()
    assert body["requirements"].get("ram", {}).get("size") == size


def test_zero_counts_mean_unset_like_official() -> None:
    body = template_to_job_request(_template({"cores": 0, "accelerators": 0, "os_storage_size": 0})).to_wire()
    assert body["requirements"] == {"all": False}
    assert "os_storage_config" not in body


@pytest.mark.parametrize(
    ("image", "name", "tag"),
    [
        ("ubuntu", "ubuntu", None),
        ("ubuntu:22.04", "ubuntu", "22.04"),
        ("ghcr.io/acme/flyte:abc", "ghcr.io/acme/flyte", "abc"),
        ("host:5000/img", "host:5000/img", None),
        ("host:5000/img:v1", "host:5000/img", "v1"),
        ("img@sha256:0123abcd", "img@sha256:0123abcd", None),
        ("localhost:5000/a/b:c", "localhost:5000/a/b", "c"),
    ],
)
def test_split_image(image: str, name: str, tag: str | None) -> None:
    assert split_image(image) == (name, tag)


@pytest.mark.parametrize("image", ["", "  ", "img:", ":tag", "has space:1"])
def test_bad_images(image: str) -> None:
    with pytest.raises(TemplateError):
        split_image(image)


def test_gcp_and_registry_secrets() -> None:
    secrets = JobSecrets(
        google_application_credentials='{"type": "service_account"}',
        docker_registry_url="https://ghcr.io",
        docker_registry_username="bot",
        docker_registry_password="pw",
    )
    body = template_to_job_request(_template(), secrets=secrets).to_wire()
    params = body["docker_run_parameters"]
    assert params["secrets"] == {"GOOGLE_APPLICATION_CREDENTIALS": GCP_CREDENTIALS_PATH}
    (file,) = params["container_files"]
    assert file["path"] == GCP_CREDENTIALS_PATH and file["read_only"] is False
    assert base64.b64decode(file["base64_content"]).decode() == '{"type": "service_account"}'
    assert body["docker_registry_credentials"] == {"url": "https://ghcr.io", "username": "bot", "password": "pw"}
    # AWS keys take precedence over GCP, as in the official connector.
    both = JobSecrets(aws_access_key_id="a", aws_secret_access_key="b", google_application_credentials="{}")
    params = template_to_job_request(_template(), secrets=both).to_wire()["docker_run_parameters"]
    assert params["secrets"] == {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    assert "container_files" not in params


def test_incomplete_aws_secrets() -> None:
    with pytest.raises(ConfigError, match="aws_secret_access_key"):
        template_to_job_request(_template(), secrets=JobSecrets(aws_access_key_id="a"))


def test_secrets_repr_is_redacted() -> None:
    secrets = JobSecrets(aws_access_key_id="AKIASECRET", docker_registry_password="hunter2")
    for text in (repr(secrets), str(secrets), f"{secrets}", repr([secrets])):
        assert "AKIASECRET" not in text and "hunter2" not in text
        assert "aws_access_key_id=<redacted>" in text
        assert "google_application_credentials=None" in text


@pytest.mark.parametrize(
    ("custom", "match"),
    [
        ({"cores": -1}, "custom .cores. must not be negative"),
        ({"cores": 2.5}, "whole number"),
        ({"cores": "many"}, "whole number"),
        ({"cores": True}, "whole number"),
        ({"accelerators": -2}, "negative"),
        ({"memory": -4}, "negative"),
        ({"memory": "lots"}, "size"),
        ({"memory": [1]}, "size"),
        ({"os_storage_size": 1e12}, "too large"),
        ({"country_code": "DEU"}, "two letters"),
        ({"country_code": "1A"}, "two letters"),
        ({"environment": ["A=1"]}, "environment"),
        ({"environment": {"A": {"x": 1}}}, "environment"),
        ({"command": {"x": 1}}, "command"),
    ],
)
def test_nonsense_custom_values(custom: dict[str, Any], match: str) -> None:
    tt = _template(custom)
    if "command" in custom:
        tt.ClearField("container")
        tt.custom.update({"image": "ubuntu"})
    with pytest.raises(TemplateError, match=match):
        template_to_job_request(tt)


def test_override_errors_name_the_flag() -> None:
    with pytest.raises(TemplateError, match="--cores must not be negative"):
        template_to_job_request(_template(), overrides=JobOverrides(cores=-1))
    with pytest.raises(TemplateError, match="timeout"):
        template_to_job_request(_template(), overrides=JobOverrides(timeout_seconds=0))
    with pytest.raises(TemplateError, match="two letters"):
        template_to_job_request(_template(), overrides=JobOverrides(country_code="Germany"))


def test_country_code_is_upper_cased() -> None:
    body = template_to_job_request(_template({"country_code": "de"})).to_wire()
    assert body["requirements"]["region"] == {"location": "DE"}


def test_no_image_and_no_container() -> None:
    tt = tasks_pb2.TaskTemplate(type="perian_task")
    tt.custom.update({"cores": 1})
    with pytest.raises(TemplateError, match="no container image"):
        template_to_job_request(tt)
    assert template_to_job_request(tt, overrides=JobOverrides(image="busybox")).docker_run_parameters.image_name == (
        "busybox"
    )


def test_container_command_and_string_custom_command() -> None:
    tt = _template(args=["--flag", "a b"])
    tt.container.command.extend(["python", "-m", "x"])
    assert template_to_job_request(tt).docker_run_parameters.command == "python -m x --flag 'a b'"
    bare = tasks_pb2.TaskTemplate(type="perian_task")
    bare.custom.update({"image": "busybox", "command": "echo hi && sleep 1"})
    assert template_to_job_request(bare).docker_run_parameters.command == "echo hi && sleep 1"
    no_cmd = _template(args=[])
    assert template_to_job_request(no_cmd).docker_run_parameters.command is None
