"""Template → CreateJobRequest, with parity to the official connector (perian-api.md §9.3)."""

from __future__ import annotations

import base64
import json
import os
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flyteidl.core import tasks_pb2
from google.protobuf import duration_pb2

from perianctl.errors import ConfigError, TemplateError
from perianctl.flyte.inputs import build_inputs
from perianctl.flyte.render import RenderContext, render_template
from perianctl.flyte.translate import (
    GCP_CREDENTIALS_PATH,
    JobOverrides,
    JobSecrets,
    split_image,
    template_to_job_request,
)
from tests.support.flyte import FlyteArtifacts, build_artifacts, serialize

OFFICIAL_WHEEL = Path(
    os.environ.get("PERIANCTL_OFFICIAL_PLUGIN_WHEEL", "/tmp/dl/flytekitplugins_perian_job-1.16.31-py3-none-any.whl")
)

# The body perian-api.md §9.3 observed from the official connector (SDK 0.5.3 models).
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
AWS = JobSecrets(aws_access_key_id="...", aws_secret_access_key="...")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> FlyteArtifacts:
    return build_artifacts(tmp_path_factory.mktemp("flyte"))


def _template(
    custom: dict[str, Any] | None = None, *, image: str = "ghcr.io/acme/flyte:abc", args: list[str] | None = None
) -> tasks_pb2.TaskTemplate:
    tt = tasks_pb2.TaskTemplate(type="perian_task")
    tt.container.image = image
    tt.container.args.extend(args if args is not None else ["pyflyte-execute", "--inputs", "s3://b/in.pb"])
    if custom is not None:
        tt.custom.update(custom)
    return tt


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def _official(body: dict[str, Any]) -> dict[str, Any]:
    """Our body minus the one deliberate addition: FLYTE_FAIL_ON_ERROR for pyflyte-execute commands."""
    env = body.get("docker_run_parameters", {}).get("env_variables")
    if env is not None:
        assert env.pop("FLYTE_FAIL_ON_ERROR") == "true"
        if not env:
            del body["docker_run_parameters"]["env_variables"]
    return body


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


def _official_connector(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The official connector's class, from its published source (see the parity test)."""
    if not OFFICIAL_WHEEL.is_file():
        pytest.skip(f"official plugin wheel not available at {OFFICIAL_WHEEL}")
    perian = pytest.importorskip("perian")
    monkeypatch.setattr(perian, "JobStatus", perian.WorkloadStatus, raising=False)
    with zipfile.ZipFile(OFFICIAL_WHEEL) as wheel:
        source = wheel.read("flytekitplugins/perian_job/connector.py").decode()
    source = source.replace("ConnectorRegistry.register(PerianConnector())", "")
    module = types.ModuleType("official_perian_connector")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(source, "official_connector.py", "exec"), module.__dict__)
    return module.PerianConnector()


