"""Placeholder rendering, checked against propeller's template.Render behaviour (pure).

Rendering templates made by flytekit (a subprocess serializes them): tests/integration/test_flyte_render.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from flyteidl.core import literals_pb2, tasks_pb2, types_pb2

from perianctl.errors import InputError, TemplateError
from perianctl.flyte.inputs import build_inputs, go_float
from perianctl.flyte.render import RenderContext, render_args, render_template, sanitize_unique_key


def _ctx(**literals: literals_pb2.Literal) -> RenderContext:
    return RenderContext(
        input_path="s3://b/meta/inputs.pb",
        input_prefix="s3://b/meta",
        output_prefix="s3://b/meta/0",
        raw_output_prefix="s3://b/raw/xy",
        checkpoint_prefix="s3://b/raw/xy/_flytecheckpoints",
        prev_checkpoint_prefix="",
        per_retry_unique_key="0abc-def.1",
        task_template_path="s3://b/meta/task.pb",
        namespace="flytesnacks-development",
        inputs=literals_pb2.LiteralMap(literals=literals),
    )


def _int(value: int) -> literals_pb2.Literal:
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(integer=value)))


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("{{.input}}", "s3://b/meta/inputs.pb"),
        ("{{ .Input }}", "s3://b/meta/inputs.pb"),
        ("{{$input}}", "s3://b/meta/inputs.pb"),
        ("{{.INPUT}}", "s3://b/meta/inputs.pb"),
        ("--inputs={{.input}}", "--inputs=s3://b/meta/inputs.pb"),
        ("{{.inputPrefix}}", "s3://b/meta"),
        ("{{.outputPrefix}}", "s3://b/meta/0"),
        ("{{   .OutputPrefix   }}", "s3://b/meta/0"),
        ("{{.rawOutputDataPrefix}}", "s3://b/raw/xy"),
        ("{{.checkpointOutputPrefix}}", "s3://b/raw/xy/_flytecheckpoints"),
        ("{{.prevCheckpointPrefix}}", '""'),
        ("{{.perRetryUniqueKey}}", "aabc_def_1"),
        ("{{.taskTemplatePath}}", "s3://b/meta/task.pb"),
        ("{{.namespace}}", "flytesnacks-development"),
        ("{{.outputPrefix}}/{{.namespace}}", "s3://b/meta/0/flytesnacks-development"),
        # Not placeholders propeller knows: left alone.
        ("{{ .remote_package_path }}", "{{ .remote_package_path }}"),
        ("{{.dest_dir}}", "{{.dest_dir}}"),
        ("{{input}}", "{{input}}"),
        ("{{.inputz}}", "{{.inputz}}"),
        ("{.input}", "{.input}"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_placeholders_like_propeller(arg: str, expected: str) -> None:
    assert render_args([arg], _ctx(a=_int(1))) == [expected]


def test_prev_checkpoint_when_present() -> None:
    ctx = _ctx()
    ctx.prev_checkpoint_prefix = "s3://b/prev"
    assert render_args(["{{.prevCheckpointPrefix}}"], ctx) == ["s3://b/prev"]


def test_none_fields_leave_placeholders() -> None:
    ctx = RenderContext(output_prefix="s3://o")
    assert render_args(["{{.input}}", "{{.outputPrefix}}", "{{.namespace}}"], ctx) == [
        "{{.input}}",
        "s3://o",
        "{{.namespace}}",
    ]


def test_values_are_inserted_literally() -> None:
    ctx = RenderContext(output_prefix=r"s3://b/$1/\g<0>")
    assert render_args(["{{.outputPrefix}}"], ctx) == [r"s3://b/$1/\g<0>"]


def test_sanitize_unique_key() -> None:
    assert sanitize_unique_key("0abc-def.1") == "aabc_def_1"
    assert sanitize_unique_key("fsx9-n0-0") == "fsx9_n0_0"
    assert sanitize_unique_key("__ok") == "__ok"


def test_input_values(tmp_path: Path) -> None:
    interface = build_artifacts_interface()
    doc = tmp_path / "doc.txt"
    doc.write_text("x")
    lm = build_inputs(
        interface,
        [
            "i=42",
            "f=1.5",
            "big=1000000",
            "s=hello world",
            "flag=yes",
            "when=2024-05-01T12:00:00.250+02:00",
            "wait=1m30.5s",
            "xs=[1, 2, 3]",
            f"doc={doc}",
            "uri=s3://bucket/key",
        ],
        None,
    )
    ctx = RenderContext(inputs=lm)
    rendered = render_args(
        [
            "{{.inputs.i}}",
            "{{.inputs.f}}",
            "{{.inputs.big}}",
            "{{.inputs.s}}",
            "{{.inputs.flag}}",
            "{{.inputs.when}}",
            "{{.inputs.wait}}",
            "{{.inputs.xs}}",
            "{{.inputs.doc}}",
            "{{ .Inputs.uri }}",
            "x={{$inputs.i}}/{{.inputs.i}}",
        ],
        ctx,
    )
    assert rendered == [
        "42",
        "1.5",
        "1e+06",
        "hello world",
        "true",
        "2024-05-01T10:00:00.25Z",
        "seconds:90 nanos:500000000",
        "[1,2,3]",
        str(doc.resolve()),
        "s3://bucket/key",
        "x=42/42",
    ]


def build_artifacts_interface() -> types_pb2.LiteralType:
    from flyteidl.core import interface_pb2

    simple = types_pb2.SimpleType
    kinds = {
        "i": types_pb2.LiteralType(simple=simple.INTEGER),
        "f": types_pb2.LiteralType(simple=simple.FLOAT),
        "big": types_pb2.LiteralType(simple=simple.FLOAT),
        "s": types_pb2.LiteralType(simple=simple.STRING),
        "flag": types_pb2.LiteralType(simple=simple.BOOLEAN),
        "when": types_pb2.LiteralType(simple=simple.DATETIME),
        "wait": types_pb2.LiteralType(simple=simple.DURATION),
        "xs": types_pb2.LiteralType(collection_type=types_pb2.LiteralType(simple=simple.INTEGER)),
        "doc": types_pb2.LiteralType(blob=types_pb2.BlobType()),
        "uri": types_pb2.LiteralType(blob=types_pb2.BlobType()),
    }
    return interface_pb2.TypedInterface(
        inputs=interface_pb2.VariableMap(variables={k: interface_pb2.Variable(type=v) for k, v in kinds.items()})
    )


def test_missing_input_is_an_error_but_no_inputs_leaves_it() -> None:
    with pytest.raises(InputError, match="'nope'"):
        render_args(["{{.inputs.nope}}"], _ctx(a=_int(1)))
    assert render_args(["{{.inputs.nope}}"], _ctx()) == ["{{.inputs.nope}}"]


def test_unrenderable_literal_kinds_raise_input_error() -> None:
    mapping = literals_pb2.Literal(map=literals_pb2.LiteralMap(literals={"k": _int(1)}))
    with pytest.raises(InputError, match="cannot be rendered"):
        render_args(["{{.inputs.m}}"], _ctx(m=mapping))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5, "1.5"),
        (3.0, "3"),
        (-2.25, "-2.25"),
        (0.0, "0"),
        (100000.0, "100000"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (1e21, "1e+21"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
    ],
)
def test_go_float_format(value: float, text: str) -> None:
    assert go_float(value) == text


def test_datetime_rendering_trims_nanos() -> None:
    lit = literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive()))
    lit.scalar.primitive.datetime.FromDatetime(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert render_args(["{{.inputs.t}}"], _ctx(t=lit)) == ["2024-01-02T03:04:05Z"]


def test_custom_command_must_be_strings() -> None:
    template = tasks_pb2.TaskTemplate(type="perian_task")
    template.custom.update({"command": ["echo", {"x": 1}]})
    with pytest.raises(TemplateError):
        render_template(template, RenderContext())
    template.custom.update({"command": 5})
    with pytest.raises(TemplateError):
        render_template(template, RenderContext())
    template.custom.update({"command": ["sleep", 5, True]})
    rendered = render_template(template, RenderContext())
    assert [v.string_value for v in rendered.custom.fields["command"].list_value.values] == ["sleep", "5", "true"]
