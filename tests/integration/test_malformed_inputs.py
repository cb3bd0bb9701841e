"""Malformed templates and inputs, generated on disk: each one is a single-line typed error.

Every case must raise ``TemplateError`` or ``InputError`` (both exit 2 in the CLI) whose message
is one non-empty line without a traceback; any other exception fails the test. Cases that could
hang (huge, endless or exponential inputs) run under a short timeout.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flyteidl.admin import task_pb2, workflow_pb2
from flyteidl.core import identifier_pb2, interface_pb2, literals_pb2, tasks_pb2, types_pb2
from flyteidl.core import workflow_pb2 as core_wf

from perianctl.errors import InputError, TemplateError
from perianctl.flyte.inputs import build_inputs
from perianctl.flyte.templates import load_template
from perianctl.flyte.translate import JobOverrides, template_to_job_request
from tests.support.flyte import FlyteArtifacts, build_artifacts

Case = Callable[[Path, FlyteArtifacts], Any]
CASES: dict[str, Case] = {}
S = types_pb2.SimpleType


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        assert name not in CASES, name
        CASES[name] = fn
        return fn

    return register


def _write(tmp: Path, name: str, data: bytes | str) -> str:
    path = tmp / name
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return str(path)


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _spec_bytes(a: FlyteArtifacts, name: str = "gpu_hello") -> bytes:
    return a.taskspec_pb[name].read_bytes()


def _load_text(tmp: Path, name: str, text: str) -> Any:
    return load_template(_write(tmp, name, text))


# --------------------------------------------------------------------------- template files

case("path-missing")(lambda t, a: load_template(str(t / "nope.pb")))
case("path-is-directory")(lambda t, a: load_template(str(t)))
case("path-empty-string")(lambda t, a: load_template(""))
case("file-empty")(lambda t, a: load_template(_write(t, "e.pb", b"")))
case("file-whitespace")(lambda t, a: load_template(_write(t, "w.json", "  \n\t\n")))
case("char-device")(lambda t, a: load_template("/dev/null"))
case("random-1k")(lambda t, a: load_template(_write(t, "r.pb", random.Random(1).randbytes(1024))))
case("random-5m")(lambda t, a: load_template(_write(t, "r5.bin", random.Random(2).randbytes(5 * 1024 * 1024))))
case("nul-bytes")(lambda t, a: load_template(_write(t, "z.pb", b"\x00" * 4096)))
case("latin1-text")(lambda t, a: load_template(_write(t, "l.yaml", "type: café\n".encode("latin-1"))))


@case("oversized-sparse")
def _oversized(t: Path, a: FlyteArtifacts) -> Any:
    path = t / "huge.pb"
    with open(path, "wb") as handle:
        handle.truncate(65 * 1024 * 1024)
    return load_template(str(path))


@case("unreadable")
def _unreadable(t: Path, a: FlyteArtifacts) -> Any:
    if os.geteuid() == 0:
        pytest.skip("root can read anything")
    path = Path(_write(t, "secret.pb", b"x"))
    path.chmod(0)
    return load_template(str(path))


for cut in ("head", "middle", "tail"):

    def _truncated_spec(t: Path, a: FlyteArtifacts, cut: str = cut) -> Any:
        data = _spec_bytes(a)
        at = {"head": 7, "middle": len(data) // 2, "tail": len(data) - 1}[cut]
        return load_template(_write(t, f"trunc-{cut}.pb", data[:at]))

    case(f"truncated-taskspec-{cut}")(_truncated_spec)

    def _truncated_template(t: Path, a: FlyteArtifacts, cut: str = cut) -> Any:
        data = a.templates["everything"].SerializeToString()
        at = {"head": 5, "middle": len(data) // 2 + 3, "tail": len(data) - 1}[cut]
        return load_template(_write(t, f"trunc-tt-{cut}.pb", data[:at]))

    case(f"truncated-template-{cut}")(_truncated_template)


@case("corrupt-length-byte")
def _corrupt(t: Path, a: FlyteArtifacts) -> Any:
    data = bytearray(_spec_bytes(a))
    data[1] = 0x7F  # the template's length prefix now lies
    return load_template(_write(t, "corrupt.pb", bytes(data)))


@case("literal-map-as-template")
def _literal_map(t: Path, a: FlyteArtifacts) -> Any:
    lm = literals_pb2.LiteralMap(
        literals={"a": literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(integer=4)))}
    )
    return load_template(_write(t, "inputs.pb", lm.SerializeToString()))


@case("workflow-spec-as-template")
def _workflow(t: Path, a: FlyteArtifacts) -> Any:
    ident = identifier_pb2.Identifier(resource_type=identifier_pb2.WORKFLOW, project="p", domain="d", name="wf")
    spec = workflow_pb2.WorkflowSpec(
        template=core_wf.WorkflowTemplate(id=ident, nodes=[core_wf.Node(id="n0")], metadata=core_wf.WorkflowMetadata())
    )
    return load_template(_write(t, "0_wf_2.pb", spec.SerializeToString()))


# JSON
case("json-missing-comma")(lambda t, a: _load_text(t, "a.json", '{"type": "perian_task"\n "custom": {}}'))
case("json-truncated")(lambda t, a: _load_text(t, "b.json", '{"type": "perian_task", "container": {'))
case("json-top-level-array")(lambda t, a: _load_text(t, "c.json", "[1, 2, 3]"))
case("json-top-level-string")(lambda t, a: _load_text(t, "d.json", '"perian_task"'))
case("json-empty-object")(lambda t, a: _load_text(t, "e.json", "{}"))
case("json-type-is-number")(lambda t, a: _load_text(t, "f.json", '{"type": 5}'))
case("json-container-is-string")(lambda t, a: _load_text(t, "g.json", '{"type": "x", "container": "ubuntu"}'))
case("json-custom-is-list")(lambda t, a: _load_text(t, "h.json", '{"type": "x", "custom": [1, 2]}'))
case("json-bad-enum")(
    lambda t, a: _load_text(
        t, "i.json", '{"type": "x", "interface": {"inputs": {"variables": {"a": {"type": {"simple": "NOPE"}}}}}}'
    )
)
case("json-bad-resource-type")(lambda t, a: _load_text(t, "j.json", '{"type": "x", "id": {"resourceType": "BOGUS"}}'))
case("json-nan-type")(lambda t, a: _load_text(t, "k.json", '{"type": NaN}'))
case("json-deep-nesting")(lambda t, a: _load_text(t, "l.json", "[" * 100_000 + "]" * 100_000))
case("json-template-not-object")(lambda t, a: _load_text(t, "m.json", '{"template": 5}'))
case("json-bom-garbage")(lambda t, a: load_template(_write(t, "n.json", b"\xef\xbb\xbf{garbage")))
case("json-unknown-only")(lambda t, a: _load_text(t, "o.json", '{"literals": {"a": {"scalar": {}}}}'))
case("json-int64-garbage")(lambda t, a: _load_text(t, "p.json", '{"type": "x", "taskTypeVersion": "many"}'))

# YAML
case("yaml-bad-mapping")(lambda t, a: _load_text(t, "a.yaml", "type: perian_task\ncustom: cores: 2\n"))
case("yaml-tab-indent")(lambda t, a: _load_text(t, "b.yaml", "type: x\ncustom:\n\tcores: 2\n"))
case("yaml-multi-document")(lambda t, a: _load_text(t, "c.yaml", "type: x\n---\ntype: y\n"))
case("yaml-unclosed-quote")(lambda t, a: _load_text(t, "d.yml", 'type: "perian_task\ncustom: {}\n'))
case("yaml-plain-scalar")(lambda t, a: _load_text(t, "e.yaml", "just some text\n"))
case("yaml-python-tag")(lambda t, a: _load_text(t, "f.yaml", "type: !!python/object/apply:os.system ['true']\n"))
case("yaml-wrong-shape")(lambda t, a: _load_text(t, "g.yaml", "type: x\ncontainer:\n  - image: ubuntu\n"))
case("yaml-flow-unclosed")(lambda t, a: _load_text(t, "h.yaml", "{type: x, custom: {cores: 2}\n"))


@case("yaml-alias-bomb")
def _bomb(t: Path, a: FlyteArtifacts) -> Any:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("type: perian_task")
    lines.append("custom: {bomb: *a11}")
    return _load_text(t, "bomb.yaml", "\n".join(lines) + "\n")


# Packages
case("tgz-garbage-after-magic")(lambda t, a: load_template(_write(t, "a.tgz", b"\x1f\x8b" + b"garbage" * 100)))
case("tgz-truncated")(lambda t, a: load_template(_write(t, "b.tgz", a.tgz.read_bytes()[: a.tgz.stat().st_size // 2])))
case("tgz-no-task-files")(lambda t, a: load_template(_write(t, "c.tgz", _tgz({"0_wf_2.pb": b"x", "README": b"y"}))))
case("tgz-empty-archive")(lambda t, a: load_template(_write(t, "d.tgz", _tgz({}))))
case("tgz-garbage-task-file")(lambda t, a: load_template(_write(t, "e.tgz", _tgz({"0_x.t_1.pb": b"\x0a\xff\xff"}))))
case("tgz-task-not-found")(lambda t, a: load_template(str(a.tgz), task="missing"))
case("tgz-several-tasks-no-choice")(lambda t, a: load_template(str(a.tgz)))
case("gzip-not-tar")(lambda t, a: load_template(_write(t, "f.tgz", gzip.compress(b"not a tar at all" * 100))))


@case("tgz-ambiguous-short-name")
def _ambiguous(t: Path, a: FlyteArtifacts) -> Any:
    members = {}
    for i, module in enumerate(("one.mod", "two.mod")):
        spec = task_pb2.TaskSpec()
        spec.ParseFromString(_spec_bytes(a))
        spec.template.id.name = f"{module}.train"
        members[f"{i}_{module}.train_1.pb"] = spec.SerializeToString()
    return load_template(_write(t, "g.tgz", _tgz(members)), task="train")


# Python sources
case("py-missing")(lambda t, a: load_template(f"{t}/nope.py:task"))
case("py-syntax-error")(lambda t, a: load_template(_write(t, "syn_err_mod.py", "def broken(:\n") + ":broken"))
case("py-raises-on-import")(
    lambda t, a: load_template(_write(t, "raise_mod.py", "raise ValueError('boom\\nsecond line')\n") + ":x")
)
case("py-sys-exit")(lambda t, a: load_template(_write(t, "exit_mod.py", "import sys\nsys.exit(3)\n") + ":x"))
case("py-missing-import")(
    lambda t, a: load_template(_write(t, "imp_mod.py", "import no_such_module_perianctl\n") + ":x")
)
case("py-task-not-found")(lambda t, a: load_template(f"{a.source_file}:nope"))
case("py-not-a-task")(
    lambda t, a: load_template(_write(t, "fn_mod.py", "def plain(x: int) -> int:\n    return x\n") + ":plain")
)
case("py-workflow")(
    lambda t, a: load_template(
        _write(
            t,
            "wf_mod.py",
            "from flytekit import task, workflow\n@task\ndef t1() -> int:\n    return 1\n"
            "@workflow\ndef wf() -> int:\n    return t1()\n",
        )
        + ":wf"
    )
)
case("py-bad-module-name")(lambda t, a: load_template(_write(t, "my-tasks.py", "x = 1\n") + ":x"))
case("py-image-without-tag")(lambda t, a: load_template(f"{a.source_file}:add", image="host:5000/img"))
case("py-no-tasks")(lambda t, a: load_template(_write(t, "empty_mod.py", "x = 1\n")))
case("py-conflicting-task")(lambda t, a: load_template(f"{a.source_file}:add", task="echo"))


# --------------------------------------------------------------------------- inputs


def _iface(**types: types_pb2.LiteralType) -> interface_pb2.TypedInterface:
    return interface_pb2.TypedInterface(
        inputs=interface_pb2.VariableMap(variables={k: interface_pb2.Variable(type=v) for k, v in types.items()})
    )


def _s(kind: int) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(simple=kind)


def _everything(a: FlyteArtifacts) -> interface_pb2.TypedInterface:
    return a.templates["everything"].interface


def _one(pair: str, lt: types_pb2.LiteralType) -> Any:
    return build_inputs(_iface(x=lt), [pair], None)


case("input-no-equals")(lambda t, a: _one("x", _s(S.INTEGER)))
case("input-empty-name")(lambda t, a: _one("=5", _s(S.INTEGER)))
case("input-unknown-name")(lambda t, a: build_inputs(_everything(a), ["nope=1"], None))
case("input-missing-required")(lambda t, a: build_inputs(_everything(a), ["i=1"], None))
case("input-bad-int")(lambda t, a: _one("x=abc", _s(S.INTEGER)))
case("input-int-overflow")(lambda t, a: _one(f"x={2**70}", _s(S.INTEGER)))
case("input-bool-for-int")(
    lambda t, a: build_inputs(_iface(x=_s(S.INTEGER)), [], Path(_write(t, "b.json", '{"x": true}')))
)
case("input-bad-float")(lambda t, a: _one("x=1.2.3", _s(S.FLOAT)))
case("input-bad-bool")(lambda t, a: _one("x=maybe", _s(S.BOOLEAN)))
case("input-bad-datetime")(lambda t, a: _one("x=yesterday", _s(S.DATETIME)))
case("input-datetime-out-of-range")(lambda t, a: _one("x=0001-01-01T00:00:00+14:00", _s(S.DATETIME)))
case("input-bad-duration")(lambda t, a: _one("x=10 parsecs", _s(S.DURATION)))
case("input-duration-overflow")(lambda t, a: _one("x=99999999999999999999h", _s(S.DURATION)))
case("input-duration-huge-exponent")(lambda t, a: _one("x=1e999999999", _s(S.DURATION)))
case("input-duration-iso-empty")(lambda t, a: _one("x=PT", _s(S.DURATION)))
case("input-enum-not-allowed")(
    lambda t, a: _one("x=green", types_pb2.LiteralType(enum_type=types_pb2.EnumType(values=["red"])))
)
case("input-list-not-json")(lambda t, a: _one("x=[1,2", types_pb2.LiteralType(collection_type=_s(S.INTEGER))))
case("input-list-wrong-item")(
    lambda t, a: _one('x=[1, {"a": 2}]', types_pb2.LiteralType(collection_type=_s(S.INTEGER)))
)
case("input-list-is-object")(lambda t, a: _one('x={"a": 1}', types_pb2.LiteralType(collection_type=_s(S.INTEGER))))
case("input-map-not-object")(lambda t, a: _one("x=[1]", types_pb2.LiteralType(map_value_type=_s(S.FLOAT))))
case("input-map-bad-value")(lambda t, a: _one('x={"a": "b"}', types_pb2.LiteralType(map_value_type=_s(S.FLOAT))))
case("input-struct-not-object")(lambda t, a: _one("x=5", _s(S.STRUCT)))
case("input-struct-nan")(lambda t, a: _one('x={"a": NaN}', _s(S.STRUCT)))
case("input-deep-list")(
    lambda t, a: _one("x=" + "[" * 50_000 + "]" * 50_000, types_pb2.LiteralType(collection_type=_s(S.INTEGER)))
)
case("input-file-missing-path")(
    lambda t, a: _one(f"x={t}/missing.csv", types_pb2.LiteralType(blob=types_pb2.BlobType()))
)
case("input-dir-given-file")(
    lambda t, a: _one(
        f"x={_write(t, 'f.txt', 'x')}",
        types_pb2.LiteralType(blob=types_pb2.BlobType(dimensionality=types_pb2.BlobType.MULTIPART)),
    )
)
case("input-none-type-with-value")(lambda t, a: _one("x=something", _s(S.NONE)))
case("input-union-no-fit")(lambda t, a: build_inputs(_everything(a), ["maybe=abc"], None))
case("input-binary-not-base64")(lambda t, a: _one("x=***", _s(S.BINARY)))
case("input-untyped-variable")(lambda t, a: _one("x=1", types_pb2.LiteralType()))


def _file(t: Path, name: str, data: bytes | str) -> Any:
    return build_inputs(_iface(a=_s(S.INTEGER)), [], Path(_write(t, name, data)))


case("inputs-file-missing")(lambda t, a: build_inputs(_iface(a=_s(S.INTEGER)), [], t / "nope.json"))
case("inputs-file-directory")(lambda t, a: build_inputs(_iface(a=_s(S.INTEGER)), [], t))
case("inputs-file-empty")(lambda t, a: _file(t, "e.json", ""))
case("inputs-file-bad-json")(lambda t, a: _file(t, "b.json", '{"a": 1,,}'))
case("inputs-file-bad-yaml")(lambda t, a: _file(t, "b.yaml", "a: [1\n"))
case("inputs-file-top-level-list")(lambda t, a: _file(t, "l.json", "[1]"))
case("inputs-file-scalar")(lambda t, a: _file(t, "s.yaml", "42\n"))
case("inputs-file-garbage-binary")(lambda t, a: _file(t, "g.pb", random.Random(3).randbytes(2048)))
case("inputs-file-unknown-name")(lambda t, a: _file(t, "u.json", '{"b": 1}'))
case("inputs-file-wrong-type")(lambda t, a: _file(t, "w.json", '{"a": {"nested": 1}}'))
case("inputs-file-bad-literal-json")(lambda t, a: _file(t, "lj.json", '{"literals": {"a": {"scalar": 5}}}'))
# Integers past Python's digit limit (4,300): JSON's and YAML's int() raise a bare ValueError.
_HUGE = "9" * 5000
case("template-json-huge-integer")(lambda t, a: load_template(_write(t, "h.json", '{"a": ' + _HUGE + "}")))
case("template-yaml-huge-integer")(lambda t, a: load_template(_write(t, "h.yaml", f"a: {_HUGE}\n")))
case("inputs-file-json-huge-integer")(lambda t, a: _file(t, "h.json", '{"a": ' + _HUGE + "}"))
case("inputs-file-yaml-huge-integer")(lambda t, a: _file(t, "h.yaml", f"a: {_HUGE}\n"))
case("input-json-list-huge-integer")(
    lambda t, a: _one(f"x=[{_HUGE}]", types_pb2.LiteralType(collection_type=_s(S.INTEGER)))
)
case("inputs-file-alias-bomb")(
    lambda t, a: _file(
        t,
        "bomb.yaml",
        "x0: &x0 [1,1,1,1,1,1,1,1,1,1]\n"
        + "".join(f"x{i}: &x{i} [{','.join([f'*x{i - 1}'] * 10)}]\n" for i in range(1, 9))
        + "a: *x8\n",
    )
)


@case("inputs-file-truncated-literal-map")
def _truncated_lm(t: Path, a: FlyteArtifacts) -> Any:
    lm = build_inputs(_iface(a=_s(S.STRING)), ["a=" + "x" * 200], None)
    data = lm.SerializeToString()
    return build_inputs(_iface(a=_s(S.STRING)), [], Path(_write(t, "t.pb", data[: len(data) // 2])))


@case("inputs-file-literal-without-value")
def _empty_literal(t: Path, a: FlyteArtifacts) -> Any:
    lm = literals_pb2.LiteralMap(literals={"a": literals_pb2.Literal()})
    data = lm.SerializeToString()
    return build_inputs(_iface(a=_s(S.INTEGER)), [], Path(_write(t, "v.pb", data)))


# --------------------------------------------------------------------------- translation


def _tt(custom: dict[str, Any], *, image: str | None = "ubuntu:22.04") -> tasks_pb2.TaskTemplate:
    tt = tasks_pb2.TaskTemplate(type="perian_task")
    if image is not None:
        tt.container.image = image
    tt.custom.update(custom)
    return tt


case("translate-negative-cores")(lambda t, a: template_to_job_request(_tt({"cores": -2})))
case("translate-fractional-gpus")(lambda t, a: template_to_job_request(_tt({"accelerators": 0.5})))
case("translate-bad-country")(lambda t, a: template_to_job_request(_tt({"country_code": "Deutschland"})))
case("translate-no-image")(lambda t, a: template_to_job_request(_tt({"cores": 1}, image=None)))
case("translate-bad-image")(lambda t, a: template_to_job_request(_tt({}, image="ubuntu:")))
case("translate-bad-memory")(lambda t, a: template_to_job_request(_tt({"memory": "sixteen"})))
case("translate-bad-override-timeout")(
    lambda t, a: template_to_job_request(_tt({}), overrides=JobOverrides(timeout_seconds=-5))
)


# --------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> FlyteArtifacts:
    return build_artifacts(tmp_path_factory.mktemp("flyte"))


def test_there_are_at_least_fifty_cases() -> None:
    assert len(CASES) >= 50


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_gives_one_line_typed_error(name: str, tmp_path: Path, artifacts: FlyteArtifacts) -> None:
    with pytest.raises((TemplateError, InputError)) as info:
        CASES[name](tmp_path, artifacts)
    message = str(info.value)
    assert message.strip(), name
    assert "\n" not in message and "\r" not in message, message
    assert "Traceback" not in message
    assert len(message) < 600, message