def test_official_connector_ignores_the_budget_keys(
    artifacts: FlyteArtifacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PerianConfig(max_price_per_hour=..., max_cost=...) templates still run on the official connector."""
    connector = _official_connector(monkeypatch)
    from flytekit.models.task import TaskTemplate

    monkeypatch.setenv("_FSEC_AWS_ACCESS_KEY_ID", "AKIA")
    monkeypatch.setenv("_FSEC_AWS_SECRET_ACCESS_KEY", "s3cr3t")
    plain = artifacts.templates["gpu_hello"]
    budgeted = tasks_pb2.TaskTemplate()
    budgeted.CopyFrom(plain)
    budgeted.custom["max_price_per_hour"] = "2.5"
    budgeted.custom["max_cost"] = "12"
    theirs = [connector._build_create_job_request(TaskTemplate.from_flyte_idl(t), None).to_dict()
              for t in (plain, budgeted)]
    assert theirs[0] == theirs[1]


def test_parity_with_official_connector_code(
    artifacts: FlyteArtifacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the official connector's own request builder on the same flytekit-made template.

    The plugin cannot be imported as installed (it imports ``perian.JobStatus``, gone since
    perian 0.3), so its source is executed with that one name provided and without its global
    registration; everything else is the published code and the real perian SDK models.
    """
    connector = _official_connector(monkeypatch)

    from flytekit.models.task import TaskTemplate

    monkeypatch.setenv("_FSEC_AWS_ACCESS_KEY_ID", "AKIA")
    monkeypatch.setenv("_FSEC_AWS_SECRET_ACCESS_KEY", "s3cr3t")
    secrets = JobSecrets(aws_access_key_id="AKIA", aws_secret_access_key="s3cr3t")
    for name in ("gpu_hello", "add"):
        tt = artifacts.templates[name]
        theirs = connector._build_create_job_request(TaskTemplate.from_flyte_idl(tt), None).to_dict()
        ours = _official(template_to_job_request(tt, secrets=secrets).to_wire())
        # The only representational difference: SDK Size(8.0) dumps as a number, ours as "8";
        # PERIAN's Size accepts both (perian-api.md §4.2).
        ram = theirs.get("requirements", {}).get("ram")
        if ram:
            ram["size"] = str(int(ram["size"]))
        assert ours == _without_nulls(theirs), name

    # Container-less template: the official connector renders {{.inputs.x}} itself.
    echo = artifacts.templates["echo"]
    from flytekit import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine
    from flytekit.models.literals import LiteralMap

    lm = build_inputs(echo.interface, ["name=world", "count=3"], None)
    kwargs = TypeEngine.literal_map_to_kwargs(
        FlyteContextManager.current_context(),
        LiteralMap.from_flyte_idl(lm),
        literal_types=TaskTemplate.from_flyte_idl(echo).interface.inputs,
    )
    theirs = connector._build_create_job_request(TaskTemplate.from_flyte_idl(echo), kwargs).to_dict()
    ours = template_to_job_request(render_template(echo, RenderContext(inputs=lm)), secrets=secrets).to_wire()
    theirs["requirements"]["ram"]["size"] = str(int(theirs["requirements"]["ram"]["size"]))
    # The official connector only knows the exact spelling ``{{.inputs.x}}``; we render every
    # spelling propeller accepts, so its leftover ``{{ .Inputs.count }}`` is our ``3``.
    params = theirs["docker_run_parameters"]
    assert params["command"] == "echo hello world '{{ .Inputs.count }}'"
    params["command"] = "echo hello world 3"
    assert ours == _without_nulls(theirs)


def test_flytekit_made_perian_template(artifacts: FlyteArtifacts) -> None:
    tt = render_template(artifacts.templates["gpu_hello"], RenderContext.for_output_prefix("s3://b/o"))
    body = template_to_job_request(tt).to_wire()
    assert body["requirements"] == {
        "all": False,
        "cpu": {"all": False, "cores": 2},
        "ram": {"all": False, "size": "8"},
        "accelerator": {"no": 1, "name": "A100"},
        "region": {"location": "DE"},
    }
    params = body["docker_run_parameters"]
    assert (params["image_name"], params["image_tag"]) == ("ghcr.io/acme/flyte", "abc")
    assert params["command"].startswith("pyflyte-execute --inputs s3://b/o/inputs.pb --output-prefix s3://b/o ")
    assert "--prev-checkpoint '\"\"'" in params["command"]
    assert params["env_variables"] == {"FOO": "bar", "FLYTE_FAIL_ON_ERROR": "true"}
    assert "secrets" not in params
    assert body["auto_failover_instance_type"] is True


def test_container_less_template_uses_custom_image_and_command(artifacts: FlyteArtifacts) -> None:
    echo = artifacts.templates["echo"]
    lm = build_inputs(echo.interface, ["name=two words", "count=3"], None)
    body = template_to_job_request(render_template(echo, RenderContext(inputs=lm))).to_wire()
    params = body["docker_run_parameters"]
    assert (params["image_name"], params["image_tag"]) == ("ubuntu", "22.04")
    assert params["command"] == "echo hello 'two words' 3"
    assert body["requirements"] == {"all": False, "cpu": {"all": False, "cores": 1}, "ram": {"all": False, "size": "2"}}


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
        "A": "container", "B": "custom", "C": "flag", "FLYTE_FAIL_ON_ERROR": "true"}


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


def test_pure_function_does_not_modify_template(artifacts: FlyteArtifacts) -> None:
    tt = artifacts.templates["gpu_hello"]
    before = tt.SerializeToString()
    first = template_to_job_request(tt, overrides=JobOverrides(cores=4), secrets=AWS).to_wire()
    second = template_to_job_request(tt, overrides=JobOverrides(cores=4), secrets=AWS).to_wire()
    assert first == second
    assert tt.SerializeToString() == before


def test_image_from_serialization_settings(artifacts: FlyteArtifacts) -> None:
    tt = serialize(artifacts.module, "add", image="host:5000/team/img:v2")
    params = template_to_job_request(tt).docker_run_parameters
    assert (params.image_name, params.image_tag) == ("host:5000/team/img", "v2")
