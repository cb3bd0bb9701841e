"""Loading templates from every supported source, made by flytekit and ``pyflyte package``."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from flyteidl.admin import task_pb2
from flyteidl.core import tasks_pb2
from google.protobuf import json_format

from perianctl.errors import TemplateError
from perianctl.flyte.templates import load_template
from tests.support.flyte import PACKAGE_IMAGE, FlyteArtifacts, build_artifacts


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> FlyteArtifacts:
    return build_artifacts(tmp_path_factory.mktemp("flyte"))


def _spec_template(path: Path) -> tasks_pb2.TaskTemplate:
    spec = task_pb2.TaskSpec()
    spec.ParseFromString(path.read_bytes())
    return spec.template


def test_template_pb(artifacts: FlyteArtifacts, tmp_path: Path) -> None:
    tt = artifacts.templates["gpu_hello"]
    path = tmp_path / "t.pb"
    path.write_bytes(tt.SerializeToString())
    loaded = load_template(str(path))
    assert loaded.template == tt
    assert loaded.kind == "template-pb"
    assert loaded.warnings == []
    assert loaded.name.endswith(".tasks.gpu_hello") and loaded.short_name == "gpu_hello"


def test_taskspec_pb_from_pyflyte_package(artifacts: FlyteArtifacts) -> None:
    path = artifacts.taskspec_pb["gpu_hello"]
    loaded = load_template(str(path))
    assert loaded.kind == "taskspec-pb"
    assert loaded.template == _spec_template(path)
    assert loaded.template.type == "perian_task"
    assert loaded.template.container.image == PACKAGE_IMAGE
    # Same template as the in-process serialization.
    assert loaded.template == artifacts.templates["gpu_hello"]


def test_binary_detection_ignores_the_extension(artifacts: FlyteArtifacts, tmp_path: Path) -> None:
    spec_bytes = artifacts.taskspec_pb["add"].read_bytes()
    renamed = tmp_path / "looks.json"
    renamed.write_bytes(spec_bytes)
    assert load_template(str(renamed)).kind == "taskspec-pb"
    as_json = tmp_path / "really-json.pb"
    as_json.write_text(json_format.MessageToJson(artifacts.templates["add"]))
    assert load_template(str(as_json)).template == artifacts.templates["add"]


@pytest.mark.parametrize("task", [None, "gpu_hello", "echo"])
def test_package_tgz(artifacts: FlyteArtifacts, task: str | None) -> None:
    if task is None:
        # Several tasks, two of them perian_task: the user must choose, and is told the names.
        with pytest.raises(TemplateError) as info:
            load_template(str(artifacts.tgz))
        message = str(info.value)
        assert "choose one with --task" in message
        for name in (f"{artifacts.package}.tasks.add", f"{artifacts.package}.tasks.gpu_hello", "echo"):
            assert name in message
        return
    loaded = load_template(str(artifacts.tgz), task=task)
    assert loaded.kind == "package"
    assert loaded.template == artifacts.templates[task]


def test_package_full_name_and_unknown_task(artifacts: FlyteArtifacts) -> None:
    full = f"{artifacts.package}.tasks.add"
    assert load_template(str(artifacts.tgz), task=full).template == artifacts.templates["add"]
    with pytest.raises(TemplateError, match=r"task 'nope' not found in .*; tasks: "):
        load_template(str(artifacts.tgz), task="nope")


def _tar(members: dict[str, bytes], *, gz: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_package_with_one_perian_task_picks_it(artifacts: FlyteArtifacts, tmp_path: Path) -> None:
    members = {
        "0_a.add_1.pb": artifacts.taskspec_pb["add"].read_bytes(),
        "1_a.gpu_hello_1.pb": artifacts.taskspec_pb["gpu_hello"].read_bytes(),
        "2_a.wf_2.pb": b"workflow bytes are ignored",
    }
    path = tmp_path / "pkg.tar.gz"
    path.write_bytes(_tar(members))
    loaded = load_template(str(path))
    assert loaded.template == artifacts.templates["gpu_hello"]
    assert any("only perian_task" in w for w in loaded.warnings)
    plain = tmp_path / "pkg.tar"
    plain.write_bytes(_tar({"x/0_a.add_1.pb": members["0_a.add_1.pb"]}, gz=False))
    assert load_template(str(plain)).template == artifacts.templates["add"]


@pytest.mark.parametrize("snake", [False, True])
def test_protobuf_json(artifacts: FlyteArtifacts, tmp_path: Path, snake: bool) -> None:
    tt = artifacts.templates["gpu_hello"]
    path = tmp_path / "t.json"
    path.write_text(json_format.MessageToJson(tt, preserving_proto_field_name=snake))
    loaded = load_template(str(path))
    assert loaded.kind == "json"
    assert loaded.template == tt


def test_taskspec_json_and_create_task_request_wrapper(artifacts: FlyteArtifacts, tmp_path: Path) -> None:
    tt = artifacts.templates["echo"]
    spec = task_pb2.TaskSpec(template=tt)
    path = tmp_path / "spec.json"
    path.write_text(json_format.MessageToJson(spec))
    assert load_template(str(path)).template == tt
    wrapper = {"template": json_format.MessageToDict(tt), "outputPrefix": "s3://x", "inputs": {}}
    path.write_text(json.dumps(wrapper))
    assert load_template(str(path)).template == tt


def test_yaml(artifacts: FlyteArtifacts, tmp_path: Path) -> None:
    tt = artifacts.templates["everything"]
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(json_format.MessageToDict(tt, preserving_proto_field_name=True)))
    loaded = load_template(str(path))
    assert loaded.kind == "yaml"
    assert loaded.template == tt
    spec_path = tmp_path / "spec.yml"
    spec_path.write_text(yaml.safe_dump({"template": json_format.MessageToDict(tt)}))
    assert load_template(str(spec_path)).template == tt


def test_unknown_json_fields_are_ignored_with_a_warning(artifacts: FlyteArtifacts, tmp_path: Path) -> None:
    data = json_format.MessageToDict(artifacts.templates["add"])
    data["someFutureField"] = {"x": 1}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    loaded = load_template(str(path))
    assert loaded.template == artifacts.templates["add"]
    assert any("someFutureField" in w for w in loaded.warnings)


def test_non_perian_type_warns(artifacts: FlyteArtifacts, tmp_path: Path) -> None:
    path = tmp_path / "add.pb"
    path.write_bytes(artifacts.templates["add"].SerializeToString())
    loaded = load_template(str(path))
    assert len(loaded.warnings) == 1
    assert "'python-task', not 'perian_task'" in loaded.warnings[0]


def test_single_template_with_mismatched_task_name(artifacts: FlyteArtifacts, tmp_path: Path) -> None:
    path = tmp_path / "add.pb"
    path.write_bytes(artifacts.templates["add"].SerializeToString())
    assert load_template(str(path), task="add").template == artifacts.templates["add"]
    with pytest.raises(TemplateError, match="task 'other' not found"):
        load_template(str(path), task="other")


def test_python_file_task(artifacts: FlyteArtifacts) -> None:
    loaded = load_template(f"{artifacts.source_file}:gpu_hello", image=PACKAGE_IMAGE)
    assert loaded.kind == "python"
    assert loaded.template == artifacts.templates["gpu_hello"]
    args = list(loaded.template.container.args)
    assert args[args.index("task-module") + 1] == f"{artifacts.package}.tasks"


def test_python_file_defaults_and_default_image(artifacts: FlyteArtifacts) -> None:
    loaded = load_template(str(artifacts.source_file), task="add")
    assert loaded.optional_inputs == frozenset({"b"})
    assert loaded.template.container.image.startswith("cr.flyte.org/flyteorg/flytekit:")
    assert any("no image given" in w and f"{artifacts.package}.tasks" in w for w in loaded.warnings)
    everything = load_template(f"{artifacts.source_file}:everything")
    assert everything.optional_inputs == frozenset({"maybe", "either"})


def test_python_file_needs_a_task_name_when_ambiguous(artifacts: FlyteArtifacts) -> None:
    with pytest.raises(TemplateError, match=r"name the task as tasks.py:TASK; tasks defined there: add, echo"):
        load_template(str(artifacts.source_file))


def test_translation_modules_do_not_import_flytekit() -> None:
    import subprocess

    code = (
        "import sys\n"
        "import perianctl.flyte.templates, perianctl.flyte.inputs, perianctl.flyte.render, perianctl.flyte.translate\n"
        "assert 'flytekit' not in sys.modules, 'flytekit imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
