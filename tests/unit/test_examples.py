"""examples/: committed templates are current and say what the examples mean.

Their real ``pyflyte-execute`` commands run in tests/integration/test_examples.py.
"""

from __future__ import annotations

import importlib

import pytest

pytest.importorskip("flytekit")

from flyteidl.core import tasks_pb2

from tests.support.examples import GREETING, TEMPLATES, load_template

# --------------------------------------------------------------------------- up to date


def test_committed_templates_are_up_to_date() -> None:
    serialize = importlib.import_module("examples.serialize")
    files = serialize.render_templates()
    assert set(files) == {f"{n}.{ext}" for n in serialize.EXAMPLES for ext in ("pb", "json")}
    stale = serialize.stale_files(TEMPLATES, files)
    assert not stale, f"examples/templates is stale ({', '.join(stale)}): run `.venv/bin/python examples/serialize.py`"
    assert {p.name for p in TEMPLATES.iterdir()} == set(files), "unexpected files in examples/templates"


def test_serialization_is_deterministic() -> None:
    serialize = importlib.import_module("examples.serialize")
    assert serialize.render_templates() == serialize.render_templates()


@pytest.mark.parametrize(
    ("name", "module", "task_name"),
    [
        ("hello", "examples.hello", "hello"),
        ("add", "examples.hello", "add"),
        ("fail", "examples.fail", "fail"),
        ("long", "examples.long", "long"),
    ],
)
def test_templates_are_perian_tasks_running_pyflyte_execute(name: str, module: str, task_name: str) -> None:
    template = load_template(name)
    assert template.type == "perian_task"
    assert template.custom.fields["cores"].number_value == 1.0
    args = list(template.container.args)
    assert args[:11] == [
        "pyflyte-execute",
        "--inputs",
        "{{.input}}",
        "--output-prefix",
        "{{.outputPrefix}}",
        "--raw-output-data-prefix",
        "{{.rawOutputDataPrefix}}",
        "--checkpoint-path",
        "{{.checkpointOutputPrefix}}",
        "--prev-checkpoint",
        "{{.prevCheckpointPrefix}}",
    ]
    assert args[-5:] == ["--", "task-module", module, "task-name", task_name]
    from google.protobuf import json_format

    from_json = json_format.Parse((TEMPLATES / f"{name}.json").read_text(encoding="utf-8"), tasks_pb2.TaskTemplate())
    assert from_json == template


def test_examples_run_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The functions themselves, without PERIAN (PERIANCTL_LOCAL_EXECUTION=function)."""
    monkeypatch.setenv("PERIANCTL_LOCAL_EXECUTION", "function")
    from examples.fail import FAILURE_MARKER, fail
    from examples.hello import add, hello
    from examples.long import long

    assert hello(name="PERIAN") == GREETING
    assert add(a=40, b=2) == 42
    assert long(seconds=0) == 0
    with pytest.raises(Exception, match=FAILURE_MARKER):
        fail(name="PERIAN")
