"""Domain rules written once and used by every path: the render layout, the env/secret merge, JSON safety."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from flyteidl.core import interface_pb2, literals_pb2, tasks_pb2, types_pb2
from google.protobuf import json_format

from perianctl.errors import ExitCode, InputError, TemplateError
from perianctl.flyte.inputs import build_inputs
from perianctl.flyte.launch import prepare_launch
from perianctl.flyte.render import RenderContext, render_template
from perianctl.flyte.templates import jsonable, template_from_dict
from perianctl.perian.models import CreateJobRequest, DockerRunParameters

# ---------------------------------------------------------------------- one render layout

_EVERY_PLACEHOLDER = [
    "run",
    "{{.input}}",
    "{{.inputPrefix}}",
    "{{.outputPrefix}}",
    "{{.rawOutputDataPrefix}}",
    "{{.checkpointOutputPrefix}}",
    "{{.prevCheckpointPrefix}}",
    "{{.inputs.name}}",
]


def _custom_command_template() -> tasks_pb2.TaskTemplate:
    """A container-less template (``PerianContainerTask`` style): propeller leaves its command to us."""
    template = tasks_pb2.TaskTemplate(type="perian_task")
    template.custom.update({"image": "busybox:1", "command": _EVERY_PLACEHOLDER})
    template.interface.inputs.variables["name"].type.simple = types_pb2.SimpleType.STRING
    return template


def _inputs() -> literals_pb2.LiteralMap:
    lm = literals_pb2.LiteralMap()
    lm.literals["name"].scalar.primitive.string_value = "world"
    return lm


def test_launch_layout() -> None:
    ctx = RenderContext.for_launch("s3://bucket/run/", inputs=_inputs())
    rendered = render_template(_custom_command_template(), ctx)
    assert list(rendered.custom["command"]) == [
        "run",
        "s3://bucket/run/inputs.pb",
        "s3://bucket/run",
        "s3://bucket/run",
        "s3://bucket/run/raw",
        "s3://bucket/run/checkpoint",
        '""',
        "world",
    ]


def test_submit_and_the_connector_render_a_custom_command_alike() -> None:
    """``submit`` renders the launch itself; the connector renders what propeller left: same places."""
    from perianctl.connector.secrets import ResolvedSecrets
    from perianctl.connector.service import _translate

    prefix = "s3://bucket/run"
    launch = prepare_launch(_custom_command_template(), _inputs(), prefix, run_id="r1", write_inputs=False)
    by_submit = list(launch.template.custom["command"])
    by_connector = _translate(_custom_command_template(), _inputs(), prefix, ResolvedSecrets())
    assert by_connector.docker_run_parameters.command is not None
    assert shlex.split(by_connector.docker_run_parameters.command) == by_submit
    assert by_submit[1] == f"{prefix}/inputs.pb" and by_submit[4] == f"{prefix}/raw"


def test_launch_fills_what_only_submit_knows() -> None:
    template = _custom_command_template()
    template.custom["command"] = ["{{.perRetryUniqueKey}}", "{{.taskTemplatePath}}", "{{.namespace}}"]
    launch = prepare_launch(template, _inputs(), "s3://b/p", run_id="7-run", write_inputs=False)
    assert list(launch.template.custom["command"]) == ["arun", "s3://b/p/task.pb", "perianctl"]
    connector = render_template(template, RenderContext.for_launch("s3://b/p"))
    assert list(connector.custom["command"]) == ["", "", ""]  # the connector does not know them


# ---------------------------------------------------------------------- one env/secret merge


def _request() -> CreateJobRequest:
    return CreateJobRequest(
        docker_run_parameters=DockerRunParameters(
            image_name="img", env_variables={"A": "template", "B": "template"}, secrets={"S": "storage"}
        )
    )


def test_env_under_yields_over_wins_and_secrets_are_laid_over() -> None:
    merged = _request().with_env(
        under={"A": "execution", "C": "execution"}, over={"B": "ours"}, secrets={"S": "flag", "T": "flag"}
    )
    params = merged.docker_run_parameters
    assert params.env_variables == {"A": "template", "B": "ours", "C": "execution"}
    assert params.secrets == {"S": "flag", "T": "flag"}
    assert _request().docker_run_parameters.env_variables == {"A": "template", "B": "template"}  # a copy


def test_merging_nothing_keeps_unset_fields_off_the_wire() -> None:
    bare = CreateJobRequest(docker_run_parameters=DockerRunParameters(image_name="img"))
    assert bare.with_env() is bare and bare.with_env(under={}, over={}, secrets={}) is bare
    wire = bare.with_env(over={"K": "v"}).to_wire()["docker_run_parameters"]
    assert wire["env_variables"] == {"K": "v"} and "secrets" not in wire


def test_the_idempotency_key_is_merged_the_same_way() -> None:
    from perianctl.perian.client import IDEMPOTENCY_ENV, with_idempotency_key

    keyed = with_idempotency_key(_request(), "k-1")
    assert keyed.docker_run_parameters.env_variables == {"A": "template", "B": "template", IDEMPOTENCY_ENV: "k-1"}


# ---------------------------------------------------------------------- one JSON-safety helper


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_invalid_input_with_their_place(bad: float) -> None:
    with pytest.raises(TemplateError) as caught:
        jsonable({"custom": {"env": [1, bad]}})
    assert caught.value.message == f"custom.env[1] is {bad}, not a finite number"
    assert caught.value.exit_code == ExitCode.USAGE


def test_yaml_types_become_json_types() -> None:
    document = {
        1: date(2024, 1, 2),
        "when": datetime(2024, 1, 2, 3, 4, tzinfo=UTC),
        "raw": b"\x00\xff",
        "xs": (1.5, "a"),
    }
    assert jsonable(document) == {
        "1": "2024-01-02",
        "when": "2024-01-02T03:04:00+00:00",
        "raw": "AP8=",
        "xs": [1.5, "a"],
    }


def test_a_template_with_nan_anywhere_is_refused() -> None:
    """Not only in ``custom`` (checked after parsing): every field of a JSON/YAML template."""
    document = {
        "type": "perian_task",
        "container": {"image": "x:1"},
        "custom": {"environment": {"A": "ok"}},
        "metadata": {"retries": {"retries": float("nan")}},
    }
    with pytest.raises(TemplateError, match=r"^t\.json: metadata\.retries\.retries is nan, not a finite number$"):
        template_from_dict(document, "t.json")


def test_an_input_with_nan_is_refused_as_an_input_error(tmp_path: Path) -> None:
    interface = interface_pb2.TypedInterface()
    interface.inputs.variables["st"].type.simple = types_pb2.SimpleType.STRUCT
    with pytest.raises(InputError, match="not a finite number") as caught:
        build_inputs(interface, ['st={"k": [1, NaN]}'], None)
    assert caught.value.exit_code == ExitCode.USAGE
    inputs_file = tmp_path / "inputs.yaml"
    inputs_file.write_text("st:\n  k: .nan\n")
    with pytest.raises(InputError, match="not a finite number"):
        build_inputs(interface, [], inputs_file)
    fine = build_inputs(interface, ['st={"k": [1, 2.5]}'], None)
    assert json.loads(json_format.MessageToJson(fine.literals["st"].scalar.generic)) == {"k": [1, 2.5]}
