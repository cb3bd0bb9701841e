"""Inputs typed by the template interface; flytekit itself decodes what we build."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flyteidl.core import interface_pb2, literals_pb2

from perianctl.errors import InputError
from perianctl.flyte.inputs import (
    build_inputs,
    value_to_literal,
)
from tests.support.flyte import FlyteArtifacts, build_artifacts


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> FlyteArtifacts:
    return build_artifacts(tmp_path_factory.mktemp("flyte"))


def _decode(artifacts: FlyteArtifacts, task: str, lm: literals_pb2.LiteralMap) -> dict[str, Any]:
    """What the task container's pyflyte-execute would hand the function."""
    from flytekit import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine
    from flytekit.models.literals import LiteralMap

    entity = getattr(artifacts.module, task)
    ctx = FlyteContextManager.current_context()
    return TypeEngine.literal_map_to_kwargs(
        ctx, LiteralMap.from_flyte_idl(lm), python_types=entity.python_interface.inputs
    )


def test_every_type_round_trips_through_flytekit(artifacts: FlyteArtifacts, tmp_path: Path) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text("content")
    folder = tmp_path / "folder"
    folder.mkdir()
    interface = artifacts.templates["everything"].interface
    lm = build_inputs(
        interface,
        [
            "i=-7",
            "f=2.5",
            "s=hello=world",
            "flag=No",
            "when=2024-05-01T12:00:00Z",
            "wait=1h30m",
            "color=blue",
            "xs=[1, 2, 3]",
            'm={"a": 1, "b": 2.5}',
            f"doc={doc}",
            f"folder={folder}",
            'point={"x": 3, "y": 4.5}',
            'blob={"k": [1, "two"], "n": null}',
            'nested=[["a"], ["b", "c"]]',
            "maybe=none",
            "either=word",
        ],
        None,
    )
    values = _decode(artifacts, "everything", lm)
    assert values["i"] == -7
    assert values["f"] == 2.5
    assert values["s"] == "hello=world"
    assert values["flag"] is False
    assert values["when"] == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert values["wait"] == timedelta(hours=1, minutes=30)
    assert values["color"].value == "blue"
    assert values["xs"] == [1, 2, 3]
    assert values["m"] == {"a": 1.0, "b": 2.5}
    assert Path(values["doc"].path) == doc.resolve()
    assert Path(values["folder"].path) == folder.resolve()
    assert (values["point"].x, values["point"].y) == (3, 4.5)
    assert values["blob"] == {"k": [1, "two"], "n": None}
    assert values["nested"] == [["a"], ["b", "c"]]
    assert values["maybe"] is None
    assert values["either"] == "word"


def test_union_prefers_first_fitting_variant(artifacts: FlyteArtifacts) -> None:
    interface = artifacts.templates["everything"].interface
    lt = interface.inputs.variables["either"].type
    lit = value_to_literal("12", lt)
    assert lit.scalar.union.type.structure.tag == "int"
    assert lit.scalar.union.value.scalar.primitive.integer == 12
    maybe = interface.inputs.variables["maybe"].type
    assert value_to_literal("5", maybe).scalar.union.value.scalar.primitive.integer == 5
    assert value_to_literal(None, maybe).scalar.union.value.scalar.HasField("none_type")


def test_optional_and_defaulted_inputs_may_be_omitted(artifacts: FlyteArtifacts) -> None:
    add = artifacts.templates["add"].interface
    with pytest.raises(InputError, match=r"missing required input: b \(integer\)"):
        build_inputs(add, ["a=1"], None)
    lm = build_inputs(add, ["a=1"], None, optional={"b"})
    assert set(lm.literals) == {"a"}
    assert _decode(artifacts, "add", lm) == {"a": 1}


def test_enum_error_lists_values(artifacts: FlyteArtifacts) -> None:
    with pytest.raises(InputError) as info:
        build_inputs(artifacts.templates["everything"].interface, ["color=green"], None)
    assert "red, blue" in str(info.value)
    assert "'color'" in str(info.value)


def test_unknown_name_lists_known_names(artifacts: FlyteArtifacts) -> None:
    with pytest.raises(InputError) as info:
        build_inputs(artifacts.templates["add"].interface, ["c=1"], None)
    assert str(info.value) == "unknown input 'c'; the task's inputs are: a, b"
    with pytest.raises(InputError, match="takes no inputs"):
        build_inputs(interface_pb2.TypedInterface(), ["c=1"], None)
