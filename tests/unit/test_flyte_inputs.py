"""Inputs typed by the template interface: parsing, conversion and validation of values (pure).

Round trips through flytekit with serialized tasks are in tests/integration/test_flyte_inputs.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flyteidl.core import interface_pb2, literals_pb2, types_pb2
from google.protobuf import json_format

from perianctl.errors import InputError
from perianctl.flyte.inputs import (
    build_inputs,
    literal_map_to_python,
    literal_to_text,
)
from perianctl.timeparse import parse_duration_nanos

S = types_pb2.SimpleType


def _interface(**types: types_pb2.LiteralType) -> interface_pb2.TypedInterface:
    return interface_pb2.TypedInterface(
        inputs=interface_pb2.VariableMap(variables={k: interface_pb2.Variable(type=v) for k, v in types.items()})
    )


def _simple(kind: int) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(simple=kind)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("Yes", True),
        ("false", False),
        ("0", False),
        ("no", False),
        (" NO ", False),
    ],
)
def test_booleans(text: str, expected: bool) -> None:
    lm = build_inputs(_interface(b=_simple(S.BOOLEAN)), [f"b={text}"], None)
    assert lm.literals["b"].scalar.primitive.boolean is expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("1h30m", 5400),
        ("1h30m15.5s", 5415.5),
        ("500ms", 0.5),
        ("2d", 172800),
        ("1.5h", 5400),
        ("90", 90),
        ("1.25", 1.25),
        ("PT1H30M", 5400),
        ("P1DT2H", 93600),
        ("pt0.5s", 0.5),
        ("P1W", 604800),
        ("01:30:00", 5400),
        ("0:00:01.5", 1.5),
        ("-30s", -30),
        ("0.1s", 0.1),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_nanos(text) == round(seconds * 1_000_000_000)
    lm = build_inputs(_interface(d=_simple(S.DURATION)), [f"d={text}"], None)
    dur = lm.literals["d"].scalar.primitive.duration
    assert dur.ToNanoseconds() == round(seconds * 1_000_000_000)


def test_datetime_forms() -> None:
    iface = _interface(t=_simple(S.DATETIME))
    naive = build_inputs(iface, ["t=2024-01-02T03:04:05"], None).literals["t"].scalar.primitive.datetime
    assert naive.ToDatetime(tzinfo=UTC) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    offset = build_inputs(iface, ["t=2024-01-02T03:04:05+01:00"], None).literals["t"].scalar.primitive.datetime
    assert offset.ToDatetime(tzinfo=UTC) == datetime(2024, 1, 2, 2, 4, 5, tzinfo=UTC)
    date_only = build_inputs(iface, ["t=2024-01-02"], None).literals["t"].scalar.primitive.datetime
    assert date_only.ToDatetime(tzinfo=UTC) == datetime(2024, 1, 2, tzinfo=UTC)


def test_bad_value_names_the_expected_type() -> None:
    with pytest.raises(InputError) as info:
        build_inputs(_interface(n=_simple(S.INTEGER)), ["n=3.5"], None)
    assert str(info.value) == "input 'n' (integer): expected an integer, got '3.5'"
    with pytest.raises(InputError, match=r"item \[1\]: expected an integer"):
        build_inputs(_interface(xs=types_pb2.LiteralType(collection_type=_simple(S.INTEGER))), ['xs=[1, "x"]'], None)


def test_blob_paths_and_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    iface = _interface(f=types_pb2.LiteralType(blob=types_pb2.BlobType()))
    (tmp_path / "rel.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    lit = build_inputs(iface, ["f=rel.txt"], None).literals["f"]
    assert lit.scalar.blob.uri == str((tmp_path / "rel.txt").resolve())
    assert build_inputs(iface, ["f=gs://b/k.csv"], None).literals["f"].scalar.blob.uri == "gs://b/k.csv"
    with pytest.raises(InputError, match="file not found"):
        build_inputs(iface, ["f=missing.txt"], None)
    with pytest.raises(InputError, match="is a directory"):
        build_inputs(iface, [f"f={tmp_path}"], None)


def test_inputs_file_json_yaml_and_flag_override(tmp_path: Path) -> None:
    iface = _interface(
        a=_simple(S.INTEGER),
        s=_simple(S.STRING),
        when=_simple(S.DATETIME),
        xs=types_pb2.LiteralType(collection_type=_simple(S.FLOAT)),
    )
    js = tmp_path / "in.json"
    js.write_text(json.dumps({"a": 1, "s": "from-file", "when": "2024-01-01T00:00:00Z", "xs": [1, 2.5]}))
    lm = build_inputs(iface, ["s=from-flag"], js)
    assert literal_map_to_python(lm) == {"a": 1, "s": "from-flag", "when": "2024-01-01T00:00:00Z", "xs": [1.0, 2.5]}
    yml = tmp_path / "in.yaml"
    yml.write_text("a: 2\ns: 5\nwhen: 2024-01-01 10:00:00\nxs: [3]\n")
    lm = build_inputs(iface, [], yml)
    assert literal_map_to_python(lm) == {"a": 2, "s": "5", "when": "2024-01-01T10:00:00Z", "xs": [3.0]}


def test_inputs_file_literal_map_pb_and_protobuf_json(tmp_path: Path) -> None:
    iface = _interface(a=_simple(S.INTEGER), b=_simple(S.STRING))
    lm = build_inputs(iface, ["a=40", "b=x"], None)
    pb = tmp_path / "inputs.pb"
    pb.write_bytes(lm.SerializeToString())
    assert build_inputs(iface, [], pb) == lm
    pj = tmp_path / "inputs.json"
    pj.write_text(json_format.MessageToJson(lm))
    assert build_inputs(iface, [], pj) == lm
    # Flags still override, typed by the interface.
    assert literal_map_to_python(build_inputs(iface, ["a=2"], pb)) == {"a": 2, "b": "x"}


def test_an_input_named_literals_is_not_mistaken_for_a_literal_map(tmp_path: Path) -> None:
    iface = _interface(literals=types_pb2.LiteralType(map_value_type=_simple(S.INTEGER)))
    f = tmp_path / "in.json"
    f.write_text('{"literals": {"x": 1}}')
    assert literal_map_to_python(build_inputs(iface, [], f)) == {"literals": {"x": 1}}


def test_literal_to_text_and_python() -> None:
    iface = _interface(
        xs=types_pb2.LiteralType(collection_type=_simple(S.STRING)),
        f=_simple(S.FLOAT),
        d=_simple(S.DURATION),
        st=_simple(S.STRUCT),
    )
    lm = build_inputs(iface, ['xs=["a", "b"]', "f=2", "d=2s", 'st={"k": 1}'], None)
    assert literal_to_text(lm.literals["xs"]) == "[a,b]"
    assert literal_to_text(lm.literals["f"]) == "2"
    assert literal_to_text(lm.literals["d"]) == "seconds:2"
    with pytest.raises(InputError):
        literal_to_text(lm.literals["st"])
    assert literal_map_to_python(lm) == {"xs": ["a", "b"], "f": 2.0, "d": 2, "st": {"k": 1.0}}


def test_msgpack_binary_is_decoded_for_display_and_text() -> None:
    import msgpack

    lit = literals_pb2.Literal(
        scalar=literals_pb2.Scalar(
            binary=literals_pb2.Binary(value=msgpack.packb({"b": 1, "a": [1, 2]}), tag="msgpack")
        )
    )
    assert literal_map_to_python(literals_pb2.LiteralMap(literals={"x": lit})) == {"x": {"b": 1, "a": [1, 2]}}
    assert literal_to_text(lit) == "map[a:[1 2] b:1]"
