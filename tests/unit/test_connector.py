"""Pure parts of the connector: secrets lookup, idempotency keys, resource meta, registration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flyteidl.admin import agent_pb2

from perianctl.connector import grpc_client as gc
from perianctl.connector.idempotency import execution_ref, idempotency_for, strip_attempt
from perianctl.connector.secrets import Credentials, env_credentials, resolve_secrets
from tests.support.connector import execution_metadata, output_prefix, perian_template

# ---------------------------------------------------------------------- secrets


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"FLYTE_SECRETS_DEFAULT_DIR": str(tmp_path), "PERIANCTL_CONFIG": str(tmp_path / "none.toml"), **extra}


def test_secret_lookup_order_env_then_file_then_config(tmp_path: Path) -> None:
    (tmp_path / "perian_token").write_text("from-file\n")
    (tmp_path / "perian_organization").write_text("org-file")
    (tmp_path / "aws_access_key_id").write_text("AKIAFILE")
    env = _env(tmp_path, _FSEC_PERIAN_TOKEN="from-env", PERIAN_ORGANIZATION="org-config")
    resolved = resolve_secrets(environ=env)
    assert resolved.token == "from-env" and resolved.sources["perian_token"] == "env _FSEC_PERIAN_TOKEN"
    assert resolved.organization == "org-file"  # a mounted secret beats perianctl's own settings
    assert resolved.sources["perian_organization"] == f"file {tmp_path / 'perian_organization'}"
    assert resolved.get("aws_access_key_id") == "AKIAFILE"
    assert "from-env" not in repr(resolved) and "from-env" not in resolved.describe()

    bare = _env(tmp_path / "empty", PERIAN_ORGANIZATION="o", PERIAN_TOKEN="t-123")
    assert resolve_secrets(environ=bare).token is None  # PERIAN_* only through a fallback the connector is given
    fallback = resolve_secrets(environ=bare, fallback=env_credentials(bare))
    assert (fallback.organization, fallback.token) == ("o", "t-123")
    assert fallback.sources["perian_token"] == "env PERIAN_TOKEN"
    given = Credentials(organization="o2", token="t-2", sources={"token": "profile p"})
    assert resolve_secrets(environ=env, fallback=given).organization == "org-file"  # mounted secrets first
    assert resolve_secrets(environ=bare, fallback=given).sources["perian_token"] == "profile p"
    explicit = resolve_secrets(organization="x", token="y-123", environ=env)
    assert (explicit.organization, explicit.token) == ("x", "y-123")


def test_secret_prefixes_and_no_bare_env_for_storage_keys(tmp_path: Path) -> None:
    (tmp_path / "pfx_perian_token").write_text("tok")
    env = _env(
        tmp_path,
        FLYTE_SECRETS_FILE_PREFIX="pfx_",
        FLYTE_SECRETS_ENV_PREFIX="MY_",
        MY_PERIAN_ORGANIZATION="org",
        AWS_ACCESS_KEY_ID="pod-own-key",
        _FSEC_AWS_SECRET_ACCESS_KEY="ignored",
    )
    resolved = resolve_secrets(environ=env)
    assert (resolved.organization, resolved.token) == ("org", "tok")
    assert resolved.get("aws_access_key_id") is None  # the pod's own AWS variables are never forwarded
    assert resolved.get("aws_secret_access_key") is None  # the prefix is MY_ here, not _FSEC_
    (tmp_path / "pfx_perian_organization").write_text("   \n")
    assert resolve_secrets(environ={**env, "MY_PERIAN_ORGANIZATION": ""}).organization is None  # blank = missing


def test_job_secrets_for_the_translator(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        _FSEC_AWS_ACCESS_KEY_ID="AKIA",
        _FSEC_AWS_SECRET_ACCESS_KEY="s3cr3t",
        _FSEC_DOCKER_REGISTRY_URL="ghcr.io",
    )
    job = resolve_secrets(environ=env).job_secrets()
    assert (job.aws_access_key_id, job.aws_secret_access_key, job.docker_registry_url) == ("AKIA", "s3cr3t", "ghcr.io")
    assert job.google_application_credentials is None


# ---------------------------------------------------------------------- idempotency


def test_attempt_key_and_node_tag() -> None:
    template = perian_template()
    exec_a = "aaaaaaaaaaaaaaaaaaaa"
    k0 = idempotency_for(execution_metadata(template, exec_a, attempt=0), output_prefix(exec_a, attempt=0))
    k0_again = idempotency_for(execution_metadata(template, exec_a, attempt=0), output_prefix(exec_a, attempt=0))
    k1 = idempotency_for(execution_metadata(template, exec_a, attempt=1), output_prefix(exec_a, attempt=1))
    other_node = idempotency_for(execution_metadata(template, exec_a, node="n1"), output_prefix(exec_a, "n1"))
    other_exec = idempotency_for(execution_metadata(template, "b" * 20), output_prefix("b" * 20))
    assert k0 == k0_again
    assert k0.key != k1.key and k0.node_tag == k1.node_tag and (k0.attempt, k1.attempt) == (0, 1)
    assert len({k0.node_tag, other_node.node_tag, other_exec.node_tag}) == 3
    assert k0.key.startswith("pk1-a-") and len(k0.key) == 30
    env = k1.env()
    assert env["PERIANCTL_FLYTE_ATTEMPT"] == "1" and env["FLYTE_INTERNAL_EXECUTION_ID"] == exec_a
    assert env["PERIANCTL_FLYTE_EXECUTION"] == f"flytesnacks/development/{exec_a}/n0#1"


def test_array_subtasks_share_node_id_but_not_keys() -> None:
    template = perian_template()
    meta = execution_metadata(template, "c" * 20)
    a = idempotency_for(meta, "s3://b/m/n0/data/0/0/0")
    b = idempotency_for(meta, "s3://b/m/n0/data/0/1/0")
    assert a.key != b.key and a.node_tag != b.node_tag


def test_without_metadata_the_output_prefix_is_the_key() -> None:
    empty = agent_pb2.TaskExecutionMetadata()  # what flytekit's servicer makes of a missing message
    assert execution_ref(empty) is None and execution_ref(None) is None
    a = idempotency_for(empty, "s3://bucket/raw/abc")
    assert a == idempotency_for(None, "s3://bucket/raw/abc")
    assert a.key.startswith("pk1-o-") and a.node_tag is None and a.env() == {}
    assert a.key != idempotency_for(None, "s3://bucket/raw/abd").key


def test_flytekit_model_and_proto_give_the_same_key() -> None:
    from flytekit.models.task import TaskExecutionMetadata

    proto = execution_metadata(perian_template(), "d" * 20, attempt=2)
    model = TaskExecutionMetadata.from_flyte_idl(proto)
    assert idempotency_for(model, "p") == idempotency_for(proto, "p")


def test_strip_attempt() -> None:
    assert strip_attempt("s3://b/x/n0/data/2", 2) == "s3://b/x/n0/data"
    assert strip_attempt("s3://b/x/n0/data/2/", 2) == "s3://b/x/n0/data"
    assert strip_attempt("s3://b/x/n0/data/3", 2) == "s3://b/x/n0/data/3"


# ---------------------------------------------------------------------- resource meta


def test_resource_meta_is_the_official_format() -> None:
    from perianctl.connector.service import PerianMetadata

    meta = PerianMetadata(job_id="3f2c1a4e-0b1d-4c5e-9f00-1234567890ab")
    assert meta.encode() == b'{"job_id": "3f2c1a4e-0b1d-4c5e-9f00-1234567890ab"}'
    assert gc.resource_meta_for(meta.job_id) == meta.encode()
    assert PerianMetadata.decode(json.dumps({"job_id": "x", "v": 2, "output_prefix": "s3://"}).encode()).job_id == "x"
    for bad in (b"", b"[]", b'{"id": "x"}', b'{"job_id": ""}', b"\xff"):
        with pytest.raises(ValueError):
            PerianMetadata.decode(bad)
    assert gc.job_id_from_resource_meta(b'{"job_id": "y"}') == "y" and gc.job_id_from_resource_meta(b"x") is None


def test_route_label_has_bounded_cardinality() -> None:
    from perianctl.connector.service import _route

    assert _route("/job/3f2c1a4e-0b1d/cancel") == "/job/{id}/cancel"
    assert _route("/job") == "/job"
    assert _route("/instance-type/abc") == "/instance-type/{id}"


# ---------------------------------------------------------------------- registration


def test_register_twice_and_over_an_official_connector() -> None:
    from flytekit.extend.backend.base_connector import ConnectorRegistry

    from perianctl.connector.register import register
    from perianctl.connector.service import PerianConnector, PerianMetadata

    class OfficialLookalike(PerianConnector):
        name = "Perian Connector"

    saved_registry = dict(ConnectorRegistry._REGISTRY)
    saved_meta = dict(ConnectorRegistry._METADATA)
    try:
        ConnectorRegistry.register(OfficialLookalike(), override=True)  # as the official plugin would
        first = register(PerianConnector())
        second = register(PerianConnector())
        assert isinstance(second, PerianConnector) and first is not second
        assert ConnectorRegistry.get_connector("perian_task") is second
        advertisers = [a.name for a in ConnectorRegistry.list_connectors() if "perian_task" in a.supported_task_types]
        assert advertisers == ["PERIAN Connector (perianctl)"]
        assert second.metadata_type is PerianMetadata
    finally:
        ConnectorRegistry._REGISTRY.clear()
        ConnectorRegistry._REGISTRY.update(saved_registry)
        ConnectorRegistry._METADATA.clear()
        ConnectorRegistry._METADATA.update(saved_meta)


def test_synthetic_metadata_looks_like_propellers() -> None:
    template = perian_template()
    meta = gc.synthetic_execution_metadata(template, execution_name="e" * 20, node_id="n3", retry_attempt=1)
    tid = meta.task_execution_id
    assert tid.task_id.name == template.id.name and tid.task_id.resource_type == 1  # TASK
    assert (tid.node_execution_id.node_id, tid.retry_attempt) == ("n3", 1)
    assert meta.namespace == "flytesnacks-development"
    assert meta.labels["execution-id"] == "e" * 20
    name = gc.new_execution_name()
    assert len(name) == 20 and name[0].isalpha()
    request = gc.build_create_request(template, None, "s3://b/p")
    assert request.HasField("inputs") and request.task_execution_metadata.task_execution_id.node_execution_id.node_id


def test_settings_from_the_environment_are_read_at_every_refresh() -> None:
    from perianctl.connector.settings import ConnectorSettings
    from perianctl.envvars import DEFAULT_API_URL

    assert ConnectorSettings().fallback() is None
    assert ConnectorSettings().resolved_api_url() == DEFAULT_API_URL  # no source given: PERIAN's public API
    env = {"PERIAN_ENDPOINT": "http://127.0.0.1:7/", "PERIAN_ORG": "o", "PERIAN_TOKEN": "t-1"}
    settings = ConnectorSettings.from_env(env)
    fallback = settings.fallback()
    assert fallback is not None and (fallback.organization, fallback.token) == ("o", "t-1")
    assert settings.resolved_api_url(fallback) == "http://127.0.0.1:7"
    assert "t-1" not in repr(fallback) and "t-1" not in repr(settings)
    env["PERIAN_TOKEN"] = "t-2"  # rotated
    assert settings.fallback().token == "t-2"  # type: ignore[union-attr]
    explicit = ConnectorSettings(api_url="http://127.0.0.1:8", credentials=settings.credentials)
    assert explicit.resolved_api_url(explicit.fallback()) == "http://127.0.0.1:8"


# ---------------------------------------------------------------------- GetTask's Resource message


_JOBS = [
    {
        "id": "6f1c0d3e-1b7a-4c55-9d0e-5a1f2b3c4d5e",
        "status": "Running",
        "started_at": "2026-11-28T06:27:40.538Z",
        "price": {"unit_price": "0.000006", "currency": "EUR", "granularity": "PER_SECOND"},
        "runtime_metadata": {"instance_type_id": "it-standard-small", "provider": "aws"},
    },
    {
        "id": "0b9e8f7a-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
        "status": "Done",
        "started_at": "2026-11-28T06:00:00Z",
        "done_at": "2026-11-28T06:20:00.250Z",
        "price": {"unit_price": "1.0", "currency": "EUR", "granularity": "PER_10_MINUTES"},
    },
    {"id": "job-ü-✓", "status": "ServerError", "errors": "OOMKilled\nsecond line", "price": None},
    {"id": "queued", "status": "Queued"},
]


@pytest.mark.parametrize("raw", _JOBS, ids=lambda raw: raw["status"])
def test_get_task_resource_is_what_flytekit_builds(raw: dict[str, object]) -> None:
    """servicers.resource_pb builds custom_info without flytekit's JSON round trip: same bytes."""
    import asyncio

    from flyteidl.core.execution_pb2 import TaskLog
    from flytekit.extend.backend.base_connector import Resource

    from perianctl.connector.service import _custom_info
    from perianctl.connector.servicers import resource_pb
    from perianctl.flyte.phase import status_to_phase
    from perianctl.perian.models import JobView

    job = JobView.model_validate(raw)
    info = status_to_phase(job.status, errors=job.errors)
    custom = _custom_info(str(raw["id"]), job, info)
    assert custom["job_id"] == raw["id"]
    variants = [
        Resource(
            phase=int(info.phase),
            message=info.message,
            custom_info=custom,
            log_links=[TaskLog(uri="http://logs.example/1", name="PERIAN job")],
        ),
        Resource(
            phase=int(info.phase),
            message=None,
            custom_info={**custom, "nested": {"list": [1, 2.5, "x", None, True, {"k": []}]}},
        ),
        Resource(phase=int(info.phase), custom_info={}),
    ]
    for resource in variants:
        ours, theirs = asyncio.run(resource_pb(resource)), asyncio.run(resource.to_flyte_idl())
        assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)
        assert ours == theirs


@pytest.mark.parametrize("raw", _JOBS, ids=lambda raw: raw["status"])
def test_flyte2_resource_custom_info_is_what_json_format_builds(raw: dict[str, object]) -> None:
    from flytekit.extend.backend.base_connector import Resource
    from google.protobuf import json_format
    from google.protobuf.struct_pb2 import Struct

    from perianctl.connector.service import _custom_info
    from perianctl.connector.v2 import resource_to_v2
    from perianctl.flyte.phase import status_to_phase
    from perianctl.perian.models import JobView

    job = JobView.model_validate(raw)
    info = status_to_phase(job.status, errors=job.errors)
    custom = {**_custom_info(str(raw["id"]), job, info), "nested": {"list": [1, 2.5, "x", None, True, {"k": []}]}}
    ours = resource_to_v2(Resource(phase=int(info.phase), message=info.message, custom_info=custom))
    expected = json_format.ParseDict(custom, Struct())
    assert ours.custom_info.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
    assert not resource_to_v2(Resource(phase=int(info.phase), custom_info={})).HasField("custom_info")
