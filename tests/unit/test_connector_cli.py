"""``--connector`` without a server: :func:`apply_overrides` (pure).

CLI flags travel inside the template, and the connector's translation of the overridden template
equals the direct path's translation with the flags. The CLI over real gRPC:
tests/integration/test_connector_cli.py.
"""

from __future__ import annotations

import pytest
from flyteidl.core import tasks_pb2
from google.protobuf import json_format

from perianctl.errors import TemplateError
from perianctl.flyte.templates import load_template
from perianctl.flyte.translate import JobOverrides, apply_overrides, template_to_job_request
from tests.support import connector as support
from tests.support.connector_cli import TEMPLATES

FULL = JobOverrides(
    cores=8,
    memory=32,
    accelerators=2,
    accelerator_type="H100",
    country_code="fr",
    provider="ovh",
    os_storage_size=200,
    timeout_seconds=90,
    image="registry:5000/team/img:v2",
    env={"A": "1", "FLYTE_FAIL_ON_ERROR": "false"},
)


def _hello() -> tasks_pb2.TaskTemplate:
    return load_template(str(TEMPLATES / "hello.pb")).template


# ---------------------------------------------------------------------- apply_overrides (pure)


@pytest.mark.parametrize(
    "overrides",
    [
        FULL,
        JobOverrides(),
        JobOverrides(env={"ONLY": "env"}),
        JobOverrides(memory="512Mi", accelerators=0, country_code="de"),
        JobOverrides(timeout_seconds=1),
    ],
)
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
    assert {
        k: custom[k]
        for k in ("cores", "memory", "accelerators", "accelerator_type", "country_code", "provider", "os_storage_size")
    } == {
        "cores": 8,
        "memory": 32,
        "accelerators": 2,
        "accelerator_type": "H100",
        "country_code": "FR",
        "provider": "ovh",
        "os_storage_size": 200,
    }
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


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (JobOverrides(instance_type_id="abc"), "--instance-type-id"),
        (JobOverrides(country_code="Germany"), "two letters"),
        (JobOverrides(memory="lots"), "--memory"),
        (JobOverrides(image="bad image"), "invalid container image"),
        (JobOverrides(timeout_seconds=0), "positive"),
    ],
)
def test_bad_overrides_fail_before_anything_is_sent(overrides: JobOverrides, fragment: str) -> None:
    with pytest.raises(TemplateError, match=fragment):
        apply_overrides(_hello(), overrides)
