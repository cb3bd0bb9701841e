"""Loading templates: the checks and conversions that need no flytekit run (tests/integration/test_flyte_templates.py
loads templates made by flytekit and ``pyflyte package``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from flyteidl.admin import task_pb2
from flyteidl.core import tasks_pb2

from perianctl.errors import TemplateError
from perianctl.flyte.templates import load_template


def test_python_file_single_task_is_picked(tmp_path: Path) -> None:
    mod = tmp_path / "single_task_mod_x1.py"
    mod.write_text("from flytekit import task\n\n@task\ndef only(x: int) -> int:\n    return x\n")
    loaded = load_template(str(mod))
    assert loaded.name == "single_task_mod_x1.only"
    assert "single_task_mod_x1" in sys.modules


def test_python_file_print_goes_to_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    mod = tmp_path / "noisy_mod_x2.py"
    mod.write_text("from flytekit import task\nprint('noise')\n\n@task\ndef t() -> None:\n    pass\n")
    load_template(f"{mod}:t")
    out, err = capfd.readouterr()
    assert "noise" not in out
    assert "noise" in err


def _minimal_templates() -> list[tasks_pb2.TaskTemplate]:
    from flyteidl.core import identifier_pb2

    out = [
        tasks_pb2.TaskTemplate(type="perian_task"),
        tasks_pb2.TaskTemplate(type="p", container=tasks_pb2.Container(image="ubuntu", args=["a"])),
        tasks_pb2.TaskTemplate(id=identifier_pb2.Identifier(name="x"), type="perian_task"),
        # A project that looks like a task type: the TaskSpec reading of these bytes must lose.
        tasks_pb2.TaskTemplate(
            id=identifier_pb2.Identifier(resource_type=1, project="perian_task", domain="d", name="x", version="v"),
            type="perian_task",
        ),
    ]
    for template in out:
        template.custom.update({"cores": 1})
    return out


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("wrapped", [False, True])
def test_taskspec_and_template_are_told_apart(index: int, wrapped: bool, tmp_path: Path) -> None:
    template = _minimal_templates()[index]
    data = task_pb2.TaskSpec(template=template).SerializeToString() if wrapped else template.SerializeToString()
    path = tmp_path / "t.pb"
    path.write_bytes(data)
    loaded = load_template(str(path))
    assert loaded.template == template
    assert loaded.kind == ("taskspec-pb" if wrapped else "template-pb")


def test_yaml_size_limit_keeps_big_files_fast(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("type: perian_task\n" + "x: 1\n" * 2_000_000)
    with pytest.raises(TemplateError, match="use JSON or protobuf"):
        load_template(str(path))
